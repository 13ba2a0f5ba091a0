"""Figures of training runs and their evaluation: curves from metrics.jsonl, learning rates, the
lr finder, confusion matrices, seed spreads. Every function returns a matplotlib `Figure`; `path=`
also saves it as a PNG. The only randomness is a seeded jitter in `plot_seed_spread`."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from .figures import (
    ArrayLike,
    _finish,
    _line_chart,
    _new_figure,
    _numpy,
)


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


def plot_head_scores(
    metrics: str | os.PathLike | Sequence[dict],
    scores: Sequence[str] = ("previous_token", "prefix_matching"),
    title: str = "Each head's scores over training",
    path: str | os.PathLike | None = None,
) -> Figure:
    """One panel per score, one line per head, over the steps of the evaluations that logged it.

    `metrics`: a `metrics.jsonl` path or its records; each "valid" record holds every score as a list of
    layers of heads (L × nh), as `--dataset induction` runs log them. Each layer has its own colour map
    (blues for layer 0, oranges for layer 1, ...), so a head's line says its layer at a glance. Where the
    records also hold a score's uniform baseline (`previous_token_uniform`, ...), a dashed grey line
    shows it.
    """
    records = [r for r in read_metrics(metrics) if r.get("event") == "valid" and scores[0] in r]
    fig = _new_figure(6.0 * len(scores), 3.8)
    for ax, name in zip(np.atleast_1d(fig.subplots(1, len(scores))), scores):
        steps = [r["step"] for r in records]
        values = np.array([r[name] for r in records])  # (evaluations, L, nh)
        for layer in range(values.shape[1] if values.ndim == 3 else 0):
            cmap = colormaps[("Blues", "Oranges", "Greens", "Purples")[layer % 4]]
            for head in range(values.shape[2]):
                colour = cmap(0.45 + 0.5 * head / max(values.shape[2] - 1, 1))
                ax.plot(steps, values[:, layer, head], color=colour, label=f"layer {layer}, head {head}")
        if records and f"{name}_uniform" in records[-1]:
            baseline = [r[f"{name}_uniform"] for r in records]
            ax.plot(steps, baseline, color="grey", linestyle="--", label="a uniform head")
        ax.set_xlabel("optimisation step")
        ax.set_ylabel("score (0 to 1)")
        ax.set_title(name.replace("_", "-"))
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7, ncol=2)
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


MAX_CONFUSION_CLASSES = 30  # a bigger matrix shows these most confused classes (1000×1000 took 23 GB)


def plot_confusion_matrix(
    matrix: ArrayLike,
    label_names: Sequence[str],
    normalize: str | None = "true",
    title: str = "Confusion matrix",
    path: str | os.PathLike | None = None,
) -> Figure:
    """Counts of (true class, predicted class), rows = true classes.

    normalize="true" divides each row by its total (each cell: the share of that class predicted as
    the column), "pred" divides each column, None keeps raw counts. The title adds the accuracy (of all
    classes). Past MAX_CONFUSION_CLASSES classes only the most confused ones are drawn, so the figure
    stays readable and bounded in time and memory.
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

    n_all = len(label_names)
    if n_all > MAX_CONFUSION_CLASSES:  # time and memory grow with n²: show the most confused classes only
        errors = counts.sum(axis=0) + counts.sum(axis=1) - 2 * np.diag(counts)
        keep = np.sort(np.argsort(-errors, kind="stable")[:MAX_CONFUSION_CLASSES])
        shown, label_names = shown[np.ix_(keep, keep)], [label_names[i] for i in keep]
        title += f" ({MAX_CONFUSION_CLASSES} most confused of {n_all} classes)"
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


BOX_MIN_SEEDS = 5  # fewer seeds than this: points, range and mean, no box


def plot_seed_spread(
    results: dict[str, Sequence[float]],
    ylabel: str = "test accuracy",
    title: str = "Spread over random seeds",
    path: str | os.PathLike | None = None,
) -> Figure:
    """Every seed's result as a point per technique, with its range (min to max) and mean marked; a box
    (quartiles and median, whiskers at the extremes) only for techniques with at least `BOX_MIN_SEEDS`
    seeds, since the quartiles of two or three points are not worth drawing.

    The points are spread sideways by a fixed-seed jitter so that equal values stay visible.
    """
    names = list(results)
    fig = _new_figure(1.8 + 1.3 * len(names), 4.5, title)
    ax = fig.subplots()
    data = [list(results[name]) for name in names]
    boxed = [i for i, values in enumerate(data, start=1) if len(values) >= BOX_MIN_SEEDS]
    if boxed:
        # whiskers at the worst and best seed (whis=(0, 100) percentiles), so no seed counts as an outlier
        ax.boxplot([data[i - 1] for i in boxed], positions=boxed, widths=0.5, whis=(0, 100), showfliers=False)
    rng = np.random.default_rng(0)
    for i, values in enumerate(data, start=1):
        jitter = rng.uniform(-0.12, 0.12, size=len(values))
        ax.scatter(i + jitter, values, color="C1", s=18, zorder=3, label="one seed" if i == 1 else None)
        if values and i not in boxed:
            mean = float(np.mean(values))
            ax.plot([i, i], [min(values), max(values)], color="0.5", lw=1, zorder=2,
                    label="range (min to max)" if i == 1 else None)  # fmt: skip
            ax.plot(
                [i - 0.2, i + 0.2], [mean, mean], color="C0", lw=2, zorder=2, label="mean" if i == 1 else None
            )
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.set_xlim(0.4, len(names) + 0.6)
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
