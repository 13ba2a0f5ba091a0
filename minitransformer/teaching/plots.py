"""Figures for the tutorials and the training runs: every function returns a matplotlib `Figure`.

Figures are built with `matplotlib.figure.Figure` directly, never through `pyplot`: no GUI backend
is touched (headless by construction, like the Agg backend) and no global figure list grows. Pass
`path=` to also save it as a PNG (parent folders are created). Inside a Jupyter kernel every figure
is also displayed under the cell that made it, exactly once, whether or not the cell ends with it
(see `_show_in_notebook`); in a script nothing is shown. The same inputs always give the same picture: there is no randomness except a seeded
jitter in `plot_seed_spread`.

Layout is "constrained", so titles, tick labels and colour bars are never clipped.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Patch

from ..runs.io import atomic_path

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


def _png(fig: Figure) -> bytes:
    """The figure as PNG bytes, with no version stamp: the same picture gives the same bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    return buffer.getvalue()


def _finish(fig: Figure, path: str | os.PathLike | None) -> Figure:
    """Save `fig` as a PNG (atomically) when a path is given, show it in a notebook; return it either way."""
    if path is not None:
        with atomic_path(path) as tmp:
            tmp.write_bytes(_png(fig))
    _show_in_notebook(fig, Path(path).name if path is not None else "figure.png")
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


# ----------------------------------------------------------------------------------------------
# Inside the model
# ----------------------------------------------------------------------------------------------


def plot_attention_grid(
    attentions: Sequence[torch.Tensor] | torch.Tensor,
    tokens: Sequence[str],
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    sample: int = 0,
    title: str = "Attention probabilities (row: a token attending; columns: the tokens it looks at)",
    path: str | os.PathLike | None = None,
) -> Figure:
    """A grid of attention heatmaps, one row per layer and one column per head.

    `attentions` is what `model.transformer(..., output_attentions=True).attentions` returns: one
    (B, nh, T, S) tensor per layer (or a single (L, nh, T, S) tensor). `sample` picks the batch row.
    All panels share one colour scale so that heads can be compared.
    """
    maps = [_numpy(a) for a in attentions]
    maps = [m[sample] if m.ndim == 4 else m for m in maps]  # each (nh, T, S)
    layers = list(range(len(maps))) if layers is None else list(layers)
    heads = list(range(maps[0].shape[0])) if heads is None else list(heads)
    vmax = max(float(maps[layer][head].max()) for layer in layers for head in heads)

    size = 1.2 + 0.16 * len(tokens)
    fig = _new_figure(1.2 + size * len(heads), 0.8 + size * len(layers), title)
    axes = fig.subplots(len(layers), len(heads), squeeze=False)
    image = None
    for r, layer in enumerate(layers):
        for c, head in enumerate(heads):
            ax = axes[r][c]
            image = ax.imshow(maps[layer][head], cmap="viridis", vmin=0.0, vmax=vmax)
            _token_ticks(ax, tokens, "x", show=r == len(layers) - 1)
            _token_ticks(ax, tokens, "y", show=c == 0)
            if r == 0:
                ax.set_title(f"head {head}", fontsize=10)
            if c == 0:
                ax.set_ylabel(f"layer {layer}\nquery token", fontsize=10)
            if r == len(layers) - 1:
                ax.set_xlabel("key token", fontsize=10)
    fig.colorbar(image, ax=axes, shrink=0.8, label="attention probability")
    fig.suptitle(title)
    return _finish(fig, path)


