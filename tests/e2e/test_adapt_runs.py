"""`python -m adapt` end to end on the official 1000-question TREC subset, with a quickly pretrained model."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from adapt.compare import main as compare_main
from adapt.predict import main as predict_main
from adapt.run import main
from minitransformer.data.classification import load_trec, stratified_split
from minitransformer.runs.metrics_log import MetricsLog

TENSORBOARD = importlib.util.find_spec("tensorboard") is not None
FAST = ["--threads", "1", "--no-progress", "--eval-every", "20"]
TREC_1000 = ["--train-file", "train_1000.label"]  # the official 1000-question subset (TREC tasks only)


def fast(*extra: str) -> list[str]:
    return [*FAST, *([] if "--task" in extra else TREC_1000), *extra]


def run_adapt(out: Path, pretrained, *extra: str) -> dict:
    assert main(["--pretrained", str(pretrained), "--output-dir", str(out), *fast(*extra)]) == 0
    return json.loads((out / "results.json").read_text())


@pytest.mark.e2e
def test_finetuning_a_pretrained_model_beats_the_majority_class(pretrained_dir, tmp_path, shared_data):
    results = run_adapt(tmp_path / "run", pretrained_dir, "--epochs", "3", "--lr", "2e-3")
    train, _ = load_trec(shared_data, train_file="train_1000.label")
    _, valid = stratified_split(train, 0.1, seed=0)
    majority = max(valid.counts().values()) / len(valid)
    run = results["runs"][0]
    assert run["valid_accuracy"] > majority + 0.1, (run["valid_accuracy"], majority)
    assert run["test"]["accuracy"] == pytest.approx(1 - run["test"]["error_rate"])
    assert set(run["test"]["per_class"]) == {"ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"}
    assert sum(map(sum, run["test"]["confusion"])) == 500
    for name in (
        "seed_0/config.json",
        "seed_0/classifier.json",
        "plots/confusion_seed_0.png",
        "metrics.jsonl",
    ):
        assert (tmp_path / "run" / name).exists(), name
    epochs = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl") if '"epoch"' in line]
    assert len(epochs) == 3 and all(e["tokens"] > 0 for e in epochs)


def backbone(directory: Path) -> dict[str, torch.Tensor]:
    state = load_file(str(directory / "model.safetensors"))
    return {k: v for k, v in state.items() if k.startswith("transformer.") and ".adapter_" not in k}


@pytest.mark.e2e
@pytest.mark.parametrize("scheme", ["features", "adapters"])
def test_frozen_schemes_leave_the_backbone_untouched(pretrained_dir, tmp_path, scheme):
    run_adapt(tmp_path / "run", pretrained_dir, "--scheme", scheme, "--max-steps", "15", "--lr", "1e-2")
    before, after = backbone(pretrained_dir), backbone(tmp_path / "run" / "seed_0")
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    head = load_file(str(tmp_path / "run" / "seed_0" / "model.safetensors"))
    assert ("transformer.blocks.0.adapter_1.0.weight" in head) == (scheme == "adapters")


@pytest.mark.e2e
def test_random_init_baseline_and_several_seeds(pretrained_dir, tmp_path, capsys):
    results = run_adapt(
        tmp_path / "run",
        "none",
        "--architecture-from",
        str(pretrained_dir),
        "--seeds",
        "0,1",
        "--max-steps",
        "10",
        "--eval-every",
        "0",  # validate once, at the end of the (partial) epoch
    )
    accuracies = [r["test"]["accuracy"] for r in results["runs"]]
    assert [r["seed"] for r in results["runs"]] == [0, 1]
    assert results["test_accuracy"]["mean"] == pytest.approx(sum(accuracies) / 2)
    assert results["test_accuracy"]["std"] == pytest.approx(abs(accuracies[0] - accuracies[1]) / 2**0.5)
    assert results["wall_time_s"] >= sum(r["wall_time_s"] for r in results["runs"]) > 0
    valid_steps = [
        e["step"] for e in MetricsLog.read(tmp_path / "run" / "metrics.jsonl") if e["event"] == "valid"
    ]
    assert valid_steps == [10, 10]  # one validation per seed
    out = capsys.readouterr().out
    assert "random initialisation" in out and "over 2 seed(s)" in out

    figure = tmp_path / "bars.png"
    assert compare_main(["--run", str(tmp_path / "run"), "random init", "--figure", str(figure)]) == 0
    table = capsys.readouterr().out.splitlines()
    mean, std = 100 * results["test_accuracy"]["mean"], 100 * results["test_accuracy"]["std"]
    assert table[2].startswith(f"| random init | {mean:.1f} ± {std:.1f} % | {100 * accuracies[0]:.1f}, ")
    valid = [100 * r["valid_accuracy"] for r in results["runs"]]  # the column to choose models by
    assert f"| {sum(valid) / 2:.1f} ± {abs(valid[0] - valid[1]) / 2**0.5:.1f} % |" in table[2]
    assert figure.stat().st_size > 0
    pooled = ["--run", str(tmp_path / "run"), "twice", "--run", str(tmp_path / "run"), "twice"]
    assert compare_main(pooled) == 0  # the same label: one row, the seeds of both runs
    row = capsys.readouterr().out.splitlines()[2]
    assert row.count(",") == 3 and row.startswith(f"| twice | {mean:.1f} ± ")
    if importlib.util.find_spec("sklearn"):  # a baseline-only run: a table row and a reference line
        assert (
            main(
                [
                    "--baseline",
                    "tfidf",
                    "--train-file",
                    "train_1000.label",
                    "--output-dir",
                    str(tmp_path / "b"),
                ]
            )
            == 0
        )
        capsys.readouterr()
        both = ["--run", str(tmp_path / "b"), "TF-IDF", "--run", str(tmp_path / "run"), "random init"]
        assert compare_main([*both, "--figure", str(figure)]) == 0
        assert (
            "| TF-IDF | " in (row := capsys.readouterr().out.splitlines()[2]) and "| deterministic |" in row
        )
        tuned_on = json.loads((tmp_path / "b" / "results.json").read_text())["baseline"]["valid_accuracy"]
        assert f"| deterministic | {100 * tuned_on:.1f} % |" in row
    assert compare_main(["--run", str(tmp_path / "nothing"), "x"]) == 1
    assert "results.json not found" in capsys.readouterr().err


@pytest.mark.e2e
def test_predict_from_a_run_directory(pretrained_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative --output-dir, as users type it
    run_adapt(Path("run"), pretrained_dir, "--max-steps", "10")
    capsys.readouterr()
    assert (
        predict_main(["--model", str(tmp_path / "run"), "--json", "Who wrote Hamlet ?", "How far is it ?"])
        == 0
    )
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == ["Who wrote Hamlet ?", "How far is it ?"]
    for row in rows:
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert row["label"] == max(row["probabilities"], key=row["probabilities"].get)


@pytest.mark.e2e
def test_a_user_tsv_dataset(pretrained_dir, tmp_path):
    rows = [("person", f"who is person number {i} ?") for i in range(40)]
    rows += [("place", f"where is city number {i} ?") for i in range(40)]
    (tmp_path / "train.tsv").write_text("".join(f"{label}\t{text}\n" for label, text in rows))
    (tmp_path / "test.tsv").write_text("person\twho is that ?\nplace\twhere is that ?\n")
    results = run_adapt(
        tmp_path / "run", pretrained_dir, "--task", str(tmp_path / "train.tsv"),
        "--test-file", str(tmp_path / "test.tsv"), "--epochs", "4", "--lr", "3e-3", "--batch-size", "8",
    )  # fmt: skip
    run = results["runs"][0]
    assert set(run["test"]["per_class"]) == {"person", "place"}
    assert run["valid_accuracy"] == 1.0  # "who" vs "where" is learnable in a few steps
    assert results["validation"] == "10% of train"
    assert -1.0 <= run["test"]["mcc"] <= 1.0 and results["test_mcc"]["mean"] == run["test"]["mcc"]

    # the user's own validation file replaces the held-out 10 %: here one that swaps the labels, so a model
    # that learned "who" -> person scores at most chance on it (held out, it scored 1.0 above)
    (tmp_path / "valid.tsv").write_text("place\twho is that person ?\nperson\twhere is that city ?\n")
    results = run_adapt(
        tmp_path / "run2", pretrained_dir, "--task", str(tmp_path / "train.tsv"), "--valid-file",
        str(tmp_path / "valid.tsv"), "--test-file", str(tmp_path / "test.tsv"), "--epochs", "4", "--lr", "3e-3",
        "--batch-size", "8", *(["--logger", "tensorboard"] if TENSORBOARD else []),
    )  # fmt: skip
    assert results["validation"] == str(tmp_path / "valid.tsv")
    assert results["runs"][0]["valid_accuracy"] <= 0.5
    if TENSORBOARD:  # one event folder per seed, read back by TensorBoard itself
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(tmp_path / "run2" / "tensorboard" / "seed_0"))
        events.Reload()
        expected = {"train/loss", "train/grad_norm", "valid/accuracy", "epoch/tokens_per_s", "lr/group_0"}
        assert expected <= set(events.Tags()["scalars"])


@pytest.mark.e2e
@pytest.mark.parametrize(
    "option",
    [
        ["--optimizer", "bertadam"],
        ["--reinit-layers", "1"],
        ["--pooling", "weighted", "--layer-start", "1"],
        ["--llrd", "0.8"],
        ["--mixout", "0.5"],
        ["--prior-wd", "0.01"],
        ["--swa-start", "1", "--swa-lr", "1e-4"],
        ["--lm-coef", "0.5"],
    ],
    ids=lambda o: o[0].strip("-"),
)
def test_each_stability_option_runs_from_the_cli(pretrained_dir, tmp_path, option):
    results = run_adapt(tmp_path / "run", pretrained_dir, "--max-steps", "12", "--lr", "1e-3", *option)
    assert 0.0 <= results["test_accuracy"]["mean"] <= 1.0
    if option[0] == "--llrd":
        assert (tmp_path / "run" / "plots" / "llrd_lr.png").stat().st_size > 0


@pytest.mark.e2e
def test_bad_input_is_reported_in_one_line(pretrained_dir, tmp_path, capsys):
    single = tmp_path / "one.tsv"
    single.write_text("a\tfirst\na\tsecond\n")
    cases = [
        (["--task", str(single)], "single label"),
        (["--task", str(tmp_path / "missing.tsv")], "missing.tsv"),
        (["--scheme", "adapters", "--adapters-dim", "0"], "--adapters-dim > 0"),
        (["--swa-start", "9", "--max-steps", "5"], "--swa-start 9"),
    ]
    for extra, message in cases:
        assert (
            main(["--pretrained", str(pretrained_dir), "--output-dir", str(tmp_path / "x"), *fast(*extra)])
            == 1
        )
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    with pytest.raises(SystemExit):
        main(["--pretrained", str(pretrained_dir), *fast("--eval-every", "-1")])
    assert "--eval-every -1" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "model.safetensors"):
        (broken / name).write_bytes((pretrained_dir / name).read_bytes())
    assert main(["--pretrained", str(broken), "--output-dir", str(tmp_path / "y"), *fast()]) == 1
    assert "no tokenizer" in capsys.readouterr().err


@pytest.mark.e2e
def test_a_diverged_fine_tuning_stops_the_run(pretrained_dir, tmp_path, capsys):
    """Issue 27 item 9: `--lr 1e30 --max-steps 2` exited 0 with weights ~1e30 and test loss NaN."""
    out = tmp_path / "run"
    assert (
        main(
            [
                "--pretrained",
                str(pretrained_dir),
                "--output-dir",
                str(out),
                *fast("--lr", "1e30", "--max-steps", "2"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "validation loss is nan" in err and "lower --lr" in err and "Traceback" not in err
    assert not (out / "results.json").exists()
