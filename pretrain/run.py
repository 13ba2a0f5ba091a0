"""`python -m pretrain`: wire data, tokenizer, model and Ignite engines into a pretraining run.

Every piece wired here lives in `minitransformer` and is importable on its own; this file only
decides which piece goes where. A run is a few named steps, read top to bottom in `run_steps`:

    1. plan_run        options → a read-only PretrainPlan (splits, objective); training_args.json records it
    2. build_data      tokenizer, binarized splits, seeded training batches, validation loader
    3. build_model, build_optimizer
    4. with --lr-find: `find_lr` on a bare trainer first (a resumed run reuses the lr it found)
    5. create_lm_trainer (with its warm-up + --schedule) / create_lm_evaluator
    6. attach_handlers progress, train log, validation, checkpoints (a new handler goes here)
    7. restore         --resume: the last training state (else a fresh start)
    8. trainer.run, then finish: final checkpoint, final evaluation, model directory, plots, summary

The whole run holds the folder's lock (`run_lifecycle`, shared with `adapt`), and run_state.json says
"running" until finish writes "complete"; every step may be killed and `--resume` then ends as if it
had not been.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from argparse import Namespace
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint
from ignite.handlers.param_scheduler import ParamGroupScheduler
from ignite.metrics import Loss, RunningAverage
from torch.nn import Module
from torch.optim import Optimizer

from minitransformer import TransformerWithLMHead
from minitransformer.checkpoint import read_config
from minitransformer.data.download import ensure_wikitext
from minitransformer.data.induction import copy_probe
from minitransformer.data.lm_data import BlockBatches, lm_batch
from minitransformer.data.wikitext import LMBlockDataset, wikitext_path, word_perplexity
from minitransformer.presets import config_from_options
from minitransformer.runs.errors import run_cli
from minitransformer.runs.io import write_json_atomic
from minitransformer.runs.metrics_log import MetricsLog
from minitransformer.runs.numerics import numerics, record_numerics
from minitransformer.runs.options import resumed_plan
from minitransformer.runs.run_dir import open_run_dir, run_lifecycle
from minitransformer.runs.run_state import CarriedAverage, WallClock, kill_point, write_state
from minitransformer.runs.tracking import Tracker, check_logger
from minitransformer.runs.training_state import (
    adopt_saved_checkpoints,
    best_model_checkpoint,
    latest_training_checkpoint,
    load_training_state,
    training_checkpoint,
)
from minitransformer.tokenization import Tokenizer
from minitransformer.training.engine import (
    AMP_DTYPES,
    SCHEDULES,
    Dtype,
    attach_progress,
    autocast,
    check_amp,
    choose_amp,
    create_trainer,
    find_lr,
    resolve_device,
    say,
    scored_targets,
    set_cpu_threads,
)
from minitransformer.training.flops import block_weights, flops_per_token, peak_flops
from minitransformer.training.optimizers import MuonWithAdamW, make_optimizer, parameter_groups

from .baseline import ngram_baseline
from .cli import PretrainPlan, build_parser, parse_args
from .sources import RUN_FILES, block_size, dataset_location, induction_spec, run_tokens

# -- 1. plan: every decision made before anything is built ----------------------------------------


def plan_run(args: Namespace) -> PretrainPlan:
    """The run's settings: the options, the splits and the objective (on --resume, the run's own plan
    from training_args.json, with this command's hardware options)."""
    if args.resume:
        return choose_amp(resumed_plan(PretrainPlan, build_parser(), args))
    plan = choose_amp(PretrainPlan(**vars(args)))
    train_split, valid_split = choose_splits(plan)
    note = f"trained on {plan.dataset}/{train_split}, evaluated on {plan.dataset}/{valid_split}"
    return dataclasses.replace(
        plan, train_split=train_split, valid_split=valid_split, objective=choose_objective(plan), splits=note
    )


def choose_splits(plan: PretrainPlan) -> tuple[str, str]:
    """Train/valid split names. Without a train split (offline WikiText-2), train on valid, evaluate on test."""
    dataset = dataset_location(plan)
    if plan.download:
        note = ensure_wikitext(dataset, plan.data_dir, progress=not plan.no_progress)
        if note and idist.get_rank() == 0:
            print(f"warning: {note}", file=sys.stderr)
    train_split = plan.train_split
    if train_split is None:
        try:
            wikitext_path(dataset, "train", plan.data_dir)
            train_split = "train"
        except FileNotFoundError:
            train_split = "valid"
    valid_split = plan.valid_split or ("test" if train_split == "valid" else "valid")
    return train_split, valid_split


