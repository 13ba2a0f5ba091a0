"""`python -m pretrain`: wire data, tokenizer, model and Ignite engines into a pretraining run.

Every piece wired here lives in `minitransformer` and is importable on its own; this file only
decides which piece goes where, in the order a reader would explain the run:
splits → tokenizer → binarized blocks → model → optimizer/schedule → trainer/evaluator → handlers.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from argparse import Namespace
from collections.abc import Iterator
from pathlib import Path

import ignite.distributed as idist
import torch
import torch.nn.functional as F
from ignite.engine import Engine, Events
from ignite.metrics import Loss, RunningAverage

from minitransformer import TransformerConfig, TransformerWithLMHead
from minitransformer.checkpoint import read_config
from minitransformer.data.classification import load_trec, write_lm_corpus
from minitransformer.data.download import ensure_trec, ensure_wikitext
from minitransformer.data.masking import mask_tokens
from minitransformer.data.paths import default_cache_dir
from minitransformer.data.wikitext import LMBlockDataset, TokenFile, binarize, read_lines, wikitext_path
from minitransformer.engine import (
    MetricsLog,
    attach_progress,
    autocast,
    best_model_checkpoint,
    check_amp,
    create_trainer,
    find_learning_rate,
    latest_training_checkpoint,
    load_training_state,
    resolve_device,
    say,
    scale_learning_rates,
    set_cpu_threads,
    split_tensors,
    training_checkpoint,
    warmup_cosine,
)
from minitransformer.errors import run_cli
from minitransformer.io import write_json_atomic
from minitransformer.optim import parameter_groups
from minitransformer.options import options_to_json
from minitransformer.tokenization import Tokenizer
from minitransformer.tracking import Tracker, check_logger

from .cli import parse_args

RUN_FILES = ("config.json", "model.safetensors", "tokenizer.json", "training_args.json", "metrics.jsonl")
HARDWARE_OPTIONS = ("device", "threads", "no_progress", "compile", "amp", "logger")  # may change on --resume


# -- data -----------------------------------------------------------------------------------------


def trec_questions_corpus(args: Namespace) -> Path:
    """TREC training questions without labels as train.txt/valid.txt (built once, in the cache)."""
    directory = (args.cache_dir or default_cache_dir() / "binarized").parent / "trec-questions"
    if not (directory / "valid.txt").is_file():
        if args.download:
            ensure_trec(args.data_dir, progress=not args.no_progress)
        train, _ = load_trec(args.data_dir)
        write_lm_corpus(train, directory)
    return directory


def resolve_splits(args: Namespace) -> tuple[Path, Path]:
    """Train/valid files. Without a train split (offline WikiText-2), train on valid, evaluate on test."""
    dataset = str(trec_questions_corpus(args)) if args.dataset == "trec-questions" else args.dataset
    if args.download:
        note = ensure_wikitext(dataset, args.data_dir, progress=not args.no_progress)
        if note and idist.get_rank() == 0:
            print(f"warning: {note}", file=sys.stderr)
    train_split = args.train_split
    if train_split is None:
        try:
            wikitext_path(dataset, "train", args.data_dir)
            train_split = "train"
        except FileNotFoundError:
            train_split = "valid"
    valid_split = args.valid_split or ("test" if train_split == "valid" else "valid")
    args.train_split, args.valid_split = train_split, valid_split
    return wikitext_path(dataset, train_split, args.data_dir), wikitext_path(
        dataset, valid_split, args.data_dir
    )


class BlockBatches:
    """Shuffled batches of LM blocks where batch i depends only on (seed, i).

    That is what makes `--resume` exact: a restarted run asks for batches from its checkpoint's
    iteration on and gets the very batches the interrupted run would have seen. In a distributed run
    each process takes its share of the same global batch (rank r takes rows r, r+W, ...), as a
    DistributedSampler would.
    """

    def __init__(self, dataset: LMBlockDataset, batch_size: int, seed: int):
        world = idist.get_world_size()
        if batch_size % world:
            raise ValueError(f"--batch-size {batch_size} must be divisible by the {world} processes")
        if len(dataset) < batch_size:
            raise ValueError(
                f"the training split has {len(dataset)} blocks, fewer than --batch-size {batch_size}: "
                "use a smaller batch or block size"
            )
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.batches_per_epoch = len(dataset) // batch_size

    def iterate(self, start: int) -> Iterator[torch.Tensor]:
        rank, world = idist.get_rank(), idist.get_world_size()
        epoch, order = None, None
        for i in range(start, sys.maxsize):
            e, j = divmod(i, self.batches_per_epoch)
            if e != epoch:
                epoch = e
                self.dataset.set_epoch(e)
                order = torch.randperm(
                    len(self.dataset), generator=torch.Generator().manual_seed(self.seed * 7919 + e)
                )
            rows = order[j * self.batch_size : (j + 1) * self.batch_size][rank::world]
            yield torch.stack([self.dataset[int(k)] for k in rows])  # (B / world, block)


def load_tokenizer(args: Namespace, train_file: Path, output_dir: Path) -> Tokenizer:
    """The run's tokenizer: the resumed run's, the one given, or one trained on the training split."""
    if args.resume:
        return Tokenizer.from_pretrained(output_dir)
    if idist.get_rank() == 0:
        if args.init_from:  # continued pretraining reuses the checkpoint's tokenizer, never retrains it
            tokenizer = Tokenizer.from_pretrained(args.init_from)
        elif args.tokenizer:
            path = Path(args.tokenizer)
            tokenizer = Tokenizer.from_pretrained(path) if path.is_dir() else Tokenizer.from_file(path)
        else:
            print(f"training a {args.tokenizer_kind} tokenizer ({args.vocab_size} tokens) on {train_file}")
            tokenizer = Tokenizer.train(
                read_lines(train_file),
                kind=args.tokenizer_kind,
                vocab_size=args.vocab_size,
                lowercase=args.lowercase,
            )
        tokenizer.save_pretrained(output_dir)  # the run directory always carries its own tokenizer
    idist.barrier()
    return Tokenizer.from_pretrained(output_dir)


def binarize_splits(
    args: Namespace, tokenizer: Tokenizer, files: tuple[Path, Path]
) -> tuple[TokenFile, TokenFile]:
    if idist.get_rank() == 0:  # one process writes the cache, the others then read it
        for f in files:
            binarize(f, tokenizer, args.cache_dir)
    idist.barrier()
    train, valid = (binarize(f, tokenizer, args.cache_dir) for f in files)
    return train, valid


def build_model(args: Namespace, tokenizer: Tokenizer) -> TransformerWithLMHead:
    """A new model shaped by the options, or the --init-from checkpoint (its own shape) to continue."""
    if args.init_from:
        _, saved, _ = read_config(args.init_from)
        mlm = saved.mlm if args.objective is None else args.objective == "mlm"
        args.objective = "mlm" if mlm else "clm"
        if tokenizer.vocab_size != saved.num_embeddings:
            raise ValueError(
                f"--init-from {args.init_from}: its tokenizer has {tokenizer.vocab_size} tokens, the model "
                f"{saved.num_embeddings}: the directory mixes files from different runs"
            )
        return TransformerWithLMHead.from_pretrained(args.init_from, mlm=mlm, dropout=args.dropout)
    args.objective = args.objective or "clm"
    return TransformerWithLMHead(model_config(args, tokenizer.vocab_size))


def model_config(args: Namespace, vocab_size: int) -> TransformerConfig:
    """The model shape the options describe (e.g. a preset's), for a vocabulary of `vocab_size`."""
    return TransformerConfig(
        embed_dim=args.embed_dim,
        hidden_dim=args.hidden_dim,
        num_heads=args.num_heads,
        num_layers=args.num_layers,
        num_max_positions=args.num_max_positions,
        num_embeddings=vocab_size,
        dropout=args.dropout,
        initializer_range=args.initializer_range,
        mlm=args.objective == "mlm",
        sinusoidal_embeddings=args.sinusoidal_embeddings,
        activation=args.activation,
        norm_placement=args.norm_placement,
        final_layer_norm=args.norm_placement == "pre"
        if args.final_layer_norm is None
        else args.final_layer_norm,
    )


# -- output directory -----------------------------------------------------------------------------


def prepare_output_dir(args: Namespace) -> Path:
    """Refuse to mix two runs in one directory; on --resume, restore the run's own options."""
    if args.resume:
        out = Path(args.resume)
        saved = out / "training_args.json"
        if not saved.is_file():
            raise FileNotFoundError(
                f"--resume {out}: no training_args.json there; is it a pretraining run directory?"
            )
        values = json.loads(saved.read_text(encoding="utf-8"))
        for key, value in values.items():
            if key not in HARDWARE_OPTIONS and key not in ("resume", "output_dir"):
                setattr(args, key, value)
        args.output_dir = out
        return out
    out = Path(args.output_dir)
    existing = [name for name in (*RUN_FILES, "checkpoints") if (out / name).exists()]
    if existing and not args.overwrite:
        raise FileExistsError(
            f"--output-dir {out} already holds a run ({', '.join(existing)}): pass --overwrite to replace "
            f"it, --resume {out} to continue it, or choose another directory"
        )
    if idist.get_rank() == 0:
        for name in existing + ["plots"]:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        out.mkdir(parents=True, exist_ok=True)
    idist.barrier()
    return out


# -- the run --------------------------------------------------------------------------------------


def train(local_rank: int, args: Namespace) -> None:
    start_time = time.time()
    check_logger(args.logger)
    out = prepare_output_dir(args)
    device = resolve_device(args.device)
    amp_dtype = check_amp(args.amp, device)
    if device.type == "cpu":
        set_cpu_threads(args.threads)
    torch.manual_seed(args.seed)
    rank0 = idist.get_rank() == 0

    train_file, valid_file = resolve_splits(args)
    split_note = (
        f"trained on {args.dataset}/{args.train_split}, evaluated on {args.dataset}/{args.valid_split}"
    )
    tokenizer = load_tokenizer(args, train_file, out)
    train_tokens, valid_tokens = binarize_splits(args, tokenizer, (train_file, valid_file))

    raw_model = build_model(args, tokenizer).to(device)
    config = raw_model.config
    if config.mlm and args.sample_prompts and rank0:
        print("note: masked-LM models do not generate text; samples are skipped")
    model = idist.auto_model(raw_model, sync_bn=False)
    if args.compile:
        model = torch.compile(model)
    optimizer = idist.auto_optim(
        torch.optim.AdamW(
            parameter_groups(raw_model, args.weight_decay, args.decay_embeddings),
            lr=args.lr,
            betas=(0.9, 0.999),
        )
    )

    block = config.num_max_positions
    batches = BlockBatches(
        LMBlockDataset(train_tokens, block, args.random_offsets, args.seed), args.batch_size, args.seed
    )
    total_steps = args.max_steps or args.epochs * batches.batches_per_epoch
    special = list(tokenizer.special_ids.values())
    mask_id = tokenizer.special_ids.get("mask")
    if config.mlm and mask_id is None:
        raise ValueError("--objective mlm needs a [MASK] token in the tokenizer")

    def mlm_inputs(
        x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not config.mlm:
            return x, x
        return mask_tokens(x, config.num_embeddings, special, mask_id, args.mlm_probability, generator)

    def loss_fn(m: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        inputs, labels = mlm_inputs(x)
        return m(inputs.to(device), labels=labels.to(device))[1]

    def new_trainer() -> Engine:
        return create_trainer(
            model, optimizer, loss_fn, split_tensors, args.accumulation_steps, args.max_norm or None,
            device, amp_dtype, args.seed,
        )  # fmt: skip

    if args.lr_find and not args.resume:
        suggestion = find_learning_rate(
            new_trainer(), raw_model, optimizer, batches.iterate(0), plot_path=out / "plots" / "lr_finder.png"
        )
        scale_learning_rates(optimizer, suggestion / args.lr)
        if rank0:
            print(f"learning-rate finder suggests {suggestion:.3g} (was {args.lr:.3g}); training with it")
        args.lr = suggestion
    trainer = new_trainer()
    scheduler = warmup_cosine(optimizer, args.warmup_steps, total_steps)
    trainer.add_event_handler(Events.ITERATION_STARTED, scheduler)

    # -- evaluation: token NLL with Ignite's Loss, weighted by the number of scored tokens --------
    eval_generator = torch.Generator()

    def eval_step(engine: Engine, x: torch.Tensor):
        model.eval()
        inputs, labels = mlm_inputs(x, eval_generator)
        with torch.no_grad(), autocast(device, amp_dtype):
            logits = model(inputs.to(device))
        labels = labels.to(device)
        if config.causal:
            logits, labels = logits[:, :-1], labels[:, 1:]
        return logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1)

    evaluator = Engine(eval_step)
    Loss(
        lambda logits, y: F.cross_entropy(logits, y, ignore_index=-100),
        batch_size=lambda y: int((y != -100).sum()),
    ).attach(evaluator, "nll")
    evaluator.add_event_handler(
        Events.STARTED, lambda _: eval_generator.manual_seed(1234)
    )  # same masks each time
    valid_loader = idist.auto_dataloader(
        LMBlockDataset(valid_tokens, block), batch_size=args.eval_batch_size, shuffle=False, drop_last=False
    )

    log = MetricsLog(out / "metrics.jsonl", resume_step=None)
    to_save = {"model": raw_model, "optimizer": optimizer, "lr_scheduler": scheduler, "trainer": trainer}
    resume_step = None
    if args.resume:
        checkpoint = latest_training_checkpoint(out / "checkpoints")
        load_training_state(checkpoint, to_save)
        resume_step = trainer.state.iteration
        log = MetricsLog(out / "metrics.jsonl", resume_step=resume_step)
        if rank0:
            print(f"resuming from {checkpoint} (step {resume_step})")
    elif rank0:
        write_json_atomic(out / "training_args.json", {**options_to_json(args), "splits": split_note})

    def evaluate(final: bool) -> dict:
        length = (
            len(valid_loader)
            if final or not args.max_eval_batches
            else min(args.max_eval_batches, len(valid_loader))
        )
        evaluator.run(valid_loader, epoch_length=length)
        nll = evaluator.state.metrics["nll"]
        step = trainer.state.iteration
        values = {"loss": nll, "ppl": math.exp(min(nll, 50.0)), "partial": length < len(valid_loader)}
        if config.causal:
            values["word_ppl"] = math.exp(min(nll * valid_tokens.tokens_per_word, 50.0))
        else:
            values["mlm_ppl"] = values.pop("ppl")
        log.log("final" if final else "valid", step, split=args.valid_split, **values)
        if rank0:
            shown = ", ".join(f"{k}={v:.3f}" for k, v in values.items() if isinstance(v, float))
            say(
                f"[step {step}] {'final ' if final else ''}valid ({args.dataset}/{args.valid_split}): {shown}"
            )
            if config.causal:
                log_samples(step)
        return values

    def log_samples(step: int) -> None:
        for prompt in args.sample_prompts:
            ids = torch.tensor([tokenizer.encode(prompt)], device=device)
            if ids.numel() == 0:
                continue
            n = min(args.sample_tokens, config.num_max_positions - ids.size(1))
            greedy = raw_model.generate(ids, n, temperature=0)
            nucleus = raw_model.generate(ids, n, top_p=0.9, seed=args.seed)
            texts = {
                name: tokenizer.decode(t[0, ids.size(1) :].tolist())
                for name, t in (("greedy", greedy), ("top_p", nucleus))
            }
            log.log("sample", step, prompt=prompt, **texts)
            say(
                f"  {prompt!r} → greedy: {texts['greedy']!r}\n  {' ' * len(repr(prompt))}   top-p: {texts['top_p']!r}"
            )

    # -- handlers -------------------------------------------------------------------------------
    tokens_per_step = args.batch_size * block
    timer = {"t": time.time(), "step": 0}

    def throughput(engine: Engine) -> float:
        elapsed = time.time() - timer["t"]
        return tokens_per_step * (engine.state.iteration - timer["step"]) / max(elapsed, 1e-9)

    RunningAverage(output_transform=lambda out: out["loss"], alpha=0.98).attach(trainer, "avg_loss")
    if not args.no_progress:
        attach_progress(trainer, lambda e: {"lr": optimizer.param_groups[0]["lr"], "tok/s": throughput(e)})

    @trainer.on(Events.ITERATION_COMPLETED(every=args.log_every))
    def log_train(engine: Engine) -> None:
        log.log(
            "train",
            engine.state.iteration,
            loss=engine.state.output["loss"],
            avg_loss=engine.state.metrics.get("avg_loss"),
            lr=optimizer.param_groups[0]["lr"],
            grad_norm=engine.state.output["grad_norm"],
            tokens_per_s=throughput(engine),
            epoch=engine.state.iteration / batches.batches_per_epoch,
        )
        timer.update(t=time.time(), step=engine.state.iteration)

    tracker = Tracker(args.logger, out / "tensorboard", log, trainer, optimizer, args.log_every)
    finite = lambda engine, _: math.isfinite(engine.state.output["loss"])  # noqa: E731
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED(every=args.eval_every), lambda _: evaluate(final=False)
    )
    every = args.checkpoint_every or args.eval_every
    saver = training_checkpoint(to_save, out / "checkpoints")
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED(event_filter=lambda e, i: i % every == 0 and finite(e, i)), saver
    )
    evaluator.add_event_handler(
        Events.COMPLETED, best_model_checkpoint(raw_model, out / "checkpoints", trainer, "nll", sign=-1.0)
    )

    if resume_step is None and rank0:
        print(
            f"{config.num_layers} layers × {config.embed_dim} dims, {raw_model.num_parameters():,} parameters; {split_note}"
        )
    if resume_step is None:
        evaluate(final=False)  # the untrained model at step 0: perplexity ≈ vocabulary size

    trainer.run(
        batches.iterate(trainer.state.iteration),
        max_iters=total_steps,
        epoch_length=batches.batches_per_epoch,
    )

    if not math.isfinite(trainer.state.output["loss"] if trainer.state.output else 0.0):
        raise FloatingPointError(
            f"the loss became {trainer.state.output['loss']} at step {trainer.state.iteration}; training stopped. "
            f"The last good state is in {out / 'checkpoints'}: lower --lr or use --max-norm, then --resume"
        )
    final = evaluate(final=True)
    saver(trainer)
    if rank0:
        raw_model.save_pretrained(out, tokenizer=tokenizer)
        write_plots(out)
        tracker.finish(out / "plots")
        elapsed = time.time() - start_time
        log.log("summary", trainer.state.iteration, wall_time_s=elapsed, splits=split_note, **final)
        print(f"done in {elapsed / 60:.1f} min; model saved to {out} ({split_note})")


def write_plots(out: Path) -> None:
    """Loss, perplexity and learning-rate curves from metrics.jsonl into plots/."""
    from minitransformer import plots

    plots.plot_training_curves(out / "metrics.jsonl", path=out / "plots" / "training_curves.png")


def backend() -> str | None:
    """gloo/nccl when launched by torchrun (WORLD_SIZE set), None for a single process."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    return "nccl" if torch.cuda.is_available() else "gloo"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def run() -> None:
        with idist.Parallel(backend=backend()) as parallel:
            parallel.run(train, args)

    return run_cli(run)
