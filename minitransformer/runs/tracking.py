"""Experiment tracking through Ignite's contrib loggers: `--logger tensorboard`, or `none` (the default).

`none` is the default because TensorBoard is an optional extra (`pip install -e ".[tb]"`) and every
number already goes to `metrics.jsonl` and `plots/`. With `tensorboard`, Ignite's `TensorboardLogger`
writes event files that `tensorboard --logdir RUN/tensorboard` shows:
- every record of `metrics.jsonl` with its numbers, as scalars `<event>/<name>` at its step (train
  loss, running-average loss, grad norm, tokens/s; validation and test metrics), so the two agree;
- the learning rate of every parameter group (Ignite's `OptimizerParamsHandler`: `lr/group_<i>`),
  which shows warm-up, decay and layer-wise lr decay;
- the run's PNG plots as images when the run ends.
"""

from __future__ import annotations

from pathlib import Path

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events

from .errors import MissingExtraError
from .metrics_log import MetricsLog

LOGGERS = ("none", "tensorboard")


def check_logger(kind: str) -> None:
    """Fail early, in one line, when `kind` needs a package that is not installed."""
    if kind not in LOGGERS:
        raise ValueError(f"--logger {kind}: choose one of {LOGGERS}")
    if kind == "tensorboard":
        try:
            import tensorboard  # noqa: F401  (the writer behind torch.utils.tensorboard)
        except ImportError:
            raise MissingExtraError(
                'tensorboard is not installed: pip install -e ".[tb]" (or pip install tensorboard), '
                "or run without --logger tensorboard"
            ) from None


def _tensorboard_logger(log_dir: Path):
    check_logger("tensorboard")
    from ignite.handlers.tensorboard_logger import TensorboardLogger

    return TensorboardLogger(log_dir=str(log_dir))


class Tracker:
    """Mirror a run to TensorBoard (kind "tensorboard") or do nothing (kind "none"; other ranks than 0)."""

    def __init__(
        self,
        kind: str,
        log_dir: str | Path,
        log: MetricsLog,
        trainer: Engine,
        optimizer: torch.optim.Optimizer,
        every: int = 10,
    ):
        check_logger(kind)
        self.logger = _tensorboard_logger(Path(log_dir)) if kind != "none" and idist.get_rank() == 0 else None
        self.log = log
        if self.logger is None:
            return
        log.listeners.append(self.write_scalars)
        self.logger.attach_opt_params_handler(
            trainer, event_name=Events.ITERATION_STARTED(every=every), optimizer=optimizer, param_name="lr"
        )

    def write_scalars(self, record: dict) -> None:
        """Every number of a metrics.jsonl record as `<event>/<name>` at the record's step."""
        for name, value in record.items():
            if name != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.logger.writer.add_scalar(f"{record['event']}/{name}", value, record["step"])

    def finish(self, plots: str | Path | None = None) -> None:
        """Add the PNGs in `plots` as images, stop listening and close the event file."""
        if self.logger is None:
            return
        import matplotlib.image

        for png in sorted(Path(plots).glob("*.png")) if plots else []:
            image = matplotlib.image.imread(png)[..., :3]  # (H, W, 3) floats in [0, 1]
            self.logger.writer.add_image(f"plots/{png.stem}", image, dataformats="HWC")
        self.log.listeners.remove(self.write_scalars)
        self.logger.close()