def choose_objective(plan: PretrainPlan) -> str:
    """--objective, else the --init-from checkpoint's, else causal."""
    if plan.objective:
        return plan.objective
    if plan.init_from:
        return "mlm" if read_config(plan.init_from)[1].mlm else "clm"
    return "clm"


# -- 2. data: tokenizer, training batches, validation loader -------------------------------------


@dataclass(frozen=True)
class Data:
    """What the data step hands on: the tokenizer, the training batches and the validation loader."""

    tokenizer: Tokenizer
    batches: BlockBatches
    valid_loader: torch.utils.data.DataLoader
    tokens_per_word: float  # of the validation split: turns token NLL into word-level perplexity


def build_data(plan: PretrainPlan, out: Path) -> Data:
    """Tokenizer (trained, given or resumed), binarized splits, seeded block batches, validation loader."""
    tokenizer, train_tokens, valid_tokens = run_tokens(plan, out)
    block = block_size(plan)
    train_blocks = LMBlockDataset(train_tokens, block, plan.random_offsets, plan.seed)
    valid_loader = idist.auto_dataloader(
        LMBlockDataset(valid_tokens, block), batch_size=plan.eval_batch_size, shuffle=False, drop_last=False
    )
    return Data(
        tokenizer,
        BlockBatches(train_blocks, plan.batch_size, plan.seed),
        valid_loader,
        valid_tokens.tokens_per_word,
    )


# -- 3. model and optimizer ------------------------------------------------------------------------


def build_model(plan: PretrainPlan, tokenizer: Tokenizer) -> TransformerWithLMHead:
    """A new model shaped by the options, or the --init-from checkpoint (its own shape) to continue."""
    mlm = plan.objective == "mlm"
    if plan.init_from:
        saved = read_config(plan.init_from)[1]
        if tokenizer.vocab_size != saved.vocab_size:
            raise ValueError(
                f"--init-from {plan.init_from}: its tokenizer has {tokenizer.vocab_size} tokens, the model "
                f"{saved.vocab_size}: the directory mixes files from different runs"
            )
        return TransformerWithLMHead.from_pretrained(plan.init_from, mlm=mlm, dropout=plan.dropout)
    config = config_from_options(vars(plan), tokenizer.vocab_size, mlm=mlm)
    check_model_fits(config)
    return TransformerWithLMHead(config)


def check_model_fits(config) -> None:
    """Refuse a model whose training state (weights, gradients, AdamW's two moments: 16 bytes a parameter)
    cannot fit in this machine's memory, naming the sizes, before an allocation fails deep inside torch."""
    E, H, L = config.embed_dim, config.hidden_dim, config.num_layers
    parameters = (config.vocab_size + config.num_max_positions) * E + block_weights(config)
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if 16 * parameters > memory:
        raise ValueError(
            f"a model of --embed-dim {E}, --hidden-dim {H}, --num-layers {L} and {config.vocab_size} tokens has "
            f"~{parameters:,} parameters: training it needs ~{16 * parameters / 2**30:,.0f} GiB, this machine has "
            f"{memory / 2**30:,.0f} GiB; choose smaller sizes"
        )


def build_optimizer(plan: PretrainPlan, raw_model: torch.nn.Module) -> torch.optim.Optimizer:
    """AdamW (PyTorch's eps) with decay on weight matrices only (minGPT's rule), or Muon for the hidden
    matrices with AdamW for the rest (`--optimizer muon`); wrapped for distributed runs."""
    if plan.optimizer == "muon":
        return idist.auto_optim(MuonWithAdamW(raw_model, plan.lr, plan.weight_decay, plan.decay_embeddings))
    groups = parameter_groups(raw_model, plan.weight_decay, plan.decay_embeddings)
    return idist.auto_optim(make_optimizer(groups, "adamw", lr=plan.lr, eps=1e-8))


# -- 4. engines: the Ignite trainer and evaluator --------------------------------------------------


