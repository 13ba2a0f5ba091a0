"""ULMFiT-style capabilities: continued pretraining, the learning-rate finder, the TF-IDF baseline."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import adapt.baseline
import adapt.run
from adapt.baseline import FIXED, GRID, describe, select_config, tfidf_classifier
from adapt.run import Task
from adapt.run import main as adapt_main
from minitransformer.data.classification import LabeledTexts, load_trec, stratified_split
from minitransformer.runs.metrics_log import MetricsLog
from pretrain.run import main as pretrain_main

pytestmark = pytest.mark.e2e  # runs the command-line programs end to end


def test_continued_pretraining_on_trec_questions_keeps_tokenizer_and_objective(pretrained_dir, tmp_path):
    out = tmp_path / "continued"
    argv = [
        "--init-from", str(pretrained_dir), "--dataset", "trec-questions", "--output-dir", str(out),
        "--cache-dir", str(tmp_path / "cache"), "--max-steps", "10", "--eval-every", "10", "--batch-size", "8",
        "--lr", "1e-3", "--warmup-steps", "2", "--sample-prompts", "--no-progress", "--threads", "1",
    ]  # fmt: skip
    assert pretrain_main(argv) == 0
    assert (out / "tokenizer.json").read_bytes() == (pretrained_dir / "tokenizer.json").read_bytes()
    assert json.loads((out / "config.json").read_text()) == json.loads(
        (pretrained_dir / "config.json").read_text()
    )
    corpus = {
        split: (tmp_path / "trec-questions" / f"{split}.txt").read_text().splitlines()
        for split in ("train", "valid")
    }
    assert len(corpus["train"]) + len(corpus["valid"]) == 5452  # every training question, 10 % held out
    assert 500 < len(corpus["valid"]) < 600 and ":" not in corpus["train"][0].split()[0]  # labels stripped
    first = [e for e in MetricsLog.read(out / "metrics.jsonl") if e["event"] == "valid"][0]
    assert first["split"] == "valid" and first["step"] == 0
    before, after = (
        load_file(str(pretrained_dir / "model.safetensors")),
        load_file(str(out / "model.safetensors")),
    )
    key = "transformer.blocks.0.attention.in_proj_weight"
    assert not torch.equal(before[key], after[key])
    assert (after[key] - before[key]).abs().max() < 0.1  # continued from the checkpoint, not re-initialised


def test_learning_rate_finder_in_pretrain_and_adapt(pretrained_dir, corpus, tmp_path):
    out = tmp_path / "pt"
    argv = [
        "--dataset", str(corpus.root), "--tokenizer", str(corpus.tokenizer), "--output-dir", str(out),
        "--cache-dir", str(tmp_path / "cache"), "--embed-dim", "32", "--hidden-dim", "64", "--num-heads", "2",
        "--num-layers", "1", "--num-max-positions", "32", "--batch-size", "8", "--max-steps", "5",
        "--eval-every", "5", "--lr-find", "--sample-prompts", "--no-progress", "--threads", "1",
    ]  # fmt: skip
    assert pretrain_main(argv) == 0
    assert (out / "plots" / "lr_finder.png").stat().st_size > 0
    found = json.loads((out / "training_args.json").read_text())["lr"]
    assert 1e-7 < found < 1.0 and found != 1e-3

    run = tmp_path / "adapt"
    argv = ["--pretrained", str(pretrained_dir), "--lr-find", "--train-file", "train_1000.label", "--max-steps", "30",
            "--output-dir", str(run), "--threads", "1", "--no-progress"]  # fmt: skip
    assert adapt_main(argv) == 0
    events = [e for e in MetricsLog.read(run / "metrics.jsonl") if e["event"] == "lr_find"]
    assert len(events) == 1 and 1e-7 < events[0]["suggestion"] < 1.0
    assert (run / "plots" / "lr_finder_seed_0.png").stat().st_size > 0


@pytest.mark.parametrize("task, expected", [("trec-6", 0.886), ("trec-50", 0.818)])
def test_untuned_tfidf_baseline_reports_the_same_metrics(shared_data, tmp_path, task, expected):
    pytest.importorskip("sklearn")
    argv = ["--baseline", "tfidf", "--no-tune", "--task", task, "--output-dir", str(tmp_path / "b")]
    assert adapt_main(argv) == 0
    baseline = json.loads((tmp_path / "b" / "results.json").read_text())["baseline"]
    assert baseline["name"] == "tfidf-1-2gram-linearsvc" and "valid_accuracy" not in baseline
    assert baseline["config"] == {**FIXED, "ngram_range": [1, 2]}
    test = baseline["test"]
    assert test["accuracy"] == pytest.approx(expected, abs=0.005)  # measured on the official split
    assert sum(map(sum, test["confusion"])) == 500 and 0 < test["macro_f1"] <= 1


def test_no_tune_without_a_baseline_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        adapt_main(["--pretrained", "none", "--no-tune", "--output-dir", str(tmp_path / "x")])
    assert exit_info.value.code == 2 and "--no-tune" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


class ReadAfter(list):
    """A list that records every read made before `ready()` is true."""

    def __init__(self, items: list, ready, early_reads: list) -> None:
        super().__init__(items)
        self.ready, self.early_reads = ready, early_reads

    def _check(self, how: str) -> None:
        if not self.ready():
            self.early_reads.append(how)

    def __iter__(self):
        self._check("iter")
        return super().__iter__()

    def __getitem__(self, index):
        self._check("getitem")
        return super().__getitem__(index)

    def __len__(self) -> int:
        self._check("len")
        return super().__len__()


def test_tfidf_baseline_is_chosen_on_validation_without_reading_the_test_set(
    shared_data, tmp_path, monkeypatch, capsys
):
    pytest.importorskip("sklearn")
    train, test = load_trec(shared_data, train_file="train_1000.label")
    selections, early_reads = [], []

    def spy_select(fit, valid):  # the real selection, counted
        chosen = select_config(fit, valid)
        selections.append(len(fit) + len(valid))
        return chosen

    ready = lambda: bool(selections)  # noqa: E731
    guarded = LabeledTexts(
        ReadAfter(test.texts, ready, early_reads),
        ReadAfter(test.labels, ready, early_reads),
        test.label_names,
    )
    monkeypatch.setattr(adapt.baseline, "select_config", spy_select)
    monkeypatch.setattr(
        adapt.run, "load_task", lambda args: Task(train, guarded, "train_1000 / guarded test")
    )
    assert adapt_main(["--baseline", "tfidf", "--output-dir", str(tmp_path / "b")]) == 0
    assert selections == [len(train)] and early_reads == []  # selected on train_1000 alone, test unread

    baseline = json.loads((tmp_path / "b" / "results.json").read_text())["baseline"]
    config = baseline["config"]
    assert all(config[key] in values for key, values in GRID.items() if key != "ngram_range")
    assert tuple(config["ngram_range"]) in GRID["ngram_range"]
    assert baseline["name"] == f"tfidf-{config['ngram_range'][0]}-{config['ngram_range'][1]}gram-linearsvc"
    assert describe(config) in capsys.readouterr().out
    fit, valid = stratified_split(train, fraction=0.1, seed=0)  # the split adapt validates on
    fixed = tfidf_classifier(FIXED).fit(fit.texts, fit.labels)
    assert baseline["valid_accuracy"] >= accuracy(fixed, valid)  # FIXED is in the grid, so never better
    refit = tfidf_classifier(config).fit(train.texts, train.labels)  # on the full training set
    assert baseline["test"]["accuracy"] == pytest.approx(accuracy(refit, test))
    assert sum(map(sum, baseline["test"]["confusion"])) == len(test)


def accuracy(model, data: LabeledTexts) -> float:
    return sum(int(p) == y for p, y in zip(model.predict(data.texts), data.labels)) / len(data)
