"""Command line of `python -m pretrain`: its run plan, options, presets and config files.

Precedence, lowest to highest: built-in defaults < `--preset` (a row of
`minitransformer.presets.PRETRAIN_PRESETS`, which sets every model and length option) < `--config FILE` <
explicit flags. `--help` shows the values the chosen preset gives. A new option is added twice: to
`build_parser` (its flag, default and help) and to `PretrainPlan` (its typed field, named as its dest).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from minitransformer.config import ACTIVATIONS, INIT_SCHEMES, NORM_PLACEMENTS, RENAMED_VALUES
from minitransformer.presets import PRETRAIN_PRESETS, RENAMED_PRESETS
from minitransformer.runs.options import (
    AT_LEAST_1,
    FRACTION,
    INIT_STD,
    NON_NEGATIVE,
    POSITIVE,
    PROBABILITY,
    THREADS,
    EffectiveDefaultsFormatter,
    accepting_old_names,
    add_data_options,
    add_hardware_options,
    add_run_options,
    add_schedule_options,
    parse_layered,
    refuse_reading_the_output_dir,
)
from minitransformer.runs.plan import RunPlan, decided
from minitransformer.runs.tracking import LOGGERS
from minitransformer.tokenization import KINDS
from minitransformer.training.engine import SCHEDULES
from minitransformer.training.optimizers import PRETRAIN_OPTIMIZERS

OBJECTIVES = ("clm", "mlm")  # causal LM, masked LM
BASELINES = ("ngram",)  # pretrain/baseline.py


@dataclass(frozen=True, kw_only=True)
class PretrainPlan(RunPlan):
    """A pretraining run's settings: the shared options (`RunPlan`), these, and what planning decides
    (`pretrain.run.plan_run`). Each option's help is in `build_parser` (and `--help`)."""

    # run
    preset: str  # the row of PRETRAIN_PRESETS the values started from
    objective: str | None  # clm or mlm; unset: planning takes --init-from's, else clm
    init_from: Path | None  # a model directory to continue pretraining
    seed: int  # for init, data order, dropout and masking
    baseline: str | None  # ngram: fit the n-gram baseline instead of a Transformer
    # data
    dataset: str  # a WikiText name, trec-questions, a folder or a text file
    train_split: str | None  # unset: planning chooses (train, or valid when there is no train)
    valid_split: str | None  # unset: planning chooses (valid, or test when training on valid)
    cache_dir: Path | None  # where binarized token files go
    random_offsets: bool  # shift training block boundaries each epoch
    # tokenizer
    tokenizer: Path | None  # a tokenizer.json (or model directory) to use instead of training one
    tokenizer_kind: str  # the kind of tokenizer to train
    vocab_size: int  # vocabulary size of the trained tokenizer
    lowercase: bool  # lowercase text in the trained tokenizer
    # model (`config_from_options` reads these)
    embed_dim: int
    hidden_dim: int  # feed-forward inner size
    num_heads: int
    num_layers: int
    num_max_positions: int  # context length = training block size
    initializer_range: float  # std of the initial weights
    activation: str
    norm_placement: str  # hands_on, pre or post
    final_layer_norm: bool | None  # unset: on for pre-norm
    sinusoidal_embeddings: bool
    rotary: bool  # rotary positions in attention instead of a position table
    attention_only: bool  # blocks without feed-forward
    embedding_layer_norm: bool
    lm_head_transform: bool  # dense + activation + LayerNorm before the tied decoder
    init_scheme: str | None  # hands_on or gpt2
    layer_norm_eps: float | None  # unset: 1e-12
    # optimisation
    schedule: str  # the lr decay after the warm-up: cosine, linear or wsd
    optimizer: str  # adamw or muon
    batch_size: int  # blocks per optimizer step
    accumulation_steps: int  # micro-batches per batch
    weight_decay: float
    decay_embeddings: bool
    mlm_probability: float  # share of tokens masked (mlm)
    # evaluation and logging
    eval_every: int  # steps between evaluations
    eval_batch_size: int
    max_eval_batches: int | None  # unset: all
    checkpoint_every: int | None  # unset: eval_every
    keep_checkpoints: int
    log_every: int  # steps between train events in metrics.jsonl
    sample_prompts: list[str]  # sampled from at each evaluation (clm)
    sample_tokens: int
    sample_unk: bool
    # hardware
    compile: bool  # torch.compile the model
    peak_tflops: float | None  # for the MFU (unset: measured or looked up)
    # decided by planning
    splits: str | None = decided()  # "trained on DATASET/SPLIT, evaluated on DATASET/SPLIT"
    lr_found: float | None = decided()  # the lr finder's suggestion, once it ran: a resume reuses it

    CHANGEABLE_ON_RESUME = ("device", "threads", "no_progress", "compile", "peak_tflops", "logger")


