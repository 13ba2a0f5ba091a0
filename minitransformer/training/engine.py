"""Ignite building blocks shared by `pretrain` and `adapt`.

Ignite runs the loop; this module only supplies what it does not have: a process function with
gradient accumulation, clipping and autocast, and per-iteration seeding so that a resumed run replays
the same dropout masks (`create_trainer`); device/precision choices with clear errors; the progress
bar; the learning-rate schedules and `find_lr`. What a run writes (the metrics log, the checkpoints
`--resume` reads back) is in `minitransformer.runs`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
from collections.abc import Callable
from typing import Any, TypeVar

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from ignite.handlers import FastaiLRFinder, ProgressBar, TerminateOnNan
from ignite.handlers.param_scheduler import (
    ConcatScheduler,
    CosineAnnealingScheduler,
    ParamGroupScheduler,
    PiecewiseLinear,
)
from tqdm import tqdm

from ..config import IGNORE_INDEX
from ..runs.plan import RunPlan

# Keep Ignite's INFO chatter (launcher, auto_dataloader) out of the run log.
for _name in ("ignite", "ignite.distributed.launcher.Parallel", "ignite.distributed.auto.auto_dataloader"):
    logging.getLogger(_name).setLevel(logging.WARNING)
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}
Dtype = torch.dtype | None  # an autocast dtype; None = full precision
Plan = TypeVar("Plan", bound=RunPlan)


# -- device and precision -------------------------------------------------------------------------


def resolve_device(name: str = "auto") -> torch.device:
    """ "auto" → this process's CUDA device when present, else CPU. Errors for an absent CUDA."""
    if name == "auto":
        return idist.device()
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA device is available here; use --device cpu or auto")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise ValueError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")
    return torch.device(name)


def check_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `--amp`, refusing combinations the hardware cannot run."""
    if amp not in AMP_DTYPES:
        raise ValueError(f"--amp {amp!r}: expected one of {sorted(AMP_DTYPES)}")
    if amp == "none":
        return None
    if device.type == "cpu":
        if amp == "fp16":
            raise ValueError("--amp fp16 needs a CUDA GPU; on CPU use --amp bf16 (if supported) or none")
        if not cpu_has_bf16():
            raise ValueError(
                "--amp bf16: this CPU has no native bfloat16 support (AVX512-BF16/AMX); use --amp none"
            )
    elif amp == "bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError("--amp bf16: this GPU does not support bfloat16; use --amp fp16")
    return AMP_DTYPES[amp]


def resolve_amp(amp: str, device: torch.device) -> tuple[str, str]:
    """`--amp auto` → "bf16" where the hardware computes in bfloat16 natively, else "none"; any other
    value is returned as given. Also returns why, for the one line the programs print.

    On a CPU with AVX512-BF16 or AMX, bf16 autocast ran the tiny preset's training step 1.38x faster at
    the same loss (benchmarks/README.md); elsewhere bf16 is emulated and slower, so fp32 stays.
    """
    if amp != "auto":
        return amp, "as asked"
    if device.type == "cpu":
        if cpu_has_bf16():
            return "bf16", "auto: this CPU has native bfloat16 (AVX512-BF16/AMX)"
        return "none", "auto: this CPU has no native bfloat16, fp32"
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16", "auto: this GPU supports bfloat16"
    return "none", f"auto: no bfloat16 on {device}, fp32"


def choose_amp(plan: Plan) -> Plan:
    """The run plan with `--amp auto` resolved (so training_args.json records the choice), said once."""
    amp, why = resolve_amp(plan.amp, resolve_device(plan.device))
    if int(os.environ.get("RANK", "0")) == 0:  # planning runs before the process group exists
        say(f"precision: {'fp32' if amp == 'none' else amp + ' autocast'} ({why})")
    return dataclasses.replace(plan, amp=amp)


def cpu_has_bf16() -> bool:
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast to `dtype` on `device`, or a no-op context when dtype is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def set_cpu_threads(threads: int | None = None) -> int:
    """Use the physical cores we are allowed (or `threads`), split between distributed processes."""
    if threads is None:
        available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        threads = max(1, available // max(1, idist.get_nproc_per_node()))
    torch.set_num_threads(threads)
    return threads


# -- the training step ----------------------------------------------------------------------------


def create_trainer(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.nn.Module, dict], torch.Tensor],
    prepare_batch: Callable[[Any], dict] | None = None,
    *,
    accumulation_steps: int = 1,
    max_norm: float | None = 1.0,
    device: torch.device | None = None,
    amp_dtype: torch.dtype | None = None,
    seed: int = 0,
) -> Engine:
    """An Ignite trainer whose iteration is one optimizer step.

    A step: seed dropout with (seed, iteration, rank), so that a resumed run replays the same masks;
    `prepare_batch(batch)` turns the loader's batch into a dict of tensors with "labels" (MLM draws its
    masks here, for the whole batch; without it the loader's batch is that dict); split it into
    `accumulation_steps` micro-batches; add up their gradients; clip to `max_norm` (None: no clipping);
    one optimizer step. `loss_fn(model, micro_batch)` returns the mean loss over the targets the
    micro-batch scores (its labels != IGNORE_INDEX); each micro-batch's loss is weighted by its
    share of the batch's targets, so accumulation k gives the gradient of one batch k times larger
    even when micro-batches score unequal counts (masked tokens, padding, a short last one).
    Under DDP the gradients are all-reduced once per step, in the last micro-batch's backward.
    The output is {"loss": mean loss (averaged over processes), "grad_norm": norm before clipping}.
    """
    device = device or torch.device("cpu")
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None

    def step(engine: Engine, batch: Any) -> dict[str, float]:
        torch.manual_seed(seed * 1_000_003 + engine.state.iteration * 1009 + idist.get_rank())
        model.train()
        optimizer.zero_grad(set_to_none=True)
        micro_batches = split_rows(prepare_batch(batch) if prepare_batch else batch, accumulation_steps)
        counts = [scored_targets(micro) for micro in micro_batches]
        total = 0.0
        for i, (micro, count) in enumerate(zip(micro_batches, counts)):
            last = i == len(micro_batches) - 1
            with gradient_sync(model, last):  # DDP: all-reduce in the last backward only
                with autocast(device, amp_dtype):
                    loss = loss_fn(model, micro) * (count / max(sum(counts), 1))
                (scaler.scale(loss) if scaler else loss).backward()
            total += loss.detach()
        loss_value = float(idist.all_reduce(total.float()) / idist.get_world_size())
        if scaler:
            scaler.unscale_(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm else math.inf))
        if not math.isfinite(loss_value):  # keep the weights good; TerminateOnNan stops the run
            return {"loss": loss_value, "grad_norm": grad_norm}
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        return {"loss": loss_value, "grad_norm": grad_norm}

    trainer = Engine(step)
    trainer.add_event_handler(Events.ITERATION_COMPLETED, TerminateOnNan(lambda out: out["loss"]))
    return trainer


def gradient_sync(model: torch.nn.Module, sync: bool):
    """DDP all-reduces gradients in every backward; `no_sync` keeps them local. With accumulation, only
    the last micro-batch's backward needs to sync (nanoGPT's `require_backward_grad_sync`): one
    all-reduce per optimizer step instead of one per micro-batch. A no-op for a plain model."""
    return contextlib.nullcontext() if sync or not hasattr(model, "no_sync") else model.no_sync()


def scored_targets(batch: dict) -> int:
    """How many targets a batch's loss averages over: its labels that are not IGNORE_INDEX."""
    return int((batch["labels"] != IGNORE_INDEX).sum())