def plot_mask(
    mask: ArrayLike,
    tokens: Sequence[str] | Sequence[Sequence[str]] | None = None,
    title: str = "Attention mask",
    row_labels: Sequence[str] | None = None,
    xlabel: str = "key position (may be looked at)",
    ylabel: str = "query position (looking)",
    true_label: str = "may attend",
    false_label: str = "blocked",
    path: str | os.PathLike | None = None,
) -> Figure:
    """A boolean mask drawn as a table of coloured cells, like the slides' tables.

    `mask` is 2-D — the causal mask (T, T), or a key-padding mask (B, T) with `row_labels` naming the
    samples — or 3-D (B, T, S) / 4-D (B, 1, T, S) for the combined per-sample masks the model builds,
    drawn as one panel per sample. `tokens` labels the columns (and the rows of square masks); give
    one list per sample for 3-D masks. Small tables get 1/0 written in each cell.
    """
    values = _numpy(mask).astype(bool)
    if values.ndim == 4:
        values = values[:, 0]  # drop the head axis of the model's (B, 1, T, S) mask
    panels = values[None] if values.ndim == 2 else values
    if tokens is not None and panels.shape[0] > 1 and isinstance(tokens[0], str):
        tokens = [tokens] * panels.shape[0]
    per_panel = [tokens] * panels.shape[0] if tokens is None or panels.shape[0] == 1 else tokens

    rows, cols = panels.shape[1:]
    cell = 0.42 if cols <= _ANNOTATE_MAX_CELLS else 0.22
    fig = _new_figure(1.8 + panels.shape[0] * (1.2 + cell * cols), 1.8 + cell * rows, title)
    axes = fig.subplots(1, panels.shape[0], squeeze=False)[0]
    colours = ListedColormap(["#d9d9d9", "#3b7dd8"])  # False: grey, True: blue
    for i, (ax, panel) in enumerate(zip(axes, panels)):
        ax.imshow(panel, cmap=colours, vmin=0, vmax=1)
        labels = per_panel[i]
        _token_ticks(ax, labels if labels is not None else [str(j) for j in range(cols)], "x")
        if row_labels is not None:
            ax.set_yticks(range(rows), list(row_labels))
        else:
            _token_ticks(
                ax, labels if labels is not None and rows == cols else [str(j) for j in range(rows)], "y"
            )
        if rows <= _ANNOTATE_MAX_CELLS and cols <= _ANNOTATE_MAX_CELLS:
            for (r, c), allowed in np.ndenumerate(panel):
                ax.text(
                    c,
                    r,
                    "1" if allowed else "0",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if allowed else "black",
                )
        ax.set_xlabel(xlabel)
        if i == 0:
            ax.set_ylabel(ylabel)
        if panels.shape[0] > 1:
            ax.set_title(f"sample {i}", fontsize=10)
    legend = [
        Patch(color="#3b7dd8", label=f"1 = {true_label}"),
        Patch(color="#d9d9d9", label=f"0 = {false_label}"),
    ]
    fig.legend(handles=legend, loc="outside lower center", ncols=2, fontsize=9)
    fig.suptitle(title)
    return _finish(fig, path)


def plot_positional_encoding(
    table: ArrayLike,
    title: str = "Sinusoidal position encoding",
    path: str | os.PathLike | None = None,
) -> Figure:
    """Heatmap of a position table (P, E): one row per position, one column per embedding dimension."""
    values = _numpy(table)
    fig = _new_figure(8.0, 4.5, title)
    ax = fig.subplots()
    limit = float(np.abs(values).max()) or 1.0
    image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
    ax.set_xlabel("embedding dimension")
    ax.set_ylabel("position in the sequence")
    fig.colorbar(image, ax=ax, label="value added to the token embedding")
    ax.set_title(title)
    return _finish(fig, path)


# One Transformer layer in each norm placement, bottom to top: the boxes in order, and the residual
# connections as (from box, to box): the stream leaves after box `from` and is added at box `to`.
_NORM_PLACEMENT_LAYERS = {
    "post (original Transformer, BERT)": (
        ["h", "attention", "+", "LayerNorm", "feed-forward", "+", "LayerNorm"],
        [(0, 2), (3, 5)],
    ),
    "pre (GPT-2; final LayerNorm after the last layer)": (
        ["h", "LayerNorm", "attention", "+", "LayerNorm", "feed-forward", "+"],
        [(0, 3), (3, 6)],
    ),
    "hands_on (the hands-on's code)": (
        ["h", "LayerNorm", "attention", "+", "LayerNorm", "feed-forward", "+"],
        [(1, 3), (4, 6)],
    ),
}
_BOX_COLOURS = {
    "LayerNorm": "#f6c85f",
    "attention": "#9dd9d2",
    "feed-forward": "#9dd9d2",
    "+": "white",
    "h": "#dddddd",
}


