"""ULMFiT-style capabilities: continued pretraining, the learning-rate finder, the TF-IDF baseline."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from adapt.run import main as adapt_main
from minitransformer.engine import MetricsLog
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
    key = "transformer.attentions.0.in_proj_weight"
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
def test_tfidf_baseline_reports_the_same_metrics(shared_data, tmp_path, task, expected):
    pytest.importorskip("sklearn")
    assert adapt_main(["--baseline", "tfidf", "--task", task, "--output-dir", str(tmp_path / "b")]) == 0
    results = json.loads((tmp_path / "b" / "results.json").read_text())
    test = results["baseline"]["test"]
    assert test["accuracy"] == pytest.approx(expected, abs=0.005)  # measured on the official split
    assert sum(map(sum, test["confusion"])) == 500 and 0 < test["macro_f1"] <= 1
