"""Run directories (`--output-dir`): one run per directory, replaced only when asked.

Both programs write a run into a directory of the user's choosing; it may hold other files of theirs,
so replacing a run removes the run's own files only, never the directory.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import ignite.distributed as idist


def prepare_run_dir(
    directory: str | os.PathLike, run_files: Sequence[str], overwrite: bool, hint: str = ""
) -> Path:
    """Create `directory` for a new run; refuse if it holds one (`run_files`, glob patterns) unless
    `overwrite`, which removes those files and `plots/`. In a distributed run, rank 0 does the removing."""
    out = Path(directory)
    existing = sorted({p.name for pattern in run_files for p in out.glob(pattern)})
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


def remove_run_files(directory: str | os.PathLike, run_files: Sequence[str]) -> None:
    """Delete a run's own files (`run_files`, glob patterns) and `plots/` from `directory`, nothing else."""
    out = Path(directory)
    for target in [p for pattern in [*run_files, "plots"] for p in out.glob(pattern)]:
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
