"""Figures inline in Jupyter, made without pyplot: the same rule as matplotlib's inline backend.

A figure is queued when made and displayed when its cell finishes, unless the cell's last expression
already displayed it. Each display carries the PNG's file name in its metadata, so a test can tell
which figure it is. In plain Python (a script, a terminal) nothing is shown.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import LogFormatter, ScalarFormatter


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes, with no version stamp: the same picture gives the same bytes.

    Every text given to the figure is drawn as it is written: a label such as `$\\undefinedmacro$` (a user's
    class name) is not read as mathtext, which would fail the drawing (and the run's figure with it);
    tick labels that matplotlib's own formatters write (10² on a log axis) keep their mathtext."""
    buffer = io.BytesIO()
    made_by_matplotlib = {  # tick labels a formatter writes (10² on a log axis is mathtext): left alone
        label
        for ax in fig.axes
        for axis in (ax.xaxis, ax.yaxis)
        if isinstance(
            axis.get_major_formatter(), (LogFormatter, ScalarFormatter)
        )  # numbers, not given labels
        for label in axis.get_ticklabels(which="both")
    }
    for text in fig.findobj(Text):
        if text not in made_by_matplotlib:
            text.set_parse_math(False)
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    return buffer.getvalue()


# The same rule as matplotlib's inline backend, for figures made without pyplot: a figure is queued
# when made and displayed when its cell finishes, unless the cell's last expression already
# displayed it. Each display carries the PNG's file name in its metadata, so a test can tell which
# figure it is.

_queued: list[tuple[Figure, str]] = []  # figures made by the running cell, not displayed yet
_hidden = False  # True inside `inline(False)`


@contextlib.contextmanager
def inline(show: bool) -> Iterator[None]:
    """Within the block, figures are (or, with False, are not) displayed in a notebook; files are
    written either way. Tutorials run `pretrain` and `adapt` inside `inline(False)`: a run's own
    figures stay in its folder, and the tutorial displays the ones it discusses."""
    global _hidden
    before, _hidden = _hidden, not show
    try:
        yield
    finally:
        _hidden = before


def show(path: str | os.PathLike) -> None:
    """Display a PNG file (one a run wrote) in a notebook, like the figures made here; nothing elsewhere."""
    if _kernel_shell() is not None:
        _display_png(Path(path).read_bytes(), Path(path).name)


def _kernel_shell():
    """The IPython shell of a Jupyter kernel we run in, else None (plain Python, terminal IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return shell if shell is not None and getattr(shell, "kernel", None) is not None else None


def show_in_notebook(fig: Figure, name: str) -> None:
    """Queue `fig` for display under the running cell (a no-op outside a Jupyter kernel)."""
    shell = _kernel_shell()
    if shell is None or _hidden:
        return
    if _display_queued not in shell.events.callbacks["post_run_cell"]:
        shell.events.register("post_run_cell", _display_queued)
        shell.display_formatter.formatters["image/png"].for_type(Figure, _figure_as_png)
    _queued.append((fig, name))


def _figure_as_png(fig: Figure) -> tuple[bytes, dict]:
    """IPython's PNG formatter for a figure a cell ends with; that figure leaves the queue."""
    names = [name for queued, name in _queued if queued is fig]
    _queued[:] = [(queued, name) for queued, name in _queued if queued is not fig]
    return png_bytes(fig), {"filename": names[0] if names else "figure.png"}


def _display_queued(*_) -> None:
    """Display the figures the finished cell made and did not display itself."""
    while _queued:
        fig, name = _queued.pop(0)
        _display_png(png_bytes(fig), name)


def _display_png(png: bytes, name: str) -> None:
    from IPython.display import display

    display(
        {"image/png": png, "text/plain": f"<figure {name}>"},
        raw=True,
        metadata={"image/png": {"filename": name}},
    )
