"""Run directories (`--output-dir`): one run per directory, replaced only when asked.

Both programs write a run into a directory of the user's choosing; it may hold other files of theirs,
so replacing a run removes the run's own files only, never the directory. Both run inside the same
skeleton (`run_lifecycle`: the folder's lock, nothing to do for a complete run, nothing left behind
when a new run fails before it kept anything) and open the folder the same way (`open_run_dir`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import ignite.distributed as idist

from .io import write_json_atomic
from .plan import RunPlan
from .run_state import RunLock, read_state, remove_temp_files, started_here, write_state


@contextlib.contextmanager
def run_lifecycle(
    plan: RunPlan, run_files: Sequence[str], kept_anything: Callable[[], bool]
) -> Iterator[dict | None]:
    """The skeleton both programs run in: `with run_lifecycle(plan, RUN_FILES, kept) as complete: ...`.

    Holds the output folder's lock for the whole run (rank 0; the other processes follow it). Yields
    the recorded state of a complete run when --resume names one (it is said; the body then does
    nothing), else None. If the body fails, a new run that kept nothing worth resuming (`kept_anything()`
    False: no checkpoint, no finished seed) leaves no run files behind; the error goes on up.
    """
    rank0 = idist.get_rank() == 0
    with RunLock(plan.output_dir) if rank0 else contextlib.nullcontext():
        state = read_state(plan.output_dir) if plan.resume else {}
        if state.get("status") == "complete":
            if rank0:
                step = f" (step {state['step']})" if "step" in state else ""
                print(f"{plan.output_dir} holds a complete run{step}: nothing to resume")
            yield state
            return
        try:
            yield None
        except Exception:
            discard_failed_run(plan, run_files, kept_anything=kept_anything())
            raise


def prepare_run_dir(
    directory: str | os.PathLike, run_files: Sequence[str], overwrite: bool, hint: str = ""
) -> Path:
    """Create `directory` for a new run; refuse if it holds one (`run_files`, glob patterns) unless
    `overwrite`, which removes those files and `plots/`. In a distributed run, rank 0 does the removing.

    A non-empty `plots/` counts as a run's: without `overwrite` nothing in the folder is removed, so that a
    user's own files (e.g. `plots/fig.png`) are never deleted, then or when the new run fails."""
    out = Path(directory)
    existing = sorted({p.name for pattern in run_files for p in out.glob(pattern)})
    if (out / "plots").is_dir() and any((out / "plots").iterdir()):
        existing.append("plots/")
    if existing and not overwrite:
        raise FileExistsError(
            f"--output-dir {out} already holds a run ({', '.join(existing)}): pass --overwrite to replace "
            f"it, {hint}or choose another directory"
        )
    if idist.get_rank() == 0:
        remove_run_files(out, run_files)
        out.mkdir(parents=True, exist_ok=True)
    idist.barrier()
    return out


def open_run_dir(plan: RunPlan, run_files: Sequence[str], verb: str, **state) -> Path:
    """The folder of `plan`'s run. On --resume: the existing one, cleaned of the temp files a killed write
    leaves. Else a fresh one (`prepare_run_dir`) where the plan (training_args.json) and the "running"
    state (with `state`) are recorded first, so that a run killed at any later point can be resumed;
    `verb` completes the refusal's hint ("--resume DIR to <verb> it")."""
    out = Path(plan.output_dir)
    if plan.resume:
        if idist.get_rank() == 0:
            remove_temp_files(out)
        return out
    prepare_run_dir(out, run_files, plan.overwrite, hint=f"--resume {plan.output_dir} to {verb} it, ")
    if idist.get_rank() == 0:
        write_json_atomic(out / "training_args.json", plan.to_json())
        write_state(out, "running", **state)
    return out


def discard_failed_run(plan: RunPlan, run_files: Sequence[str], kept_anything: bool) -> None:
    """After an error: a new run that this process started and that kept nothing worth resuming (no
    checkpoint, no finished seed: `kept_anything` False) leaves no run files behind."""
    out = Path(plan.output_dir)
    if not plan.resume and idist.get_rank() == 0 and started_here(out) and not kept_anything:
        remove_run_files(out, run_files)


def remove_run_files(directory: str | os.PathLike, run_files: Sequence[str]) -> None:
    """Delete a run's own files (`run_files`, glob patterns) and `plots/` from `directory`, nothing else."""
    out = Path(directory)
    for target in [p for pattern in [*run_files, "plots"] for p in out.glob(pattern)]:
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