def plot_norm_placements(
    title: str = "One layer in each norm placement (bottom to top; the residual stream on the right)",
    path: str | os.PathLike | None = None,
) -> Figure:
    """A block diagram of one layer for each `norm_placement`: where the LayerNorms sit relative to the
    sub-blocks and which tensor the residual connection carries past them."""
    fig = _new_figure(12.0, 6.0, title)
    axes = fig.subplots(1, len(_NORM_PLACEMENT_LAYERS))
    for ax, (name, (boxes, residuals)) in zip(axes, _NORM_PLACEMENT_LAYERS.items()):
        for i, label in enumerate(boxes):
            width = 0.3 if label == "+" else 1.6
            ax.add_patch(
                FancyBboxPatch(
                    (-width / 2, i - 0.25), width, 0.5, boxstyle="round,pad=0.05",
                    facecolor=_BOX_COLOURS[label], edgecolor="black",
                )
            )  # fmt: skip
            ax.text(0, i, label, ha="center", va="center", fontsize=10)
            if i > 0:
                ax.annotate("", xy=(0, i - 0.3), xytext=(0, i - 0.7), arrowprops={"arrowstyle": "->"})
        for start, end in residuals:  # out of box `start`, round the right side, into the "+" at `end`
            ax.plot([0, 1.3, 1.3], [start + 0.5, start + 0.5, end], color="C3")
            ax.plot([0], [start + 0.5], "o", color="C3", markersize=4)
            ax.annotate("", xy=(0.2, end), xytext=(1.3, end), arrowprops={"arrowstyle": "->", "color": "C3"})
        ax.annotate(
            "", xy=(0, len(boxes) - 0.2 + 0.5), xytext=(0, len(boxes) - 0.3), arrowprops={"arrowstyle": "->"}
        )
        ax.set_xlim(-1.2, 1.6)
        ax.set_ylim(-0.6, len(boxes) + 0.4)
        ax.set_title(name, fontsize=10)
        ax.axis("off")
    fig.suptitle(title)
    return _finish(fig, path)


def plot_layer_curves(
    values: dict[str, Sequence[float]],
    ylabel: str,
    title: str,
    xlabel: str = "layer (0 = embeddings)",
    log_y: bool = False,
    path: str | os.PathLike | None = None,
) -> Figure:
    """One line per named series over the layers (or any integer index), e.g. hidden-state norms."""
    fig, ax = _line_chart(values, None, xlabel, ylabel, title)
    if log_y:
        ax.set_yscale("log")
    return _finish(fig, path)


def plot_embedding_pca(
    vectors: ArrayLike,
    labels: Sequence[str],
    groups: Sequence[str] | None = None,
    title: str = "Embeddings projected on their two main directions (PCA)",
    path: str | os.PathLike | None = None,
) -> Figure:
    """Scatter of `vectors` (N, D) on their first two principal components, each point labelled.

    PCA is a singular value decomposition of the centred vectors; each component's sign is fixed so
    that its largest coordinate is positive, which keeps the picture identical from run to run.
    `groups` (one name per vector) colours the points by group.
    """
    x = torch.as_tensor(_numpy(vectors), dtype=torch.float64)
    x = x - x.mean(dim=0)
    _, singular, vh = torch.linalg.svd(x, full_matrices=False)
    components = vh[:2]  # (2, D)
    signs = torch.sign(components.gather(1, components.abs().argmax(dim=1, keepdim=True)))
    points = (x @ (components * signs).T).numpy()  # (N, 2)
    explained = (singular**2 / (singular**2).sum()).numpy()

    fig = _new_figure(7.5, 6.0, title)
    ax = fig.subplots()
    group_names = list(dict.fromkeys(groups)) if groups is not None else [None]
    colours = [f"C{i % 10}" for i in range(len(group_names))]
    for name, colour in zip(group_names, colours):
        keep = [i for i in range(len(labels)) if groups is None or groups[i] == name]
        ax.scatter(points[keep, 0], points[keep, 1], color=colour, label=name, s=30)
        for i in keep:
            ax.annotate(
                labels[i], points[i], xytext=(4, 3), textcoords="offset points", fontsize=8, color=colour
            )
    ax.set_xlabel(f"first principal component ({explained[0]:.0%} of the variance)")
    ax.set_ylabel(f"second principal component ({explained[1]:.0%} of the variance)")
    if groups is not None:
        ax.legend(title="word group")
    ax.grid(alpha=0.3)
    ax.set_title(title)
    return _finish(fig, path)


