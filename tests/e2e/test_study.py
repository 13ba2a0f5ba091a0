"""`python -m minitransformer study --quick` on a quickly pretrained model: every technique, every seed, honest statistics."""

from __future__ import annotations

import json
import statistics

import pytest

from adapt.study import TECHNIQUES, main

pytestmark = pytest.mark.e2e  # runs the command-line programs end to end


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory, pretrained_dir, shared_data):
    out = tmp_path_factory.mktemp("study")
    argv = ["--pretrained", str(pretrained_dir), "--seeds", "0,1", "--quick", "--threads", "1",
            "--data-dir", str(shared_data), "--output-dir", str(out)]  # fmt: skip
    assert main(argv) == 0
    return out


def test_table_has_one_row_per_technique_with_statistics_of_its_seeds(study_dir):
    results = json.loads((study_dir / "results.json").read_text(encoding="utf-8"))
    rows = results["techniques"]
    assert [row["technique"] for row in rows] == list(TECHNIQUES)
    table = (study_dir / "table.md").read_text(encoding="utf-8").splitlines()
    assert len(table) == 2 + len(TECHNIQUES)  # header, rule, one row per technique
    for line, row in zip(table[2:], rows):
        accuracies = [run["test_accuracy"] for run in row["runs"]]
        assert [run["seed"] for run in row["runs"]] == [0, 1]
        assert all(0.0 <= a <= 1.0 for a in accuracies)
        summary = row["test_accuracy"]
        assert summary["mean"] == pytest.approx(statistics.fmean(accuracies))
        assert summary["std"] == pytest.approx(statistics.stdev(accuracies))
        assert (summary["min"], summary["max"]) == (min(accuracies), max(accuracies))
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[0] == row["technique"]
        assert float(cells[2]) == pytest.approx(100 * summary["mean"], abs=0.005)
        assert float(cells[3]) == pytest.approx(100 * summary["std"], abs=0.005)
        assert cells[6] == ", ".join(f"{100 * a:.1f}" for a in accuracies)
    assert results["table_markdown"] == "\n".join(table) + "\n"


def test_each_run_used_its_technique_and_the_figures_exist(study_dir):
    args = json.loads((study_dir / "llrd" / "seed_1" / "training_args.json").read_text(encoding="utf-8"))
    assert (args["llrd"], args["seeds"], args["train_file"]) == (0.9, [1], "train_1000.label")
    pooling = json.loads(
        (study_dir / "weighted-pooling" / "seed_0" / "training_args.json").read_text("utf-8")
    )
    assert (pooling["pooling"], pooling["layer_start"]) == ("weighted", 1)  # a 2-layer model: layers 1-2
    for figure in ("stability_seed_spread.png", "llrd_lr.png"):
        assert (study_dir / figure).read_bytes().startswith(b"\x89PNG")


def test_refuses_to_overwrite_a_finished_study(study_dir, pretrained_dir, capsys):
    assert main(["--pretrained", str(pretrained_dir), "--output-dir", str(study_dir)]) == 1
    assert "--overwrite" in capsys.readouterr().err
