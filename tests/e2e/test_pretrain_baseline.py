"""`python -m pretrain --baseline ngram` end to end on a slice of the real WikiText-2."""

from __future__ import annotations

import json
import math

import pytest
from test_ngram import ReferenceKneserNey

from minitransformer.data.wikitext import binarize
from minitransformer.runs.metrics_log import MetricsLog
from minitransformer.runs.run_state import read_state, write_state
from minitransformer.tokenization import Tokenizer
from pretrain.run import main


def test_ngram_baseline_reports_the_reference_word_perplexity_on_the_run_splits(corpus, tmp_path, capsys):
    out, cache = tmp_path / "ngram", tmp_path / "cache"
    options = ["--dataset", str(corpus.root), "--tokenizer", str(corpus.tokenizer), "--cache-dir", str(cache)]
    assert main(["--baseline", "ngram", *options, "--output-dir", str(out), "--threads", "1"]) == 0
    events = MetricsLog.read(out / "metrics.jsonl")
    held_out = [e for e in events if e["event"] == "held_out"]
    final, summary = (next(e for e in events if e["event"] == kind) for kind in ("final", "summary"))
    assert [e["order"] for e in held_out] == [1, 2, 3, 4, 5]
    order = min(held_out, key=lambda e: e["loss"])["order"]
    assert summary["model"] == f"interpolated Kneser-Ney {order}-gram" and final["split"] == "test"
    args = json.loads((out / "training_args.json").read_text())
    assert args["baseline"] == "ngram" and (args["train_split"], args["valid_split"]) == ("valid", "test")
    assert not (out / "model.safetensors").exists() and (out / "tokenizer.json").is_file()

    # the same tokens and words, scored by the dict-based reference of tests/test_ngram.py
    tokenizer = Tokenizer.from_pretrained(out)
    train, test = (binarize(corpus.root / f"wiki.{s}.tokens", tokenizer, cache) for s in ("valid", "test"))
    reference = ReferenceKneserNey(train.ids.tolist(), tokenizer.vocab_size, order)
    log_probs = reference.log_probs(test.ids.tolist())
    expected = math.exp(-sum(log_probs) / test.num_words)
    assert summary["word_ppl"] == pytest.approx(expected, rel=1e-9) == final["word_ppl"]
    assert f"word perplexity {expected:.1f}" in capsys.readouterr().out

    assert main(["--resume", str(out), "--threads", "1"]) == 0  # complete: nothing to do
    assert "holds a complete run" in capsys.readouterr().out


def test_a_killed_ngram_baseline_resumes_from_the_start_without_doubled_events(corpus, tmp_path):
    out = tmp_path / "ngram"
    options = ["--dataset", str(corpus.root), "--tokenizer", str(corpus.tokenizer), "--output-dir", str(out)]
    assert (
        main(["--baseline", "ngram", *options, "--cache-dir", str(tmp_path / "cache"), "--threads", "1"]) == 0
    )
    timeless = lambda: [{k: v for k, v in e.items() if k != "wall_time_s"} for e in MetricsLog.read(log)]  # noqa: E731
    log = out / "metrics.jsonl"
    complete = timeless()
    write_state(out, "running", step=0)  # as a run killed before the end leaves it
    assert main(["--resume", str(out), "--threads", "1"]) == 0
    assert timeless() == complete  # the same events once, not the killed run's and the new run's
    assert read_state(out)["status"] == "complete"


def test_ngram_baseline_refuses_a_masked_lm_objective_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--baseline", "ngram", "--objective", "mlm", "--output-dir", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith("drop --objective mlm")
    assert not (tmp_path / "run").exists()
