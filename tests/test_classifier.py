"""`minitransformer.classifier` and `python -m minitransformer predict`: a saved classifier answers any number of texts."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import pytest
from conftest import REPO

from adapt.predict import main as predict_main
from minitransformer import FineTuningConfig, TransformerConfig, TransformerWithClfHead
from minitransformer.classifier import Classifier, save_classifier
from minitransformer.tokenization import Tokenizer

LABELS = ["DESC", "HUM", "LOC"]


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory) -> Path:
    tokenizer = Tokenizer.from_file(REPO / "tests" / "data" / "tokenizer.json")
    config = TransformerConfig(
        embed_dim=16, hidden_dim=32, num_heads=2, num_layers=1, num_embeddings=tokenizer.vocab_size,
        num_max_positions=32,
    )  # fmt: skip
    model = TransformerWithClfHead(dataclasses.replace(config), FineTuningConfig(num_classes=len(LABELS)))
    folder = tmp_path_factory.mktemp("clf") / "seed_0"
    save_classifier(folder, model.eval(), tokenizer, LABELS, "end", 32)
    return folder


def test_predict_answers_in_batches_the_same_as_one_by_one(classifier_dir):
    """Issue 27 item 15: every input went into one batch (20,000 lines tried to allocate 7.8 GB)."""
    classifier = Classifier(classifier_dir)
    texts = [f"Who wrote book number {i} ?" for i in range(10)]
    together = classifier.predict(texts, batch_size=3)
    alone = [classifier.predict([t])[0] for t in texts]
    assert [max(p, key=p.get) for p in together] == [max(p, key=p.get) for p in alone]
    for a, b in zip(together, alone):
        assert all(abs(a[k] - b[k]) < 1e-5 for k in LABELS)


def test_predict_streams_stdin_a_batch_at_a_time(classifier_dir, monkeypatch, capsys):
    lines = [f"Where is city {i} ?" for i in range(130)] + ["What does [CLS] mean ?"]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    assert predict_main(["--model", str(classifier_dir), "--json", "--batch-size", "16"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["text"] for o in out] == lines and all(o["label"] in LABELS for o in out)


def test_a_literal_classification_token_in_a_text_is_escaped(classifier_dir, capsys):
    """Issue 27 item 26: "[CLS]" in a text failed the whole batch ("batch row 0 has 2 classification tokens")."""
    assert predict_main(["--model", str(classifier_dir), "the [CLS] token", "a plain text"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


@pytest.mark.parametrize(
    "results, message",
    [
        ({"task": "trec-6", "baseline": {}}, "lists no fine-tuned seed (a --baseline tfidf-only run?)"),
        ({"runs": []}, "lists no fine-tuned seed"),
        ([1], "is damaged"),
    ],
)
def test_a_run_without_a_fine_tuned_seed_is_one_line(tmp_path, capsys, results, message):
    """Issue 27 items 18, 27: a tfidf-only run gave KeyError: 'runs'; empty runs "max() arg is an empty sequence"."""
    (tmp_path / "results.json").write_text(json.dumps(results))
    assert predict_main(["--model", str(tmp_path), "text"]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
