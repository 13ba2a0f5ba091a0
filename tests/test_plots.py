"""Figures: the right panels and lines, readable labels, a non-empty PNG, the same picture twice."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from minitransformer import TransformerConfig, TransformerWithLMHead
from minitransformer.model import sinusoidal_table
from minitransformer.teaching import display, plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LABELS = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]


def _records() -> list[dict]:
    train = [
        {"event": "train", "step": s, "loss": 6 - s / 100, "lr": 1e-3 * min(1, s / 50)}
        for s in range(0, 200, 10)
    ]
    valid = [{"event": "valid", "step": s, "loss": 5.0, "word_ppl": 300.0} for s in (100, 200)]
    return train + valid


def _attentions(tiny_config: TransformerConfig, tokens: int = 6) -> tuple[torch.Tensor, ...]:
    torch.manual_seed(0)
    model = TransformerWithLMHead(tiny_config).eval()
    x = torch.arange(tokens).unsqueeze(0)
    with torch.no_grad():
        return model.transformer(x, output_attentions=True).attentions


# Each case: a function drawing one figure from fixed inputs, and the number of axes it must have
# (colour bars count as axes).
CASES = {
    "attention_grid": (lambda cfg: plots.plot_attention_grid(_attentions(cfg), list("abcdef")), 2 * 3 + 1),
    "mask_causal": (lambda cfg: plots.plot_mask(torch.ones(5, 5, dtype=torch.bool).tril(), list("abcde")), 1),
    "mask_batch": (lambda cfg: plots.plot_mask(torch.ones(3, 4, 4, dtype=torch.bool)), 3),
    "positional_encoding": (lambda cfg: plots.plot_positional_encoding(sinusoidal_table(32, 16)), 2),
    "layer_curves": (
        lambda cfg: plots.plot_layer_curves({"pre": [1, 2, 3], "post": [1, 1, 1]}, "norm", "t"),
        1,
    ),
    "training_curves": (lambda cfg: plots.plot_training_curves(_records()), 3),
    "lr_per_group": (lambda cfg: plots.plot_lr_per_group({"head": [1.0, 2.0], "embeddings": [0.5, 1.0]}), 1),
    "confusion_matrix": (lambda cfg: plots.plot_confusion_matrix(np.eye(6) * 10 + 1, LABELS), 2),
    "seed_spread": (lambda cfg: plots.plot_seed_spread({"a": [0.8, 0.9, 0.85], "b": [0.7, 0.75]}), 1),
    "embedding_pca": (
        lambda cfg: plots.plot_embedding_pca(
            torch.randn(8, 5, generator=torch.Generator().manual_seed(0)),
            list("abcdefgh"),
            ["x"] * 4 + ["y"] * 4,
        ),
        1,
    ),
    "prediction_vs_context": (
        lambda cfg: plots.plot_prediction_vs_context([1, 2, 3], {"a": [0.1, 0.2, 0.3]}),
        1,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_figure_saves_a_png_and_is_deterministic(name, tiny_config, tmp_path):
    draw, num_axes = CASES[name]
    fig = draw(tiny_config)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == num_axes
    first, second = tmp_path / "first.png", tmp_path / "second.png"
    fig.savefig(first)
    draw(tiny_config).savefig(second)
    assert first.read_bytes().startswith(PNG_SIGNATURE) and first.stat().st_size > 1000
    assert first.read_bytes() == second.read_bytes()


def test_path_argument_creates_folders(tmp_path):
    target = tmp_path / "nested" / "pe.png"
    plots.plot_positional_encoding(sinusoidal_table(8, 4), path=target)
    assert target.read_bytes().startswith(PNG_SIGNATURE)


def test_every_figure_has_axis_labels_and_a_title(tiny_config):
    for name, (draw, _) in CASES.items():
        fig = draw(tiny_config)
        panels = [ax for ax in fig.axes if ax.get_images() or ax.lines or ax.collections]
        assert any(ax.get_xlabel() for ax in panels), f"{name}: no x-axis label"
        assert any(ax.get_ylabel() for ax in panels), f"{name}: no y-axis label"
        assert fig.get_suptitle() or any(ax.get_title() for ax in fig.axes), f"{name}: no title"


def test_attention_grid_selects_layers_and_heads(tiny_config):
    fig = plots.plot_attention_grid(_attentions(tiny_config), list("abcdef"), layers=[1], heads=[0, 2])
    panels = [ax for ax in fig.axes if ax.get_title().startswith("head")]
    assert [ax.get_title() for ax in panels] == ["head 0", "head 2"]
    shown = fig.axes[1].get_images()[0].get_array()
    expected = _attentions(tiny_config)[1][0, 2]
    assert np.allclose(shown, expected.numpy())


def test_layer_curves_draw_at_the_given_index():
    fig = plots.plot_layer_curves({"a": [3.0, 2.0, 1.0]}, "y", "t", xlabel="position", x=[1, 2, 3])
    line = fig.axes[0].get_lines()[0]
    assert list(line.get_xdata()) == [1, 2, 3] and list(line.get_ydata()) == [3.0, 2.0, 1.0]
    default = plots.plot_layer_curves({"a": [3.0, 2.0, 1.0]}, "y", "t").axes[0].get_lines()[0]
    assert list(default.get_xdata()) == [0, 1, 2]  # layers: 0 = embeddings


def test_mask_cells_show_the_mask(tiny_config):
    mask = torch.ones(4, 4, dtype=torch.bool).tril()
    fig = plots.plot_mask(mask, list("abcd"))
    ax = fig.axes[0]
    assert np.array_equal(np.asarray(ax.get_images()[0].get_array(), dtype=bool), mask.numpy())
    assert [t.get_text() for t in ax.texts[:4]] == ["1", "0", "0", "0"]  # row 0: only itself
    assert [t.get_text() for t in ax.get_xticklabels()] == list("abcd")


def test_mask_accepts_the_models_combined_mask(tiny_config):
    model = TransformerWithLMHead(tiny_config)
    padding = torch.tensor([[False] * 4, [False, False, True, True]])
    mask, _ = model.transformer.attention_mask(padding, 4, 4)  # (2, 1, 4, 4)
    fig = plots.plot_mask(mask, [list("abcd"), ["x", "y", "[PAD]", "[PAD]"]])
    assert len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["x", "y", "[PAD]", "[PAD]"]
    assert np.array_equal(np.asarray(fig.axes[1].get_images()[0].get_array(), dtype=bool), mask[1, 0].numpy())


def test_training_curves_read_jsonl_and_tolerate_missing_keys(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = _records() + [{"event": "train", "step": 300}, {"event": "epoch", "epoch": 1}]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    loss_ax, ppl_ax, lr_ax = plots.plot_training_curves(path).axes
    assert [line.get_label() for line in loss_ax.lines] == ["train", "valid"]  # no split recorded
    labels = [line.get_label() for line in ppl_ax.lines]
    assert labels == ["train, token-level", "valid, token-level", "valid, word-level"]
    assert np.allclose(ppl_ax.lines[1].get_ydata(), math.exp(5.0))  # ppl computed from the loss
    assert len(lr_ax.lines) == 1 and len(lr_ax.lines[0].get_xdata()) == 20  # the step without lr skipped


def test_training_curves_empty_panel_says_so():
    fig = plots.plot_training_curves([{"event": "train", "step": 1, "loss": 2.0}])
    assert any(t.get_text() == "nothing logged" for t in fig.axes[2].texts)


def test_training_curves_malformed_line_names_it(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"event": "train", "step": 1, "loss": 2.0}\nnot json\n')
    with pytest.raises(ValueError, match="line 2"):
        plots.plot_training_curves(path)


def test_head_scores_draw_one_line_per_head_with_its_values():
    records = [
        {"event": "train", "step": 1, "loss": 5.0},
        {"event": "valid", "step": 0, "previous_token": [[0.1, 0.2], [0.3, 0.4]], "prefix_matching": [[0.0, 0.0], [0.1, 0.2]]},
        {"event": "valid", "step": 10, "previous_token": [[0.9, 0.2], [0.3, 0.4]], "prefix_matching": [[0.0, 0.0], [0.8, 0.2]]},
    ]  # fmt: skip
    fig = plots.plot_head_scores(records)
    previous, matching = fig.axes[0].lines, fig.axes[1].lines
    assert [line.get_label() for line in previous][:3] == [
        "layer 0, head 0",
        "layer 0, head 1",
        "layer 1, head 0",
    ]
    assert list(previous[0].get_ydata()) == [0.1, 0.9] and list(previous[0].get_xdata()) == [0, 10]
    assert list(matching[2].get_ydata()) == [0.1, 0.8]
    assert "a uniform head" not in [line.get_label() for line in previous]  # none logged: none drawn


def test_head_scores_draw_the_logged_uniform_baseline():
    records = [
        {"event": "valid", "step": s, "previous_token": [[v]], "previous_token_uniform": 0.2}
        for s, v in ((0, 0.1), (10, 0.9))
    ]
    fig = plots.plot_head_scores(records, scores=("previous_token",))
    [baseline] = [line for line in fig.axes[0].lines if line.get_label() == "a uniform head"]
    assert list(baseline.get_ydata()) == [0.2, 0.2] and baseline.get_linestyle() == "--"


def test_lr_per_group_keeps_the_order_and_values():
    history = {"head": [1.0, 2.0, 3.0], "layer 1": [0.5, 1.0, 1.5], "embeddings": [0.25, 0.5, 0.75]}
    fig = plots.plot_lr_per_group(history, steps=[10, 20, 30])
    lines = fig.axes[0].lines
    assert [line.get_label() for line in lines] == list(history)
    assert list(lines[2].get_xdata()) == [10, 20, 30] and list(lines[2].get_ydata()) == history["embeddings"]


def test_confusion_matrix_normalizes_rows_and_reports_accuracy():
    matrix = np.array([[3, 1], [0, 4]])
    fig = plots.plot_confusion_matrix(matrix, ["a", "b"], normalize="true")
    shown = fig.axes[0].get_images()[0].get_array()
    assert np.allclose(shown, [[0.75, 0.25], [0.0, 1.0]])
    assert "87.5%" in fig.axes[0].get_title()
    counts = plots.plot_confusion_matrix(matrix, ["a", "b"], normalize=None)
    assert [t.get_text() for t in counts.axes[0].texts] == ["3", "1", "0", "4"]
    with pytest.raises(ValueError, match="3 label names"):
        plots.plot_confusion_matrix(matrix, ["a", "b", "c"])


def test_seed_spread_draws_one_box_and_every_point():
    results = {"baseline": [0.7, 0.8, 0.9], "re-init": [0.85, 0.86]}
    ax = plots.plot_seed_spread(results).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["baseline", "re-init"]
    points = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections])
    assert sorted(points.tolist()) == sorted(results["baseline"] + results["re-init"])


def test_embedding_pca_separates_groups_along_the_first_component():
    generator = torch.Generator().manual_seed(0)
    direction = torch.randn(16, generator=generator)
    vectors = torch.cat(
        [
            direction * 5 + 0.1 * torch.randn(4, 16, generator=generator),
            -direction * 5 + 0.1 * torch.randn(4, 16, generator=generator),
        ]
    )
    fig = plots.plot_embedding_pca(vectors, [f"w{i}" for i in range(8)], ["a"] * 4 + ["b"] * 4)
    ax = fig.axes[0]
    first, second = (c.get_offsets()[:, 0] for c in ax.collections)
    assert (first.max() < second.min()) or (second.max() < first.min())
    assert "of the variance" in ax.get_xlabel()
    assert [t.get_text() for t in ax.texts] == [f"w{i}" for i in range(8)]


def test_norm_placement_diagram_has_one_panel_per_placement_with_two_residuals(tmp_path):
    from minitransformer.config import NORM_PLACEMENTS

    fig = plots.plot_norm_placements(path=tmp_path / "np.png")
    assert sorted(ax.get_title().split()[0] for ax in fig.axes) == sorted(NORM_PLACEMENTS)
    for ax in fig.axes:
        residuals = [line for line in ax.lines if len(line.get_xdata()) == 3]  # out, round the side, up
        assert len(residuals) == 2, ax.get_title()
        labels = [t.get_text() for t in ax.texts]
        assert labels.count("+") == 2 and labels.count("LayerNorm") == 2, labels
    assert (tmp_path / "np.png").read_bytes().startswith(PNG_SIGNATURE)


def test_training_curves_name_the_evaluated_split_and_show_the_warmup_from_zero():
    records = [{"event": "train", "step": s, "loss": 5.0, "lr": 1e-3 * s / 10} for s in range(1, 11)] + [
        {"event": "valid", "step": 10, "loss": 4.0, "split": "test"}
    ]
    fig = plots.plot_training_curves(records)
    loss_ax, _, lr_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["train", "test"]
    assert lr_ax.get_ylim()[0] == 0.0 and lr_ax.get_xlim()[0] == 0.0
    ppl_colours = {line.get_label().split(",")[0]: line.get_color() for line in fig.axes[1].lines}
    assert {line.get_label(): line.get_color() for line in loss_ax.lines} == ppl_colours


class _FakeKernelShell:
    """Just enough of IPython's kernel shell for plots' inline display: events and a PNG formatter."""

    def __init__(self):
        self.callbacks = {"post_run_cell": []}
        self.events = self
        self.png_types = {}
        formatter = type("Formatter", (), {"for_type": lambda _, cls, fn: self.png_types.update({cls: fn})})()
        self.display_formatter = type("Formatters", (), {"formatters": {"image/png": formatter}})()

    def register(self, event, fn):
        self.callbacks[event].append(fn)

    def end_cell(self, last_expression=None):
        """What the kernel does: format the cell's value, if any, then run the post-cell hooks."""
        if last_expression is not None:
            self.png_types[Figure](last_expression)
        for fn in self.callbacks["post_run_cell"]:
            fn(None)


