"""Command line of `python -m adapt`: its run plan and every option, with the hands-on's fine-tuning defaults.

`--recipe` layers a row of `minitransformer.presets.FINETUNE_RECIPES` over them; `--help` shows the result.
A new option is added twice: to `build_parser` (its flag, default and help) and to `AdaptPlan` (its typed
field, named as its dest).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from minitransformer.config import POOLINGS
from minitransformer.presets import FINETUNE_RECIPES, HANDS_ON_LR, PRETRAIN_PRESETS
from minitransformer.runs.options import (
    AT_LEAST_1,
    FRACTION,
    INIT_STD,
    NON_NEGATIVE,
    POSITIVE,
    PROBABILITY,
    THREADS,
    EffectiveDefaultsFormatter,
    Range,
    add_data_options,
    add_hardware_options,
    add_run_options,
    add_schedule_options,
    parse_layered,
    refuse_reading_the_output_dir,
)
from minitransformer.runs.plan import RunPlan
from minitransformer.runs.tracking import LOGGERS
from minitransformer.training.optimizers import OPTIMIZERS

SCHEMES = ("finetune", "features", "adapters", "gradual")
CLF_POSITIONS = ("auto", "start", "end")  # auto: end for causal models, start for BERT-style
BASELINES = ("tfidf",)


@dataclass(frozen=True, kw_only=True)
class AdaptPlan(RunPlan):
    """A fine-tuning run's settings: the shared options (`RunPlan`) and these. Each option's help is in
    `build_parser` (and `--help`)."""

    # what to adapt
    pretrained: str | None  # a model directory, hf:DIR, or none (random init); unset: the baseline alone
    architecture_from: Path | None  # with --pretrained none: the model directory whose shape is taken
    recipe: str  # the row of FINETUNE_RECIPES the values started from
    baseline: str | None  # tfidf: also fit the TF-IDF + linear SVM baseline
    tune: bool  # choose the baseline's configuration on the validation split
    # data
    task: str  # trec-6, trec-50, or a labelled file
    valid_file: Path | None  # validation file of a --task FILE (unset: hold out valid_fraction)
    test_file: Path | None  # test file of a --task FILE (unset: hold out 10 %)
    train_file: str | None  # the TREC training file (set for TREC tasks by `check_task_files`)
    # how to adapt
    scheme: str  # finetune, features, adapters or gradual
    adapters_dim: int  # adapter bottleneck size
    lm_coef: float  # weight of the auxiliary LM loss
    clf_position: str  # auto, start or end
    max_len: int | None  # truncate inputs to this many tokens (unset: the model's context)
    vocab_size: int  # tokenizer size when one is trained (--pretrained none)
    # optimisation
    seeds: list[int]  # one run per seed
    batch_size: int
    weight_decay: float
    initializer_range: float  # std of the new head's initial weights
    valid_fraction: float  # share of train held out for validation
    eval_every: int  # steps between validations (0: once per epoch only)
    bucketing: bool  # batch questions of similar length together
    pad_to_max: bool  # pad every batch to the longest input
    # fine-tuning stability techniques
    optimizer: str  # adamw, or bertadam (Adam without bias correction)
    reinit_layers: int  # re-initialise the top k layers
    pooling: str  # clf, mean, max or weighted
    layer_start: int  # first layer in weighted pooling
    llrd: float  # layer-wise lr decay (1: off)
    mixout: float  # Mixout probability (0: off)
    prior_wd: float  # weight decay toward the pretrained weights (0: off)
    swa_start: int  # average weights from this epoch on (0: off)
    swa_lr: float


# What each numeric option accepts (checked at parse time, whichever layer set it).
RANGES = {
    **dict.fromkeys(("epochs", "max_steps", "batch_size", "vocab_size"), AT_LEAST_1),
    "max_len": Range(2),  # the classification token and at least one token of text
    **dict.fromkeys(
        (
            "warmup_steps",
            "weight_decay",
            "max_norm",
            "eval_every",
            "reinit_layers",
            "layer_start",
            "prior_wd",
            "swa_start",
            "lm_coef",
            "adapters_dim",
        ),
        NON_NEGATIVE,
    ),  # fmt: skip
    **dict.fromkeys(("lr", "swa_lr"), POSITIVE),
    **dict.fromkeys(("dropout", "mixout"), PROBABILITY),
    "valid_fraction": FRACTION,
    "llrd": Range(0, 1, open_low=True),
    "threads": THREADS,
    "initializer_range": INIT_STD,
}


def seed_list(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--seeds {text!r}: expected integers separated by commas, e.g. 0,1,2"
        ) from None
    if not seeds:
        raise argparse.ArgumentTypeError("--seeds needs at least one seed")
    return seeds


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m adapt",
        description="Fine-tune a pretrained minitransformer model (or a random-init baseline, or an imported "
        "Hugging Face checkpoint) as a text classifier on TREC or any labelled text, with pytorch-ignite. "
        "Writes one model directory per seed, results.json (test metrics per seed, mean ± std), metrics.jsonl "
        "and plots/.",
        formatter_class=EffectiveDefaultsFormatter,
    )
    g = add_run_options(
        p,
        "what to adapt",
        output_dir="runs/adapt",
        resume_help="finish the run in this directory: seeds already done are kept, an interrupted seed is run "
        "again from its start (a complete run: nothing is done)",
        logger_choices=LOGGERS,
    )
    g.add_argument(
        "--pretrained",
        help="a model directory from `python -m pretrain`, `hf:DIR` for a Hugging Face BERT/GPT-2 checkpoint, "
        "or `none` for the same architecture from random initialisation (see --architecture-from)",
    )
    g.add_argument(
        "--architecture-from",
        type=Path,
        help="with --pretrained none: take the config and tokenizer from this model directory, not its weights",
    )
    g.add_argument(
        "--recipe",
        choices=sorted(FINETUNE_RECIPES),
        default="hands-on",
        help="starting values for the fine-tuning options: hands-on (the NAACL 2019 tutorial's), cpu-trec6 "
        "(lr 5e-4, layer-wise lr decay 0.7, 5 epochs: for small models pretrained on a CPU) or cpu-long (the "
        "same for 10 epochs: best on validation for TREC-6 and TREC-50; see docs/cpu_pretraining.md); "
        "--config is layered over it",
    )
    g.add_argument(
        "--baseline",
        choices=BASELINES,
        help="also fit TF-IDF word n-grams + a linear SVM, its configuration chosen on the validation "
        "split, and report it beside (needs scikit-learn); alone when --pretrained is not given",
    )
    g.add_argument("--tune", action=argparse.BooleanOptionalAction, default=True,
                   help="choose the --baseline's n-grams, casing, tf scaling and C on the validation split; "
                   "--no-tune: the fixed word 1-2-grams, lowercased, sublinear tf, C=1")  # fmt: skip

    g = add_data_options(p, "TREC files")
    g.add_argument(
        "--task",
        default="trec-6",
        help="trec-6, trec-50, or a labelled file: TSV `label<TAB>text`, or CSV with a header naming label and "
        "text columns, or headerless label,text (recognised when the first row's label appears again below)",
    )
    g.add_argument(
        "--valid-file",
        type=Path,
        help="validation file for a --task FILE, used instead of holding out --valid-fraction of it",
    )
    g.add_argument(
        "--test-file", type=Path, help="test file for a --task FILE, used instead of holding out 10 %% of it"
    )
    g.add_argument(
        "--train-file",
        help="TREC training file, e.g. train_1000.label (TREC tasks only; train_5500.label when not given)",
    )

    g = p.add_argument_group("how to adapt")
    g.add_argument(
        "--scheme",
        choices=SCHEMES,
        default="finetune",
        help="finetune: train everything; features: frozen backbone, train the head; adapters: frozen "
        "backbone, train adapters + head; gradual: unfreeze one more layer from the top each epoch",
    )
    g.add_argument("--adapters-dim", type=int, default=32, help="adapter bottleneck size (--scheme adapters)")
    g.add_argument(
        "--lm-coef", type=float, default=0.0, help="weight of the auxiliary LM loss (causal models)"
    )
    g.add_argument("--clf-position", choices=CLF_POSITIONS, default="auto",
                   help="where the classification token goes; auto: end for causal models, start for BERT-style")  # fmt: skip
    g.add_argument(
        "--max-len", type=int, help="truncate inputs to this many tokens (default: the model's context)"
    )
    g.add_argument(
        "--vocab-size",
        type=int,
        default=PRETRAIN_PRESETS["tiny"]["vocab_size"],
        help="tokenizer size when one is trained (--pretrained none)",
    )

    g = add_schedule_options(
        p,
        "optimisation (defaults: the hands-on's, or the --recipe's)",
        lr_help="peak learning rate (the head's, with --llrd)",
        warmup_help="linear warm-up, then linear decay to 0",
        lr_find_help="run Ignite's FastaiLRFinder and fine-tune with its suggestion (on TREC-6 its pick for a "
        "CPU-pretrained model was 4x the best lr measured: see docs/cpu_pretraining.md)",
    )
    p.set_defaults(lr=HANDS_ON_LR, warmup_steps=10, epochs=3)
    g.add_argument(
        "--seeds", type=seed_list, default=[0], help="run once per seed, e.g. 0,1,2; reports mean ± std"
    )
    g.add_argument("--batch-size", type=int, default=16, help="questions per optimizer step")
    g.add_argument(
        "--weight-decay", type=float, default=0.0, help="decoupled weight decay on weight matrices"
    )
    g.add_argument(
        "--initializer-range", type=float, default=0.02, help="std of the new head's initial weights"
    )
    g.add_argument("--valid-fraction", type=float, default=0.1, help="share of train held out for validation")
    g.add_argument(
        "--eval-every",
        type=int,
        default=50,
        help="validate every N steps as well as every epoch (0: once per epoch only)",
    )
    g.add_argument("--bucketing", action=argparse.BooleanOptionalAction, default=True,
                   help="batch questions of similar length together (less padding)")  # fmt: skip
    g.add_argument(
        "--pad-to-max", action="store_true", help="pad every batch to the longest input (the hands-on's way)"
    )

    g = p.add_argument_group("fine-tuning stability techniques")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw",
                   help="bertadam: Adam without bias correction (BERT's optimizer)")  # fmt: skip
    g.add_argument("--reinit-layers", type=int, default=0, help="re-initialise the top k layers and the head")
    g.add_argument("--pooling", choices=POOLINGS, default="clf",
                   help="clf token, mean/max over tokens, or learned weighted sum of layers")  # fmt: skip
    g.add_argument(
        "--layer-start", type=int, default=0, help="first layer in weighted pooling (0 = embeddings)"
    )
    g.add_argument("--llrd", type=float, default=1.0, help="layer-wise lr decay γ (1 = off; e.g. 0.9)")
    g.add_argument(
        "--mixout", type=float, default=0.0, help="Mixout probability toward pretrained weights (0 = off)"
    )
    g.add_argument(
        "--prior-wd", type=float, default=0.0, help="weight decay toward the pretrained weights λ (0 = off)"
    )
    g.add_argument("--swa-start", type=int, default=0, help="average weights from this epoch on (0 = off)")
    g.add_argument(
        "--swa-lr", type=float, default=2e-5, help="SWA learning rate (fine-tuning scale, not 0.05)"
    )

    add_hardware_options(p)
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parse_layered(parser, argv, AdaptPlan, FINETUNE_RECIPES, preset_option="recipe", ranges=RANGES)
    if args.resume:
        return args  # the run's own options are read from its folder
    refuse_reading_the_output_dir(parser, args, "pretrained", "architecture_from")
    if args.pretrained is None and args.baseline is None:
        build_parser().error("give --pretrained DIR|hf:DIR|none (and/or --baseline tfidf)")
    if not args.tune and args.baseline is None:
        build_parser().error("--no-tune applies to --baseline tfidf: add --baseline tfidf or drop --no-tune")
    check_task_files(args)
    return args


def check_task_files(args: argparse.Namespace) -> None:
    """TREC tasks take --train-file; a --task FILE takes --valid-file/--test-file: a mix is a usage error."""
    trec = args.task in ("trec-6", "trec-50")
    if trec and (args.valid_file or args.test_file):
        build_parser().error(
            f"--valid-file/--test-file go with --task FILE; --task {args.task} uses the official TREC split"
        )
    if not trec and args.train_file:
        build_parser().error(
            f"--train-file chooses a TREC training file; with --task {args.task} the training data is that file"
        )
    if trec:
        args.train_file = args.train_file or "train_5500.label"
