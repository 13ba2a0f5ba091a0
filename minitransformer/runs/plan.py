"""The run plan: a run's every setting, decided before anything is built and read-only from then on.

Ignite's examples pass one `config` to `training(local_rank, config)` and never rewrite it; this is
ours. `RunPlan` holds the options both programs share (the groups `runs.options` declares); each
program extends it with its own options (`pretrain.cli.PretrainPlan`, `adapt.cli.AdaptPlan`), one typed
field per option, named as the option's `dest` (`--batch-size` → `batch_size`; a test checks that the
fields and the options agree), plus what planning decides (`decided()` fields, e.g. pretraining's
splits). The plan is what `training_args.json` records (`to_json`) and what `--resume` reads back. A
later decision (the lr finder's lr) makes a new plan with `dataclasses.replace`, so no step changes
what another step was given.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar


def decided() -> Any:
    """A plan field that planning decides rather than an option: None until decided."""
    return field(default=None, metadata={"decided": True})


@dataclass(frozen=True, kw_only=True)
class RunPlan:
    """The options both programs share; the help of each is in `runs.options` (and `--help`)."""

    # run (`add_run_options`)
    config: Path | None  # the --config file the values were read from
    output_dir: Path  # the run folder
    overwrite: bool  # replace a run already in output_dir
    resume: Path | None  # the run folder being continued
    logger: str  # "none" or "tensorboard"
    # data (`add_data_options`)
    data_dir: Path | None  # the only data folder searched (unset: the default places)
    download: bool  # fetch data that is not found
    # schedule (`add_schedule_options`)
    lr_find: bool  # run the lr finder first and train with its suggestion
    lr: float  # peak learning rate
    warmup_steps: int  # linear warm-up steps
    max_norm: float  # gradient clipping norm (0: off)
    dropout: float  # dropout probability
    max_steps: int | None  # optimizer steps; exactly one of max_steps and epochs is set
    epochs: int | None  # passes over the training data
    # precision and hardware (`add_hardware_options`)
    amp: str  # autocast precision: "auto" until planning resolves it, then "bf16", "fp16" or "none"
    device: str  # "auto", "cpu", "cuda" or "cuda:N"
    threads: int | None  # CPU threads (unset: the cores available)
    no_progress: bool  # logs only, no progress bar

    # The options a --resume takes from its own command line: the hardware group's, and --logger. A
    # program that adds an option to its hardware group names it here too (a test checks they agree).
    CHANGEABLE_ON_RESUME: ClassVar[tuple[str, ...]] = ("device", "threads", "no_progress", "logger")

    @classmethod
    def option_names(cls) -> list[str]:
        """The fields that options set (the parser's dests); the other fields planning decides."""
        return [f.name for f in fields(cls) if not f.metadata.get("decided")]

    @classmethod
    def path_fields(cls) -> set[str]:
        """The fields holding a `Path` (written to JSON as strings, read back as paths)."""
        hints = typing.get_type_hints(cls)
        return {f.name for f in fields(cls) if Path in (hints[f.name], *typing.get_args(hints[f.name]))}

    def to_json(self) -> dict:
        """The plan as a JSON-ready dict (paths as strings), for `training_args.json`."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in vars(self).items()}