@pytest.fixture
def kernel(monkeypatch):
    pytest.importorskip("IPython")
    import IPython.display

    shell, shown = _FakeKernelShell(), []
    monkeypatch.setattr(display, "_kernel_shell", lambda: shell)
    monkeypatch.setattr(
        IPython.display,
        "display",
        lambda data, raw, metadata: shown.append(metadata["image/png"]["filename"]),
    )
    return shell, shown


def test_in_a_kernel_every_figure_is_displayed_once_after_its_cell(kernel, tmp_path):
    shell, shown = kernel
    first = plots.plot_positional_encoding(sinusoidal_table(8, 4), path=tmp_path / "a.png")
    plots.plot_positional_encoding(sinusoidal_table(8, 4), path=tmp_path / "b.png")
    assert shown == []  # nothing before the cell ends
    shell.end_cell(last_expression=first)  # the cell ends with `first`: IPython formats it itself
    assert shown == ["b.png"]
    with plots.inline(False):  # e.g. a pretrain run's own figures
        plots.plot_positional_encoding(sinusoidal_table(8, 4), path=tmp_path / "c.png")
    shell.end_cell()
    assert shown == ["b.png"] and (tmp_path / "c.png").is_file()
    plots.show(tmp_path / "c.png")
    assert shown == ["b.png", "c.png"]
    assert len(shell.callbacks["post_run_cell"]) == 1  # registered once