def create_lm_trainer(
    plan: PretrainPlan,
    model: Module,
    optimizer: Optimizer,
    prepare: Callable,
    device: torch.device,
    amp_dtype: Dtype,
    total_steps: int | None = None,
) -> tuple[Engine, ParamGroupScheduler | None]:
    """One optimizer step per iteration (accumulation, clipping, autocast inside), and its lr schedule:
    linear warm-up, then --schedule's decay to 0 at `total_steps` (None: a bare trainer, e.g. for `find_lr`)."""

    def loss_fn(m: torch.nn.Module, batch: dict) -> torch.Tensor:
        return m(batch["input_ids"].to(device), labels=batch["labels"].to(device))[1]

    trainer = create_trainer(
        model,
        optimizer,
        loss_fn,
        prepare,
        accumulation_steps=plan.accumulation_steps,
        max_norm=plan.max_norm or None,
        device=device,
        amp_dtype=amp_dtype,
        seed=plan.seed,
    )
    if total_steps is None:
        return trainer, None
    scheduler = SCHEDULES[plan.schedule](optimizer, plan.warmup_steps, total_steps)
    trainer.add_event_handler(Events.ITERATION_STARTED, scheduler)
    return trainer, scheduler


def create_lm_evaluator(model: Module, prepare: Callable, device: torch.device, amp_dtype: Dtype) -> Engine:
    """Token NLL through the model's own loss (causal: shifted labels, MLM: scored positions only),
    averaged by Ignite's `Loss` weighted by each batch's scored tokens; the same masks each time."""
    generator = torch.Generator()

    def eval_step(engine: Engine, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        model.eval()
        batch = prepare(x, generator)
        with torch.no_grad(), autocast(device, amp_dtype):
            _, loss = model(batch["input_ids"].to(device), labels=batch["labels"].to(device))
        return loss.float(), scored_targets(batch)  # the batch's mean NLL and how many tokens it averages

    evaluator = Engine(eval_step)
    Loss(lambda batch_loss, _: batch_loss, batch_size=lambda count: count).attach(evaluator, "nll")
    evaluator.add_event_handler(Events.STARTED, lambda _: generator.manual_seed(1234))
    return evaluator


class Validation:
    """Evaluate on the validation split, log it (with the run's wall time so far, for plots against
    minutes), print it and (causal) sample from the model. `probe`, when given, adds its values to each
    evaluation (the induction corpus: the loss on copied and on fresh tokens, every head's scores)."""

    def __init__(
        self, plan: PretrainPlan, evaluator: Engine, trainer: Engine, data: Data, raw_model: TransformerWithLMHead,
        log: MetricsLog, clock: WallClock, probe: Callable[[], dict[str, object]] | None = None,
    ):  # fmt: skip
        self.plan, self.evaluator, self.trainer, self.data = plan, evaluator, trainer, data
        self.raw_model, self.log, self.clock, self.probe = raw_model, log, clock, probe

    def __call__(self, final: bool = False) -> dict:
        loader, plan = self.data.valid_loader, self.plan
        length = (
            len(loader) if final or not plan.max_eval_batches else min(plan.max_eval_batches, len(loader))
        )
        self.evaluator.run(loader, epoch_length=length)
        nll = self.evaluator.state.metrics["nll"]
        step = self.trainer.state.iteration
        values = {"loss": nll, "ppl": math.exp(min(nll, 50.0)), "partial": length < len(loader)}
        causal = self.raw_model.config.causal
        if causal:
            values["word_ppl"] = word_perplexity(nll, self.data.tokens_per_word)
        else:
            values["mlm_ppl"] = values.pop("ppl")
        if self.probe is not None:
            values.update(self.probe())
        event = "final" if final else "valid"
        self.log.log(event, step, split=plan.valid_split, **values, wall_time_s=self.clock.elapsed())
        if idist.get_rank() == 0:
            shown = ", ".join(  # the uniform baselines of the head scores stay in metrics.jsonl
                f"{k}={v:.3f}"
                for k, v in values.items()
                if isinstance(v, float) and not k.endswith("_uniform")
            )
            where = f"{plan.dataset}/{plan.valid_split}"
            say(f"[step {step}] {'final ' if final else ''}valid ({where}): {shown}")
            if causal:
                self.sample(step)
        return values

    def sample(self, step: int) -> None:
        """Greedy and top-p continuations of the sample prompts, printed and logged; [UNK] is never
        sampled unless --sample-unk (WikiText's `<unk>` stands for any rare word: a sample of them says
        nothing a reader can use)."""
        tokenizer, model, plan = self.data.tokenizer, self.raw_model, self.plan
        device = next(model.parameters()).device
        unk = tokenizer.special_ids.get("unk")
        suppress = [] if plan.sample_unk or unk is None else [unk]
        if suppress and plan.sample_prompts and idist.get_rank() == 0:
            say(
                f"  samples at step {step} ([UNK] left out: it stands for any rare word; --sample-unk shows it):"
            )
        for prompt in plan.sample_prompts:
            ids = torch.tensor([tokenizer.encode(prompt)], device=device)
            if ids.numel() == 0:
                continue
            n = min(plan.sample_tokens, model.config.num_max_positions - ids.size(1))
            greedy = model.generate(ids, n, temperature=0, suppress_ids=suppress)
            nucleus = model.generate(ids, n, top_p=0.9, seed=plan.seed, suppress_ids=suppress)
            texts = {
                name: tokenizer.decode(t[0, ids.size(1) :].tolist())
                for name, t in (("greedy", greedy), ("top_p", nucleus))
            }
            self.log.log("sample", step, prompt=prompt, **texts)
            pad = " " * len(repr(prompt))
            say(f"  {prompt!r} → greedy: {texts['greedy']!r}\n  {pad}   top-p: {texts['top_p']!r}")


# -- 5. handlers: what happens around each step ----------------------------------------------------


def attach_handlers(
    plan: PretrainPlan,
    trainer: Engine,
    optimizer: Optimizer,
    validation: Validation,
    to_save: dict,
    out: Path,
    data: Data,
) -> Checkpoint:
    """Progress bar, train log, periodic validation, training-state and best-model checkpoints.

    Returns the training-state saver (the run saves once more at the end).
    """
    log = validation.log
    tokens_per_step = plan.batch_size * data.batches.dataset.block_size
    since = {"t": time.time(), "step": 0}  # the last train log, for tokens/s
    mfu = mfu_of_tokens_per_s(plan, validation.raw_model, data.batches.dataset.block_size)

    def throughput(engine: Engine) -> float:
        elapsed = time.time() - since["t"]
        return tokens_per_step * (engine.state.iteration - since["step"]) / max(elapsed, 1e-9)

    def speed(engine: Engine) -> dict:
        tokens_per_s = throughput(engine)
        return {"tok/s": tokens_per_s, **({"MFU%": 100 * mfu(tokens_per_s)} if mfu else {})}

    average = RunningAverage(output_transform=lambda out: out["loss"], alpha=0.98)
    average.attach(trainer, "avg_loss")
    to_save["avg_loss"] = CarriedAverage(average, trainer)
    if not plan.no_progress:
        attach_progress(trainer, lambda e: {"lr": optimizer.param_groups[0]["lr"], **speed(e)})

    @trainer.on(Events.ITERATION_COMPLETED(every=plan.log_every))
    def log_train(engine: Engine) -> None:
        tokens_per_s = throughput(engine)
        log.log(
            "train",
            engine.state.iteration,
            loss=engine.state.output["loss"],
            avg_loss=engine.state.metrics.get("avg_loss"),
            lr=optimizer.param_groups[0]["lr"],
            grad_norm=engine.state.output["grad_norm"],
            tokens_per_s=tokens_per_s,
            **({"mfu": mfu(tokens_per_s)} if mfu else {}),
            epoch=engine.state.iteration / data.batches.batches_per_epoch,
        )
        since.update(t=time.time(), step=engine.state.iteration)

    trainer.add_event_handler(Events.ITERATION_COMPLETED(every=plan.eval_every), lambda _: validation())
    best = best_model_checkpoint(validation.raw_model, out / "checkpoints", trainer, "nll", sign=-1.0)
    validation.evaluator.add_event_handler(Events.COMPLETED, best)
    to_save["best_model"] = best  # a resumed run knows the best so far and keeps exactly one
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: kill_point("step", e.state.iteration))
    every = plan.checkpoint_every or plan.eval_every
    saver = training_checkpoint(to_save, out / "checkpoints", n_saved=plan.keep_checkpoints)
    good_step = lambda engine, i: i % every == 0 and math.isfinite(engine.state.output["loss"])  # noqa: E731
    trainer.add_event_handler(Events.ITERATION_COMPLETED(event_filter=good_step), saver)
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED, lambda e: kill_point("checkpoint", e.state.iteration)
    )
    return saver