def split_rows(batch: dict[str, torch.Tensor], parts: int) -> list[dict[str, torch.Tensor]]:
    """Split a dict of tensors sharing a batch dimension into `parts` micro-batches of whole rows."""
    if parts == 1:
        return [batch]
    chunks = {k: v.chunk(parts) for k, v in batch.items()}
    return [{k: c[i] for k, c in chunks.items()} for i in range(len(next(iter(chunks.values()))))]


def say(message: str) -> None:
    """Print a line above the progress bars (tqdm.write), never onto the bar's own line."""
    tqdm.write(message)


def attach_progress(trainer: Engine, extra: Callable[[Engine], dict] | None = None) -> None:
    """A tqdm bar (rank 0 only): "batch: [i/n]" within the epoch, then the epoch "e/E", the global step,
    the running-average loss `avg_loss` and whatever `extra` reports. Print beside it with `say`, never
    with print."""
    if idist.get_rank() != 0:
        return
    bar = ProgressBar(persist=True, desc="batch")
    bar.attach(
        trainer,
        output_transform=lambda out: {
            "epoch": epoch_of(trainer),
            "step": trainer.state.iteration,
            "loss": trainer.state.metrics.get("avg_loss", out["loss"]),
            **(extra(trainer) if extra is not None else {}),
        },
    )
    trainer.add_event_handler(Events.COMPLETED, leave_bar, bar)


def leave_bar(trainer: Engine, bar: ProgressBar) -> None:
    """Close the bar when a run ends inside an epoch (`--max-steps`): Ignite closes it at an epoch's end
    only, and what the run prints after training would land on the still open bar. The bar's total
    becomes the batches run (a notebook draws a bar closed short of its total red, as an error)."""
    if bar.pbar is not None:
        bar.pbar.total = bar.pbar.n
        bar.pbar.close()
        bar.pbar = None


def epoch_of(trainer: Engine) -> str:
    """The current epoch over the run's total ("3/5"), also when the run is given in steps (`max_iters`)."""
    state = trainer.state
    total = state.max_epochs
    if state.max_iters and state.epoch_length:
        total = math.ceil(state.max_iters / state.epoch_length)  # the last epoch may be partial
    return f"{state.epoch}/{total}"


# -- learning-rate schedules ----------------------------------------------------------------------


