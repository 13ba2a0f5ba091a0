"""Training-state checkpoints: what `--resume` reads back (Ignite `Checkpoint` + an atomic `DiskSaver`),
and the best model by validation score."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine
from ignite.handlers import Checkpoint, DiskSaver

from ..checkpoint import rename_legacy_keys
from .io import atomic_path


class AtomicDiskSaver(DiskSaver):
    """Ignite's `DiskSaver` writing through `atomic_path`: one temp-file name (`.NAME.XXXX.tmp`) for
    every file of a run, and a full disk reported in one line."""

    def _save_func(self, checkpoint: Any, path: Path, func: Callable) -> None:
        with atomic_path(path) as tmp:
            func(checkpoint, tmp, **self.kwargs)

    def remove(self, filename: str) -> None:
        """Delete a superseded checkpoint; one already gone is fine: a resumed run replays the steps
        after its checkpoint, and the best model those steps replaced may already be deleted."""
        if idist.get_rank() == self.save_on_rank:
            (Path(self.dirname) / filename).unlink(missing_ok=True)


def training_checkpoint(
    to_save: dict[str, Any], directory: str | os.PathLike, n_saved: int = 1
) -> Checkpoint:
    """Ignite `Checkpoint` of everything `--resume` needs (the last `n_saved` are kept), written atomically."""
    return Checkpoint(
        to_save,
        AtomicDiskSaver(str(directory), require_empty=False),
        filename_prefix="training",
        n_saved=n_saved,
        global_step_transform=lambda engine, _: engine.state.iteration,
    )


def adopt_saved_checkpoints(saver: Checkpoint, directory: str | os.PathLike) -> None:
    """Tell a training `saver` of a resumed run about the checkpoints already on disk, so that it keeps
    only the last `n_saved` of all of them (not of this process's only)."""
    found = sorted(checkpoint_step(p) for p in Path(directory).glob("training_checkpoint_*.pt"))
    saver.load_state_dict({"_saved": [(step, f"training_checkpoint_{step}.pt") for step in found]})


def checkpoint_step(path: Path) -> int:
    return int(path.stem.rsplit("_", 1)[1])


def best_model_checkpoint(
    model: torch.nn.Module, directory: str | os.PathLike, trainer: Engine, score_name: str, sign: float
):
    """Ignite `Checkpoint` keeping the single best model by `sign * evaluator.state.metrics[score_name]`.

    Put it in the training checkpoint's `to_save`: a resumed run then knows the best so far."""
    return Checkpoint(
        {"model": model},
        AtomicDiskSaver(str(directory), require_empty=False),
        filename_prefix="best",
        n_saved=1,
        score_name=score_name,
        score_function=lambda engine: sign * engine.state.metrics[score_name],
        global_step_transform=lambda *_: trainer.state.iteration,
    )


def latest_training_checkpoint(directory: str | os.PathLike) -> Path:
    """The newest `training_checkpoint_<iteration>.pt` in `directory`, with a clear error if none."""
    directory = Path(directory)
    found = sorted(directory.glob("training_checkpoint_*.pt"), key=checkpoint_step)
    if not found:
        raise FileNotFoundError(
            f"no training checkpoint in {directory}: --resume needs a run directory written by an "
            "earlier run that reached at least one checkpoint"
        )
    return found[-1]


def load_training_state(path: str | os.PathLike, to_load: dict[str, Any]) -> None:
    """Restore model, optimizer, scheduler and trainer state (tensors only: weights_only=True); a state
    saved before `Block` loads too (model keys through `rename_legacy_keys`, optimizer state in the same
    parameter order, `optimizers.in_state_order`)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a truncated or foreign file; torch's advice (weights_only=False) would run a pickle
        earlier = sorted(
            (
                p
                for p in path.parent.glob("training_checkpoint_*.pt")
                if checkpoint_step(p) < checkpoint_step(path)
            ),
            key=checkpoint_step,
        )
        then = (
            f"the run then resumes from the previous one ({earlier[-1].name})"
            if earlier
            else "the run then starts again from its beginning"
        )
        raise ValueError(
            f"{path} is damaged (truncated or not a training checkpoint): delete it and --resume; {then}"
        ) from None
    if isinstance(state.get("model"), dict):  # a state saved before `Block`: its keys renamed
        state["model"] = rename_legacy_keys(state["model"])
    Checkpoint.load_objects(to_load=to_load, checkpoint=state)