def mfu_of_tokens_per_s(
    plan: PretrainPlan, model: TransformerWithLMHead, block: int
) -> Callable[[float], float] | None:
    """tokens/s (all processes) → model FLOPs utilisation; None where the peak is unknown. Says once
    where the peak comes from (--peak-tflops, a matmul measured on this CPU, or the GPU's data sheet)."""
    device = next(model.parameters()).device
    peak, source = peak_flops(device, AMP_DTYPES[plan.amp], plan.peak_tflops)
    if idist.get_rank() == 0:
        say(f"MFU: {source}")
    if peak is None:
        return None
    head_fraction = plan.mlm_probability if model.config.mlm else 1.0  # MLM: the head sees masked tokens only
    flops = flops_per_token(model.config, block, head_fraction)
    return lambda tokens_per_s: tokens_per_s * flops / (peak * idist.get_world_size())


# -- the run, step by step (Ignite's `training(local_rank, config)`) -------------------------------


def train(local_rank: int, plan: PretrainPlan) -> None:
    """One process's run (`idist.Parallel` calls it on every process), holding the folder's lock."""
    check_logger(plan.logger)  # a missing extra fails before anything is written
    kept_anything = lambda: find_checkpoint(Path(plan.output_dir)) is not None  # noqa: E731
    with run_lifecycle(plan, RUN_FILES, kept_anything) as complete:
        if complete:
            return
        steps = ngram_baseline if plan.baseline else run_steps  # --baseline ngram: no Transformer
        steps(plan, WallClock())
        idist.barrier()  # leave together: gloo may abort a process whose group is torn down mid-save