def _per_group(optimizer: torch.optim.Optimizer, make) -> ParamGroupScheduler:
    """One Ignite scheduler per parameter group, each scaled to that group's own peak lr.

    A single scheduler would set one lr on every group and erase layer-wise lr decay ratios.
    """
    peaks = [group.setdefault("initial_lr", group["lr"]) for group in optimizer.param_groups]
    schedulers = [make(peak, i) for i, peak in enumerate(peaks)]
    return ParamGroupScheduler(schedulers, names=[f"group_{i}" for i in range(len(schedulers))])


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
) -> ParamGroupScheduler:
    """Linear warm-up 0 → peak over `warmup_steps`, then cosine peak → 0 at `total_steps`, per group."""
    decay_steps = max(1, total_steps - warmup_steps)

    def make(peak: float, index: int):
        cosine = CosineAnnealingScheduler(
            optimizer,
            "lr",
            start_value=peak,
            end_value=0.0,
            cycle_size=max(decay_steps, 2),
            param_group_index=index,
        )
        if warmup_steps <= 0:
            return cosine
        warmup = PiecewiseLinear(
            optimizer, "lr", milestones_values=[(0, 0.0), (warmup_steps, peak)], param_group_index=index
        )
        return ConcatScheduler([warmup, cosine], durations=[warmup_steps])

    return _per_group(optimizer, make)


def warmup_linear(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
) -> ParamGroupScheduler:
    """Linear warm-up 0 → peak, then linear decay to 0 at `total_steps`, per group (the hands-on's)."""

    def make(peak: float, index: int):
        milestones = [(0, 0.0), (max(warmup_steps, 1), peak), (max(total_steps, warmup_steps + 1), 0.0)]
        return PiecewiseLinear(optimizer, "lr", milestones_values=milestones, param_group_index=index)

    return _per_group(optimizer, make)


def warmup_stable_decay(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, decay_fraction: float = 0.2
) -> ParamGroupScheduler:
    """Linear warm-up 0 → peak, the peak held, then linear decay to 0 over the last `decay_fraction` of
    `total_steps`, per group: warm-up/stable/decay (WSD), which spends longer at the peak than cosine."""
    peak_at = max(warmup_steps, 1)
    decay_start = max(round(total_steps * (1 - decay_fraction)), peak_at + 1)  # milestones must increase

    def make(peak: float, index: int):
        milestones = [
            (0, 0.0),
            (peak_at, peak),
            (decay_start, peak),
            (max(total_steps, decay_start + 1), 0.0),
        ]
        return PiecewiseLinear(optimizer, "lr", milestones_values=milestones, param_group_index=index)

    return _per_group(optimizer, make)


# `python -m pretrain --schedule NAME`: the lr schedule after the warm-up.
SCHEDULES = {"cosine": warmup_cosine, "linear": warmup_linear, "wsd": warmup_stable_decay}


def find_lr(
    bare_trainer: Engine,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    data,
    *,
    plot_path: str | os.PathLike | None = None,
    num_iter: int = 100,
    start_lr: float = 1e-7,
    end_lr: float = 1.0,
) -> float:
    """`--lr-find`: Ignite's `FastaiLRFinder` raises the lr exponentially over `num_iter` steps of
    `bare_trainer` (a trainer with no lr schedule attached); returns the lr it suggests and scales the
    optimizer's lrs to it (keeping layer-wise ratios), ready for the schedule to be attached.

    Model and optimizer state are restored after the search; the suggestion is the lr of the steepest
    loss descent (for several optimizer groups, the largest group's lr). The loss-vs-lr curve is saved
    to `plot_path`.
    """
    finder = FastaiLRFinder()
    to_save = {"model": model, "optimizer": optimizer}
    with finder.attach(
        bare_trainer,
        to_save,
        output_transform=lambda out: out["loss"],
        num_iter=num_iter,
        start_lr=start_lr,
        end_lr=end_lr,
    ) as finding:
        finding.run(data, max_epochs=1, epoch_length=num_iter)
    results = finder.get_results()
    lrs = [max(lr) if isinstance(lr, list) else lr for lr in results["lr"]]
    try:
        suggestion = finder.lr_suggestion()
    except RuntimeError as e:  # the loss never fell before rising: no steepest descent to suggest
        raise ValueError(
            f"the learning-rate finder found no descending part in the loss curve ({e}); "
            "set the learning rate with --lr instead of --lr-find"
        ) from None
    suggestion = max(suggestion) if isinstance(suggestion, list) else float(suggestion)
    if plot_path is not None and idist.get_rank() == 0:
        from ..teaching import plots

        plots.plot_lr_finder(lrs, results["loss"], suggestion, path=plot_path)
    peak = max(group["lr"] for group in optimizer.param_groups)
    scale_learning_rates(optimizer, suggestion / peak)
    return suggestion


def scale_learning_rates(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Multiply every group's lr by `factor` (keeps layer-wise ratios), before a schedule is attached."""
    for group in optimizer.param_groups:
        group["lr"] *= factor
        group.pop("initial_lr", None)
