"""Where data lives: a `--data-dir` argument alone, else `$MINITRANSFORMER_DATA`, then `~/.cache/minitransformer`."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "MINITRANSFORMER_DATA"


def default_cache_dir() -> Path:
    """`~/.cache/minitransformer`: where downloads and binarized caches go when nothing else is given."""
    return Path.home() / ".cache" / "minitransformer"


def find_data_dir(data_dir: str | Path | None = None) -> list[Path]:
    """Data directories to search, in order.

    An explicit `data_dir` is the only one searched and must exist: a mistyped `--data-dir` must not
    silently fall back to other data. Without it: `$MINITRANSFORMER_DATA`, then the cache dir.
    """
    if data_dir is not None:
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"--data-dir {data_dir} is not an existing folder: fix the path or create it"
            )
        return [path]
    candidates = [Path(os.environ[DATA_ENV])] if os.environ.get(DATA_ENV) else []
    candidates.append(default_cache_dir())
    unique: list[Path] = []
    for path in candidates:
        path = path.expanduser()
        if path not in unique:
            unique.append(path)
    return unique


def locate(relative: str, data_dir: str | Path | None = None, fix: str = "") -> Path:
    """First `candidate/relative` that exists; else FileNotFoundError listing every path searched.

    `fix` is appended to the message (e.g. how to download the missing file).
    """
    searched = [candidate / relative for candidate in find_data_dir(data_dir)]
    for path in searched:
        if path.exists():
            return path
    hint = f"pass --data-dir DIR or set {DATA_ENV}=DIR to a folder holding {relative}"
    raise FileNotFoundError(
        f"{relative} not found: searched {', '.join(map(str, searched))} — {hint}"
        + (f", {fix}" if fix else "")
    )
