"""Where a command may write: never over a file it did not make, never onto what it reads.

Every program that writes something the user named (the explorer's page, `interop.hf convert`'s model
folder, `to_hf`'s export) asks these guards first, before anything is written, so that a wrong path
costs one error line and nothing else:

- an output that is the input is refused: writing would replace what is being read;
- a device, FIFO or symbolic link is refused: an atomic rename would replace it with a regular file;
- an existing file the command did not make (a model, a run's record, a user's file) is refused
  unless `overwrite` says so; a folder holding a run or a model likewise;
- a folder another live run has locked is refused even with `overwrite`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from .run_state import LOCK_NAME, STATE_NAME, RunLock

# A folder with any of these holds a run (of pretrain or adapt) or a model.
RUN_FILES = (STATE_NAME, "training_args.json", LOCK_NAME)
MODEL_FILES = ("config.json", "model.safetensors", "pytorch_model.bin")


def refuse_reading_output(output: str | os.PathLike, source: str | os.PathLike, what: str) -> None:
    """A ValueError if `output` is `source` (after links): the write would replace what it reads."""
    if Path(output).expanduser().resolve() == Path(source).expanduser().resolve():
        raise ValueError(f"{what} {output} is also the input {source}: choose another output")


def refuse_special(path: str | os.PathLike, what: str) -> None:
    """A ValueError if `path` is a device, a FIFO, a socket or a symbolic link (`--overwrite` or not)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file (a device, FIFO or socket)"
        raise ValueError(f"{what} {path} is {kind}: writing would replace it; give the path of a plain file")


def check_output_file(
    path: str | os.PathLike, overwrite: bool, what: str, suffix: str, made_here: Callable[[Path], bool]
) -> None:
    """Refuse to write file `path` if it is special, a folder, not named `*.suffix`, or an existing file
    that `made_here` (e.g. "is an explorer page") does not recognise, unless `overwrite`."""
    path = Path(path)
    refuse_special(path, what)
    if path.is_dir():
        raise ValueError(
            f"{what} {path} is a folder: give a file name inside it, e.g. {path / ('page' + suffix)}"
        )
    if path.suffix.lower() != suffix:
        raise ValueError(f"{what} {path} must end in {suffix}: this command writes {suffix} files only")
    if path.is_file() and not overwrite and not made_here(path):
        raise FileExistsError(
            f"{what} {path} exists and was not written by this command: pass --overwrite "
            "(overwrite=True in Python) to replace it, or choose another name"
        )


def check_output_dir(directory: str | os.PathLike, overwrite: bool, what: str, writes: Iterable[str]) -> None:
    """Refuse to write the files `writes` into `directory` if it is special or a file, or if it holds a
    run, a model or any of those files, unless `overwrite`; a folder locked by a live run is refused always."""
    directory = Path(directory)
    for name in writes:
        refuse_special(directory / name, what)
    if directory.exists() and not directory.is_dir():  # a link to a folder is a folder
        raise ValueError(f"{what} {directory} is not a folder: choose a folder")
    found = [n for n in dict.fromkeys([*RUN_FILES, *MODEL_FILES, *writes]) if (directory / n).exists()]
    if found and not overwrite:
        raise FileExistsError(
            f"{what} {directory} already holds a run or a model ({', '.join(found)}): pass --overwrite "
            "(overwrite=True in Python) to replace its files, or choose another folder"
        )
    if (directory / LOCK_NAME).exists():
        with RunLock(directory):  # a live run's lock raises; a dead one's is taken over and released
            pass