# What each numeric option accepts (checked at parse time, whichever layer set it).
RANGES = {
    **dict.fromkeys(
        (
            "max_steps",
            "epochs",
            "batch_size",
            "accumulation_steps",
            "eval_every",
            "eval_batch_size",
            "max_eval_batches",
            "checkpoint_every",
            "log_every",
            "keep_checkpoints",
            "vocab_size",
            "embed_dim",
            "hidden_dim",
            "num_heads",
            "num_layers",
            "num_max_positions",
        ),
        AT_LEAST_1,
    ),  # fmt: skip
    **dict.fromkeys(("warmup_steps", "weight_decay", "max_norm", "sample_tokens", "seed"), NON_NEGATIVE),
    **dict.fromkeys(("lr", "peak_tflops"), POSITIVE),
    "dropout": PROBABILITY,
    "mlm_probability": FRACTION,
    "threads": THREADS,
    "initializer_range": INIT_STD,
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pretrain",
        description="Pretrain the minitransformer Transformer as a causal or masked language model on "
        "WikiText with pytorch-ignite. Writes a model directory (config.json, model.safetensors, "
        "tokenizer.json) plus training_args.json, metrics.jsonl, plots/ and checkpoints/.",
        formatter_class=EffectiveDefaultsFormatter,
    )
    g = add_run_options(
        p,
        "run",
        output_dir="runs/pretrain",
        resume_help="continue the run in this directory from its last checkpoint (a complete run: nothing is "
        "done)",
        logger_choices=LOGGERS,
    )
    g.add_argument(
        "--preset",
        choices=sorted(PRETRAIN_PRESETS),
        type=accepting_old_names(RENAMED_PRESETS, "--preset"),
        default="tiny",
        help="starting values for every option: tiny (4 layers x 192, ~4 min on 2 CPU cores), cpu-wikitext "
        "and cpu-trec-questions (steps 1 and 2 of the CPU transfer recipe, docs/cpu_pretraining.md; step 2 "
        "with --init-from; the -muon pair: the same with the tiny recipe, in half the time), hands-on (the "
        "hands-on's 50M-parameter model, for GPUs), induction (2 layers that form an induction head on the "
        "induction corpus, docs/induction.md)",
    )
    g.add_argument(
        "--objective",
        choices=OBJECTIVES,
        help="causal LM or masked LM (BERT); unset: clm, or the --init-from checkpoint's objective",
    )
    g.add_argument(
        "--init-from",
        type=Path,
        help="continue pretraining this model directory (its config and tokenizer are kept; "
        "the model options below are then ignored)",
    )
    g.add_argument("--seed", type=int, default=0, help="seed for init, data order, dropout and masking")
    g.add_argument(
        "--baseline",
        choices=BASELINES,
        help="instead of a Transformer, fit an interpolated Kneser-Ney n-gram model (order 1-5, chosen on a "
        "held-out tenth of the training split) on the same tokens and report its perplexity as a run does",
    )

    g = add_data_options(p, "a WikiText dataset whose splits are")
    g.add_argument(
        "--dataset",
        default="wikitext-2",
        help="wikitext-2, wikitext-103, their -raw variants, trec-questions (TREC training questions without "
        "labels, for continued pretraining), induction (made-up words whose segments repeat at random places, "
        "generated from --seed: docs/induction.md), a directory holding wiki.{split}.tokens or {split}.txt, or a text file",
    )
    g.add_argument(
        "--train-split",
        default=None,
        help="split to train on (unset: train if present, else valid — the offline WikiText-2 case)",
    )
    g.add_argument(
        "--valid-split",
        default=None,
        help="split to evaluate on (unset: valid, or test when training on valid)",
    )
    g.add_argument(
        "--cache-dir",
        type=Path,
        help="where binarized token files go (unset: ~/.cache/minitransformer/binarized)",
    )
    g.add_argument(
        "--random-offsets",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="shift training block boundaries each epoch",
    )

    g = p.add_argument_group("tokenizer")
    g.add_argument(
        "--tokenizer", type=Path, help="use this tokenizer.json (or model directory) instead of training one"
    )
    g.add_argument("--tokenizer-kind", choices=KINDS, default="wordpiece", help="kind of tokenizer to train")
    g.add_argument("--vocab-size", type=int, help="vocabulary size of the trained tokenizer")
    g.add_argument("--lowercase", action="store_true", help="lowercase text in the trained tokenizer")

    g = p.add_argument_group("model")
    g.add_argument("--embed-dim", type=int, help="width of the token vectors")
    g.add_argument("--hidden-dim", type=int, help="feed-forward inner size")
    g.add_argument("--num-heads", type=int, help="attention heads per layer")
    g.add_argument("--num-layers", type=int, help="Transformer blocks")
    g.add_argument("--num-max-positions", type=int, help="context length = training block size")
    g.add_argument("--initializer-range", type=float, default=0.02, help="std of the initial weights")
    g.add_argument("--activation", choices=ACTIVATIONS, default="relu", help="feed-forward activation")
    g.add_argument(
        "--norm-placement",
        choices=NORM_PLACEMENTS,
        type=accepting_old_names(RENAMED_VALUES, "--norm-placement"),
        help="where layer norms sit (see README)",
    )
    g.add_argument(
        "--final-layer-norm",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="unset: on for pre-norm",
    )
    for flag, text in (  # architecture switches, off unless the preset turns them on (--no-X: off)
        ("--sinusoidal-embeddings", "fixed sin/cos positions instead of learned"),
        ("--rotary", "rotary positions (RoFormer): queries and keys turned by their position, no table"),
        ("--embedding-layer-norm", "a LayerNorm on the embeddings, as BERT has"),
        ("--attention-only", "blocks without the feed-forward sub-block (and its norm)"),
        ("--lm-head-transform", "dense + activation + LayerNorm before the tied decoder, as BERT has"),
    ):
        g.add_argument(flag, action=argparse.BooleanOptionalAction, default=False, help=text)
    g.add_argument(
        "--init-scheme",
        choices=INIT_SCHEMES,
        help="hands_on: every weight N(0, range); gpt2: the residual projections N(0, range/sqrt(2 layers))",
    )
    g.add_argument("--layer-norm-eps", type=float, help="LayerNorm epsilon (unset: 1e-12, the hands-on's)")

    g = add_schedule_options(
        p,
        "optimisation",
        lr_help="peak learning rate (AdamW)",
        warmup_help="linear warm-up steps before the --schedule's decay to 0",
        lr_find_help="run Ignite's FastaiLRFinder first and train with its suggestion",
    )
    g.add_argument(
        "--schedule",
        choices=sorted(SCHEDULES),
        default="cosine",
        help="the lr after the warm-up: cosine or linear decay to 0, or wsd (held at the peak, then linear "
        "decay to 0 over the last fifth of the steps)",
    )
    g.add_argument(
        "--optimizer",
        choices=PRETRAIN_OPTIMIZERS,
        default="adamw",
        help="adamw; muon: torch's Muon for the hidden matrices, AdamW for embeddings, norms and biases",
    )
    g.add_argument("--batch-size", type=int, help="blocks per optimizer step (all processes together)")
    g.add_argument(
        "--accumulation-steps", type=int, default=1, help="split each batch into this many micro-batches"
    )
    g.add_argument("--weight-decay", type=float, default=0.01, help="AdamW decay on weight matrices only")
    g.add_argument("--decay-embeddings", action="store_true", help="also decay the embeddings")
    g.add_argument(
        "--mlm-probability", type=float, default=0.15, help="share of tokens masked (--objective mlm)"
    )

    g = p.add_argument_group("evaluation and logging")
    g.add_argument("--eval-every", type=int, help="evaluate every N steps (and at the end)")
    g.add_argument("--eval-batch-size", type=int, default=32, help="blocks per evaluation batch")
    g.add_argument("--max-eval-batches", type=int, help="evaluate on at most this many batches (unset: all)")
    g.add_argument(
        "--checkpoint-every", type=int, help="save the training state every N steps (unset: --eval-every)"
    )
    g.add_argument(
        "--keep-checkpoints", type=int, default=2, help="training checkpoints kept (the last ones)"
    )
    g.add_argument(
        "--log-every", type=int, default=10, help="write a train event to metrics.jsonl every N steps"
    )
    g.add_argument(
        "--sample-prompts",
        nargs="*",
        default=["The history of", "In 1995 , the"],
        help="prompts sampled at each evaluation (causal)",
    )
    g.add_argument("--sample-tokens", type=int, default=24, help="new tokens per sample")
    g.add_argument(
        "--sample-unk", action="store_true", help="let samples contain [UNK] (left out by default)"
    )

    g = add_hardware_options(p)
    g.add_argument("--compile", action="store_true", help="torch.compile the model (GPU users)")
    g.add_argument(
        "--peak-tflops",
        type=float,
        help="the device's peak TFLOP/s for the MFU shown (unset: measured on CPU, looked up on GPU)",
    )
    return p


def parse_args(
    argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None
) -> argparse.Namespace:
    """Parse with the precedence defaults < preset < config file < command line."""
    argv = sys.argv[1:] if argv is None else argv
    parser = parser or build_parser()
    args = parse_layered(parser, argv, PretrainPlan, PRETRAIN_PRESETS, ranges=RANGES)
    if not args.resume:
        refuse_reading_the_output_dir(parser, args, "init_from", "tokenizer")
    if args.baseline and args.objective == "mlm":
        parser.error("--baseline ngram is a causal language model: drop --objective mlm")
    if args.batch_size is not None and args.accumulation_steps > args.batch_size:
        parser.error(
            f"--accumulation-steps {args.accumulation_steps}: expected at most --batch-size {args.batch_size} "
            "(each micro-batch needs a block)"
        )
    return args
