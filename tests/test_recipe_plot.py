"""`benchmarks.recipe_plot`: validation perplexity against wall-clock minutes, with reference lines."""

from __future__ import annotations

import pytest

from benchmarks.recipe_plot import main, wallclock_figure
from minitransformer.runs.metrics_log import MetricsLog


def a_run(folder, points: list[tuple[int, float, float]]):
    """A run folder whose metrics.jsonl has a `valid` event per (step, seconds, word ppl), the last `final`."""
    log = MetricsLog(folder / "metrics.jsonl")
    for i, (step, seconds, ppl) in enumerate(points):
        log.log("final" if i == len(points) - 1 else "valid", step, wall_time_s=seconds, word_ppl=ppl)
    return folder


def test_curves_in_minutes_and_a_horizontal_line_per_reference(tmp_path):
    run = a_run(tmp_path, [(0, 0.0, 8000.0), (200, 60.0, 1500.0), (600, 240.0, 1000.0)])
    axes = wallclock_figure([("old", run)], [("5-gram", 1118.4)], threads=1, evaluated_on="valid").axes[0]
    curve, line = axes.get_lines()
    assert list(curve.get_xdata()) == [1.0, 4.0] and list(curve.get_ydata()) == [
        1500.0,
        1000.0,
    ]  # step 0 left out
    assert list(line.get_ydata()) == [1118.4, 1118.4] and tuple(line.get_xdata()) == (0, 1)  # the full width
    assert [t.get_text() for t in axes.get_legend().get_texts()] == ["old (final 1,000)", "5-gram (1,118)"]
    assert "(1 thread)" in axes.get_xlabel() and "(valid)" in axes.get_ylabel()


def test_a_line_that_is_not_label_equals_number_is_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path / "out.png"), f"old={tmp_path}", "--line", "5-gram=many"])
    assert exit_.value.code == 2
    assert "'many' is not a float" in capsys.readouterr().err
