"""Figures of what happens inside the model: attention, masks, positions, norm placements, layers,
embeddings. Every function returns a matplotlib `Figure`; `path=` also saves it as a PNG."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Patch

from .figures import (
    _ANNOTATE_MAX_CELLS,
    ArrayLike,
    _finish,
    _line_chart,
    _new_figure,
    _numpy,
    _token_ticks,
)


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
    x: Sequence[int] | None = None,
) -> Figure:
    """One line per named series over the layers (or any integer index `x`, default 0, 1, ...), e.g.
    hidden-state norms."""
    fig, ax = _line_chart(values, x, xlabel, ylabel, title)
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
    annotations = []
    for name, colour in zip(group_names, colours):
        keep = [i for i in range(len(labels)) if groups is None or groups[i] == name]
        ax.scatter(points[keep, 0], points[keep, 1], color=colour, label=name, s=30)
        for i in keep:
            annotations.append(
                ax.annotate(
                    labels[i], points[i], xytext=(4, 3), textcoords="offset points", fontsize=8, color=colour
                )
            )
    ax.set_xlabel(f"first principal component ({explained[0]:.0%} of the variance)")
    ax.set_ylabel(f"second principal component ({explained[1]:.0%} of the variance)")
    if groups is not None:
        ax.legend(title="word group")
    ax.grid(alpha=0.3)
    ax.set_title(title)
    _separate_labels(fig, annotations)
    return _finish(fig, path)


def _separate_labels(fig: Figure, annotations: list, step_pt: float = 9.0, tries: int = 20) -> None:
    """Move each point label down a line at a time until it overlaps no label placed before it, so that
    words whose points nearly coincide stay readable (their points keep their place)."""
    fig.draw_without_rendering()  # settle the layout: label boxes are measured where they will be drawn
    renderer = FigureCanvasAgg(fig).get_renderer()
    placed = []
    for annotation in annotations:
        for _ in range(tries):
            box = annotation.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed):
                break
            x, y = annotation.xyann  # the label's offset from its point, in points
            annotation.xyann = (x, y - step_pt)
        placed.append(annotation.get_window_extent(renderer))


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
