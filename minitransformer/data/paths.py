"""Where data lives: a `--data-dir` argument, then `$MINITRANSFORMER_DATA`, then `~/.cache/minitransformer`."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "MINITRANSFORMER_DATA"


def default_cache_dir() -> Path:
    """`~/.cache/minitransformer`: where downloads and binarized caches go when nothing else is given."""
    return Path.home() / ".cache" / "minitransformer"


def find_data_dir(data_dir: str | Path | None = None) -> list[Path]:
    """Candidate data directories in search order: `data_dir`, `$MINITRANSFORMER_DATA`, the cache dir."""
    candidates = [Path(data_dir)] if data_dir is not None else []
    if os.environ.get(DATA_ENV):
        candidates.append(Path(os.environ[DATA_ENV]))
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
