"""Atomic file writes: a file either appears complete under its final name, or not at all.

Every checkpoint, cache and metrics file goes through these helpers, so a run killed mid-save
never leaves a file that looks finished but is truncated.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import WriteError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    A failed write (disk full, no permission, ...) raises `WriteError` naming `path` and the cause."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_dead_temp_files(path)
        owner = f"{socket.gethostname()}-{os.getpid()}"  # whose write it is (at call time: forks differ)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{owner}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise as_write_error(path, e) from e
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:  # flush file contents to disk before the rename
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o666 & ~current_umask())  # mkstemp's 0600 would hide a shared model from others
        os.replace(tmp_path, path)
    except Exception as e:
        raise as_write_error(path, e) from e
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host (a pid too large to exist is not alive)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def remove_dead_temp_files(path: Path) -> list[Path]:
    """Delete the temp files of `path` that a killed process left (`.NAME.HOST-PID.XXXX.tmp` of this host
    whose pid is gone): a later write of the same file cleans up after it. Others' are left alone."""
    host = socket.gethostname()
    stale = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        owner = tmp.name[len(path.name) + 2 :].split(".")[0]
        owner_host, _, pid = owner.rpartition("-")
        if owner_host == host and pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)
            stale.append(tmp)
    return stale


def current_umask() -> int:
    """The process's umask (read by setting it and setting it back: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def as_write_error(path: Path, error: Exception) -> Exception:
    """`error` as a one-line WriteError when it is a failed write, else `error` itself.

    Libraries wrap the OS error: safetensors as `Os { code: 28, ... }` or "... (os error 28)", torch.save as
    "file write failed", "unexpected pos N vs M" or "basic_ios::clear: iostream error"."""
    code = getattr(error, "errno", None) if isinstance(error, OSError) else None
    if code is None and (found := re.search(r"code: (\d+)|os error (\d+)", str(error))):
        code = int(found.group(1) or found.group(2))
    if code is None and not re.search(r"write failed|unexpected pos|iostream error", str(error)):
        return error
    return WriteError(path, code)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, obj: object) -> None:
    """Write `obj` as indented JSON to `path` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json_object(path: str | os.PathLike, fix: str) -> dict:
    """The JSON object in file `path`; a ValueError naming the file and `fix` (what to do) when it is not
    UTF-8, not JSON, nested too deeply, or holds something else than an object (e.g. `[]`)."""
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, RecursionError, json.JSONDecodeError) as e:
        why = "nested too deeply" if isinstance(e, RecursionError) else str(e)
        raise ValueError(f"{path} is not valid JSON ({why}): {fix}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path} is damaged (a JSON {type(values).__name__}, not an object): {fix}")
    return values