def plot_prediction_vs_context(
    context_sizes: Sequence[int],
    probabilities: dict[str, Sequence[float]],
    title: str = "Next-token probability as the context grows",
    xlabel: str = "tokens of context before the prediction",
    ylabel: str = "predicted probability",
    legend_title: str | None = None,
    path: str | os.PathLike | None = None,
) -> Figure:
    """One line per named series (a candidate token, a group of examples): a probability per context size."""
    fig, ax = _line_chart(probabilities, context_sizes, xlabel, ylabel, title, legend_title)
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(context_sizes), [str(k) for k in context_sizes])
    ax.set_ylim(bottom=0.0)
    return _finish(fig, path)


# ----------------------------------------------------------------------------------------------
# Training runs
# ----------------------------------------------------------------------------------------------


def read_metrics(source: str | os.PathLike | Sequence[dict]) -> list[dict]:
    """Records of a `metrics.jsonl` file (one JSON object per line), or the given list unchanged."""
    if not isinstance(source, (str, os.PathLike)):
        return list(source)
    records = []
    with open(source, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{source}, line {number}: not a JSON object ({e})") from None
    return records


def _series(records: Sequence[dict], event: str, key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of `key` in the records of one event kind, skipping records that lack it."""
    points = [
        (int(r["step"]), float(r[key]))
        for r in records
        if r.get("event") == event and "step" in r and isinstance(r.get(key), (int, float))
    ]
    return [s for s, _ in points], [v for _, v in points]


def _event_name(records: Sequence[dict], event: str) -> str:
    """How a legend names an event: an evaluation is named after the split it ran on ("valid" records
    with split "test" are the test split), training is "train"."""
    splits = {r["split"] for r in records if r.get("event") == event and "split" in r}
    if len(splits) == 1:
        split = splits.pop()
        return split if event in ("valid", split) else f"{event} ({split})"
    return event


def plot_training_curves(
    metrics: str | os.PathLike | Sequence[dict],
    title: str = "Training run",
    path: str | os.PathLike | None = None,
) -> Figure:
    """Three panels over optimisation steps: loss, perplexity (log scale) and learning rate.

    `metrics` is a `metrics.jsonl` path or its records: dicts with "event" (e.g. "train", "valid"),
    "step", any of "loss", "ppl", "word_ppl", "lr", and for evaluations the "split" they ran on (the
    legend names it). Missing keys are skipped; a missing "ppl" is computed as exp(loss). Each event
    keeps one colour in every panel. A panel with nothing to draw says so instead of staying blank.
    """
    records = read_metrics(metrics)
    events = list(dict.fromkeys(r["event"] for r in records if "event" in r))
    fig = _new_figure(13.0, 3.8)
    loss_ax, ppl_ax, lr_ax = fig.subplots(1, 3)

    for i, event in enumerate(events):
        name, colour = _event_name(records, event), f"C{i}"  # one colour per event in every panel
        steps, losses = _series(records, event, "loss")
        if steps:
            loss_ax.plot(steps, losses, label=name, color=colour, marker="o" if len(steps) < 30 else None)
        steps, ppl = _series(records, event, "ppl")
        if not steps:
            steps, ppl = _series(records, event, "loss")
            ppl = [math.exp(min(v, 50.0)) for v in ppl]
        if steps:
            ppl_ax.plot(
                steps,
                ppl,
                label=f"{name}, token-level",
                color=colour,
                marker="o" if len(steps) < 30 else None,
            )
        steps, word_ppl = _series(records, event, "word_ppl")
        if steps:
            ppl_ax.plot(
                steps, word_ppl, label=f"{name}, word-level", color=colour, linestyle="--", marker="s"
            )
    steps, lr = _series(records, "train", "lr")
    if steps:
        lr_ax.plot(steps, lr, color="grey")
        lr_ax.set_xlim(left=0)
        lr_ax.set_ylim(bottom=0)  # a warm-up starts from 0: keep it in view

    for ax, ylabel, panel_title in (
        (loss_ax, "cross-entropy (nats per token)", "Loss"),
        (ppl_ax, "perplexity (log scale)", "Perplexity"),
        (lr_ax, "learning rate", "Learning-rate schedule"),
    ):
        ax.set_xlabel("optimisation step")
        ax.set_ylabel(ylabel)
        ax.set_title(panel_title)
        ax.grid(alpha=0.3)
        if ax.lines:
            if ax is not lr_ax:
                ax.legend(fontsize=8)
        else:
            ax.text(
                0.5, 0.5, "nothing logged", ha="center", va="center", transform=ax.transAxes, color="grey"
            )
    if ppl_ax.lines:
        ppl_ax.set_yscale("log")
    fig.suptitle(title)
    return _finish(fig, path)


def plot_lr_per_group(
    history: dict[str, Sequence[float]],
    steps: Sequence[int] | None = None,
    title: str = "Learning rate of each parameter group",
    path: str | os.PathLike | None = None,
) -> Figure:
    """One line per parameter group (in the given order, e.g. head first, embeddings last).

    Colours run along one colour map in that order, so layer-wise decay reads as a gradient.
    """
    n = len(history)
    colours = [colormaps["viridis"](0.9 * i / max(n - 1, 1)) for i in range(n)]
    fig, _ = _line_chart(
        history, steps, "optimisation step", "learning rate", title, "parameter group", colours, marker=None
    )
    return _finish(fig, path)


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------


def plot_confusion_matrix(
    matrix: ArrayLike,
    label_names: Sequence[str],
    normalize: str | None = "true",
    title: str = "Confusion matrix",
    path: str | os.PathLike | None = None,
) -> Figure:
    """Counts of (true class, predicted class), rows = true classes.

    normalize="true" divides each row by its total (each cell: the share of that class predicted as
    the column), "pred" divides each column, None keeps raw counts. The title adds the accuracy.
    """
    if normalize not in ("true", "pred", None):
        raise ValueError(f"normalize={normalize!r}: choose 'true', 'pred' or None")
    counts = _numpy(matrix).astype(np.float64)
    if counts.shape != (len(label_names), len(label_names)):
        raise ValueError(f"matrix has shape {counts.shape} but {len(label_names)} label names were given")
    accuracy = np.trace(counts) / max(counts.sum(), 1.0)
    if normalize == "true":
        shown = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    elif normalize == "pred":
        shown = counts / np.maximum(counts.sum(axis=0, keepdims=True), 1.0)
    else:
        shown = counts

    n = len(label_names)
    fig = _new_figure(2.5 + 0.75 * n, 2.0 + 0.65 * n, title + " (accuracy 100.0%)")
    ax = fig.subplots()
    image = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else max(shown.max(), 1.0))
    threshold = (1.0 if normalize else shown.max()) / 2
    for (r, c), value in np.ndenumerate(shown):
        text = f"{value:.2f}" if normalize else f"{int(value)}"
        ax.text(
            c, r, text, ha="center", va="center", fontsize=9, color="white" if value > threshold else "black"
        )
    ax.set_xticks(range(n), list(label_names), rotation=45, ha="right")
    ax.set_yticks(range(n), list(label_names))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    colour_label = {"true": "share of the true class", "pred": "share of the predicted class", None: "count"}
    fig.colorbar(image, ax=ax, label=colour_label[normalize])
    ax.set_title(f"{title} (accuracy {accuracy:.1%})")
    return _finish(fig, path)


def plot_seed_spread(
    results: dict[str, Sequence[float]],
    ylabel: str = "test accuracy",
    title: str = "Spread over random seeds",
    path: str | os.PathLike | None = None,
) -> Figure:
    """A box per technique with every seed's result drawn on top as a point.

    The points are spread sideways by a fixed-seed jitter so that equal values stay visible.
    """
    names = list(results)
    fig = _new_figure(1.8 + 1.3 * len(names), 4.5, title)
    ax = fig.subplots()
    data = [list(results[name]) for name in names]
    ax.boxplot(data, tick_labels=names, widths=0.5, showfliers=False)
    rng = np.random.default_rng(0)
    for i, values in enumerate(data, start=1):
        jitter = rng.uniform(-0.12, 0.12, size=len(values))
        ax.scatter(i + jitter, values, color="C1", s=18, zorder=3, label="one seed" if i == 1 else None)
    ax.tick_params(axis="x", rotation=20)
    ax.set_xlabel("technique")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    if any(data):
        ax.legend(loc="best", fontsize=8)
    ax.set_title(title)
    return _finish(fig, path)


def plot_lr_finder(
    lrs: Sequence[float],
    losses: Sequence[float],
    suggestion: float | None = None,
    title: str = "Learning-rate finder",
    path: str | os.PathLike | None = None,
) -> Figure:
    """Smoothed training loss while the learning rate grows exponentially, with the suggested lr marked."""
    fig = _new_figure(6.0, 4.0, title)
    ax = fig.subplots()
    ax.set_title(title)
    ax.plot(lrs, losses, color="tab:blue")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss (smoothed)")
    if suggestion is not None:
        ax.axvline(suggestion, color="tab:red", linestyle="--", label=f"suggestion {suggestion:.2g}")
        ax.legend()
    ax.grid(True, alpha=0.3)
    return _finish(fig, path)


def plot_accuracy_bars(
    results: dict[str, Sequence[float]],
    references: dict[str, float] | None = None,
    ylabel: str = "test accuracy",
    title: str = "Test accuracy",
    path: str | os.PathLike | None = None,
) -> Figure:
    """One horizontal bar per model: the mean over seeds, ± one standard deviation, every seed a dot.

    `references` (name → value) are drawn as dashed vertical lines across all bars, e.g. a baseline.
    """
    names = list(results)
    labels_width = 0.075 * max(map(len, names))  # inches of y tick labels beside the axes
    fig = _new_figure(5.0 + labels_width, 1.2 + 0.45 * len(names), title)
    ax = fig.subplots()
    rows = np.arange(len(names))[::-1]  # the first model on top
    for row, name in zip(rows, names):
        values = np.asarray(results[name], dtype=float)
        std = values.std(ddof=1) if len(values) > 1 else 0.0
        ax.barh(row, values.mean(), xerr=std, color="C0", alpha=0.75, capsize=3)
        ax.scatter(values, np.full(len(values), row), color="C1", s=14, zorder=3)
        ax.text(values.mean() + std, row + 0.3, f" {values.mean():.1%}", va="center", fontsize=8)
    for i, (name, value) in enumerate((references or {}).items()):
        ax.axvline(value, color=f"C{i + 2}", linestyle="--", label=f"{name} ({value:.1%})")
    low = min(min(v) for v in results.values())
    ax.set_xlim(max(0.0, low - 0.1), 1.0)
    ax.set_yticks(rows, names)
    ax.set_xlabel(f"{ylabel} (bar: mean over seeds ± std; dots: each seed)")
    ax.grid(alpha=0.3, axis="x")
    if references:
        fig.legend(loc="outside lower center", fontsize=8)  # below the axes: it never hides a bar
    fig.suptitle(title)  # centred on the figure: the labels leave the axes narrower than a long title
    return _finish(fig, path)


# ----------------------------------------------------------------------------------------------
# Inline display in Jupyter
# ----------------------------------------------------------------------------------------------
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


def _show_in_notebook(fig: Figure, name: str) -> None:
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
    return _png(fig), {"filename": names[0] if names else "figure.png"}


def _display_queued(*_) -> None:
    """Display the figures the finished cell made and did not display itself."""
    while _queued:
        fig, name = _queued.pop(0)
        _display_png(_png(fig), name)


def _display_png(png: bytes, name: str) -> None:
    from IPython.display import display

    display(
        {"image/png": png, "text/plain": f"<figure {name}>"},
        raw=True,
        metadata={"image/png": {"filename": name}},
    )