def test_outside_a_kernel_nothing_is_queued(tmp_path):
    plots.plot_positional_encoding(sinusoidal_table(8, 4), path=tmp_path / "a.png")
    plots.show(tmp_path / "a.png")
    assert display._queued == []


def test_a_1000_class_confusion_matrix_is_bounded():
    """Issue 27 item 13: the annotated 1000×1000 matrix ran ~5 min, reached 23 GB and was OOM-killed."""
    import resource

    from minitransformer.teaching.run_plots import MAX_CONFUSION_CLASSES

    rng = np.random.default_rng(0)
    counts = np.diag(rng.integers(1, 5, 1000)).astype(float)
    counts[3, 7] = counts[500, 2] = 9  # the most confused classes: 3, 7, 500, 2
    labels = [f"c{i}" for i in range(1000)]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fig = plots.plot_confusion_matrix(counts, labels)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 500_000  # KiB
    ax = fig.axes[0]
    shown = [t.get_text() for t in ax.get_yticklabels()]
    assert len(shown) == MAX_CONFUSION_CLASSES and {"c2", "c3", "c7", "c500"} <= set(shown)
    assert f"{MAX_CONFUSION_CLASSES} most confused of 1000 classes" in ax.get_title()


def test_labels_are_plain_text_not_mathtext(tmp_path):
    """Issue 34 case 6: a class named `$\\undefinedmacro$` failed the confusion matrix (and with it adapt's
    results) and `adapt.compare --figure`: labels were read as mathtext."""
    from adapt.compare import main as compare_main

    label = "$\\undefinedmacro$"
    plots.plot_confusion_matrix(np.eye(2), [label, "b"], path=tmp_path / "confusion.png")
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(
        json.dumps({"runs": [{"seed": 0, "valid_accuracy": 0.5, "test": {"accuracy": 0.5}}]})
    )
    assert compare_main(["--run", str(run), label, "--figure", str(tmp_path / "bars.png")]) == 0
    assert (tmp_path / "confusion.png").stat().st_size > 0 and (tmp_path / "bars.png").stat().st_size > 0