def run_steps(plan: PretrainPlan, clock: WallClock) -> None:
    """The steps of the module docstring; the plan is never changed (the lr finder makes a new one)."""
    out = open_run_dir(plan, RUN_FILES, "continue", step=0)
    device = resolve_device(plan.device)
    amp_dtype = check_amp(plan.amp, device)
    if device.type == "cpu":
        set_cpu_threads(plan.threads)
    torch.manual_seed(plan.seed)
    rank0 = idist.get_rank() == 0

    data = build_data(plan, out)
    raw_model = build_model(plan, data.tokenizer).to(device)
    if raw_model.config.mlm and plan.sample_prompts and rank0:
        print("note: masked-LM models do not generate text; samples are skipped")
    model = idist.auto_model(raw_model, sync_bn=False)
    if plan.compile:
        model = torch.compile(model)
    optimizer = build_optimizer(plan, raw_model)
    prepare = lm_batch(raw_model.config, data.tokenizer, plan.mlm_probability)
    if plan.lr_find and not plan.lr_found and not find_checkpoint(out):
        bare, _ = create_lm_trainer(plan, model, optimizer, prepare, device, amp_dtype)
        plot = out / "plots" / "lr_finder.png"
        suggestion = find_lr(bare, raw_model, optimizer, data.batches.iterate(0), plot_path=plot)
        if rank0:
            print(f"learning-rate finder suggests {suggestion:.3g} (was {plan.lr:.3g}); training with it")
        plan = dataclasses.replace(plan, lr=suggestion, lr_found=suggestion)
        if rank0:
            write_json_atomic(out / "training_args.json", plan.to_json())  # a resumed run reuses the lr

    total_steps = plan.max_steps or plan.epochs * data.batches.batches_per_epoch
    trainer, scheduler = create_lm_trainer(plan, model, optimizer, prepare, device, amp_dtype, total_steps)
    log = MetricsLog(out / "metrics.jsonl")
    to_save = {"model": raw_model, "optimizer": optimizer, "lr_scheduler": scheduler, "trainer": trainer}
    to_save.update(metrics_log=log, wall_clock=clock)
    evaluator = create_lm_evaluator(model, prepare, device, amp_dtype)
    probe = None
    if plan.dataset == "induction":
        probe = copy_probe(raw_model, data.tokenizer, induction_spec(plan), plan.seed)
    validation = Validation(plan, evaluator, trainer, data, raw_model, log, clock, probe)
    saver = attach_handlers(plan, trainer, optimizer, validation, to_save, out, data)
    resumed = restore(plan, to_save, saver, out)
    record_numerics(out, numerics(plan, device), log, trainer.state.iteration, continuing=resumed)
    tracker = Tracker(plan.logger, out / "tensorboard", log, trainer, optimizer, plan.log_every)

    if not resumed:
        if rank0:
            size = f"{raw_model.config.num_layers} layers × {raw_model.config.embed_dim} dims"
            print(f"{size}, {raw_model.num_parameters():,} parameters; {plan.splits}")
        validation()  # the untrained model at step 0: perplexity ≈ vocabulary size
    if trainer.state.iteration < total_steps:  # a run resumed at its last step has only finish left
        trainer.run(
            data.batches.iterate(trainer.state.iteration),
            max_iters=total_steps,
            epoch_length=data.batches.batches_per_epoch,
        )
    finish(plan, trainer, validation, saver, tracker, out, clock)


