"""How every figure here is built and saved: `matplotlib.figure.Figure` directly, never `pyplot`.

No GUI backend is touched (headless by construction, like the Agg backend) and no global figure list
grows. `_finish` saves a figure as a PNG when given a path (atomically, parent folders created) and
shows it in a notebook (`display`). Layout is "constrained", so titles, tick labels and colour bars
are never clipped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from ..runs.io import atomic_path
from .display import png_bytes, show_in_notebook

ArrayLike = torch.Tensor | np.ndarray | Sequence

# Cells of tables with at most this many rows and columns get their value written inside.
_ANNOTATE_MAX_CELLS = 16


def _numpy(values: ArrayLike) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().float().numpy() if values.dtype != torch.bool else values.cpu().numpy()
    return np.asarray(values)


def _new_figure(width: float, height: float, title: str = "", beside_title: float = 0.0) -> Figure:
    """An empty figure, wide enough for its title on one line plus `beside_title` inches (a legend)."""
    return Figure(figsize=(max(width, 0.09 * len(title) + beside_title), height), layout="constrained")


def _finish(fig: Figure, path: str | os.PathLike | None) -> Figure:
    """Save `fig` as a PNG (atomically) when a path is given, show it in a notebook; return it either way."""
    if path is not None:
        with atomic_path(path) as tmp:
            tmp.write_bytes(png_bytes(fig))
    show_in_notebook(fig, Path(path).name if path is not None else "figure.png")
    return fig


def _line_chart(
    series: dict[str, Sequence[float]],
    x: Sequence[float] | None,
    xlabel: str,
    ylabel: str,
    title: str,
    legend_title: str | None = None,
    colours: Sequence | None = None,
    marker: str | None = "o",
) -> tuple[Figure, object]:
    """A figure with one line per named series, a grid and a legend; returns (figure, axes)."""
    fig = _new_figure(7.0, 4.2, title, beside_title=2.0)  # the legend sits right of the axes
    ax = fig.subplots()
    for i, (name, values) in enumerate(series.items()):
        values = list(values)
        xs = list(x) if x is not None else list(range(len(values)))
        ax.plot(xs, values, marker=marker, label=name, color=colours[i] if colours is not None else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(title=legend_title, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    ax.set_title(title)
    return fig, ax


def _token_ticks(ax, tokens: Sequence[str] | None, axis: str, show: bool = True) -> None:
    """Put one tick per token on `axis` ("x" or "y"); hide the labels when `show` is False."""
    if tokens is None:
        return
    positions = range(len(tokens))
    fontsize = 9 if len(tokens) <= 16 else 7
    if axis == "x":
        ax.set_xticks(positions, list(tokens) if show else [], rotation=90, fontsize=fontsize)
    else:
        ax.set_yticks(positions, list(tokens) if show else [], fontsize=fontsize)