def test_embedding_pca_labels_of_nearly_coinciding_points_do_not_overlap():
    """Words whose points almost coincide (as China and England did in tutorial 6) get separate labels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 16, generator=generator) * 5  # three clusters set both axes' range
    vectors = centres.repeat_interleave(4, dim=0) + 1e-3 * torch.randn(12, 16, generator=generator)
    groups = ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    fig = plots.plot_embedding_pca(vectors, [f"word{i}" for i in range(12)], groups)
    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    boxes = [text.get_window_extent(renderer) for text in fig.axes[0].texts]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def test_compare_refuses_a_results_file_without_a_seeds_validation_accuracy(tmp_path, capsys):
    """Found beside issue 34: a results.json without `valid_accuracy` gave a KeyError traceback."""
    from adapt.compare import main as compare_main

    (tmp_path / "results.json").write_text(json.dumps({"runs": [{"seed": 0, "test": {"accuracy": 0.5}}]}))
    assert compare_main(["--run", str(tmp_path), "a"]) != 0
    err = capsys.readouterr().err
    assert "results.json lacks a seed's test or validation accuracy" in err and "Traceback" not in err


def test_a_log_axis_keeps_its_mathtext_tick_labels():
    """Labels are plain text, but the 10² that a log axis's formatter writes must still be drawn as math
    (a fix of case 6 of issue 34 had every log axis show `$\\mathdefault{10^{2}}$` literally)."""
    from matplotlib.figure import Figure

    from minitransformer.teaching.display import png_bytes

    fig = Figure()
    ax = fig.add_subplot()
    ax.semilogy([1, 2, 3], [10, 100, 1000])
    ax.set_title("$\\undefinedmacro$")
    png_bytes(fig)  # must not fail on the title
    drawn = [t for t in ax.yaxis.get_ticklabels() if "mathdefault" in t.get_text()]
    assert drawn and all(t.get_parse_math() for t in drawn)
    assert not ax.title.get_parse_math()