def find_checkpoint(out: Path) -> Path | None:
    """The newest training checkpoint of the run in `out`, or None."""
    try:
        return latest_training_checkpoint(out / "checkpoints")
    except FileNotFoundError:
        return None


def restore(plan: PretrainPlan, to_save: dict, saver: Checkpoint, out: Path) -> bool:
    """--resume: load the last training state (model, optimizer, schedule, trainer, metrics log, best
    model, clock) and return True. Without a checkpoint (a new run, or one killed before its first)
    the run starts from step 0: its metrics and best model are cleared."""
    checkpoint = find_checkpoint(out) if plan.resume else None
    log, best = to_save["metrics_log"], to_save["best_model"]
    if checkpoint is None:
        if plan.resume and idist.get_rank() == 0:
            log.keep(lambda *_: False)
            remove_best_models(out, keep=None)
            print(f"{out} has no training checkpoint yet: starting it again from step 0")
        return False
    load_training_state(checkpoint, to_save)
    adopt_saved_checkpoints(saver, out / "checkpoints")  # keep the last k of all, not of this process's
    if idist.get_rank() == 0:  # best models written after the checkpoint: the resumed run writes them again
        remove_best_models(out, keep=Path(best.last_checkpoint).name if best.last_checkpoint else None)
        print(f"resuming from {checkpoint} (step {to_save['trainer'].state.iteration})")
    return True


def remove_best_models(out: Path, keep: str | None) -> None:
    """Delete the run's best-model files except the one named `keep` (None: all of them)."""
    for stale in (out / "checkpoints").glob("best_*.pt"):
        if stale.name != keep:
            stale.unlink()


def finish(
    plan: PretrainPlan, trainer: Engine, validation: Validation, saver: Checkpoint, tracker: Tracker, out: Path,
    clock: WallClock,
) -> None:  # fmt: skip
    """Last checkpoint, final evaluation on the whole validation split, model directory, plots (also to
    the tracker), summary, "complete". The checkpoint comes first: a run killed after it resumes here."""
    if not math.isfinite(trainer.state.output["loss"] if trainer.state.output else 0.0):
        raise FloatingPointError(
            f"the loss became {trainer.state.output['loss']} at step {trainer.state.iteration}; training stopped. "
            f"The last good states are kept in {out / 'checkpoints'}; --resume would repeat the same steps: "
            "start again with a lower --lr or a --max-norm (with --overwrite, or another --output-dir)"
        )
    step = trainer.state.iteration
    if not (out / "checkpoints" / f"training_checkpoint_{step}.pt").exists():
        saver(trainer)
    kill_point("last_checkpoint")
    final = validation(final=True)
    kill_point("final_eval")
    if idist.get_rank() == 0:
        validation.raw_model.save_pretrained(out, tokenizer=validation.data.tokenizer)
        kill_point("final_save")
        write_plots(out)
        tracker.finish(out / "plots")
        elapsed = clock.elapsed()
        validation.log.log("summary", step, wall_time_s=elapsed, splits=plan.splits, **final)
        write_state(out, "complete", step=step, wall_time_s=elapsed)
        print(f"done in {elapsed / 60:.1f} min; model saved to {out} ({plan.splits})")


def write_plots(out: Path) -> None:
    """Loss, perplexity and learning-rate curves from metrics.jsonl into plots/."""
    from minitransformer.teaching import plots

    plots.plot_training_curves(out / "metrics.jsonl", path=out / "plots" / "training_curves.png")


def backend() -> str | None:
    """gloo/nccl when launched by torchrun (WORLD_SIZE set), None for a single process."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    return "nccl" if torch.cuda.is_available() else "gloo"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def run() -> None:
        plan = plan_run(args)
        with idist.Parallel(backend=backend()) as parallel:
            parallel.run(train, plan)

    return run_cli(run)
