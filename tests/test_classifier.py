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
        embed_dim=16, hidden_dim=32, num_heads=2, num_layers=1, vocab_size=tokenizer.vocab_size,
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


def stdin(monkeypatch, data: bytes) -> None:
    """Make `data` the standard input, as bytes under a text layer like the real one."""
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def test_predict_streams_stdin_a_batch_at_a_time(classifier_dir, monkeypatch, capsys):
    lines = [f"Where is city {i} ?" for i in range(130)] + ["What does [CLS] mean ?"]
    stdin(monkeypatch, ("\n".join(lines) + "\n").encode())
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


# ----------------------------------------------------------------------------------------------
# Issue 34: input that is not text, a huge line, a damaged classifier.json
# ----------------------------------------------------------------------------------------------


def answered(capsys) -> tuple[list[str], str]:
    out = capsys.readouterr()
    assert "Traceback" not in out.err and out.err.count("\n") <= 1, out.err
    return out.out.splitlines(), out.err


@pytest.mark.parametrize("bad", [b"\xff\xfe", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xd3\xa0"])
def test_a_stdin_line_that_is_not_utf8_is_named_after_the_lines_before_it(
    classifier_dir, monkeypatch, capsys, bad
):
    """Case 11: a 29-line traceback, and the valid line before it in the batch was never printed."""
    stdin(monkeypatch, b"Where is Paris ?\n" + bad + b"\nWho is he ?\n")
    assert predict_main(["--model", str(classifier_dir)]) == 1
    lines, err = answered(capsys)
    assert len(lines) == 1 and lines[0].split("\t")[1] == "Where is Paris ?"
    assert err.startswith("error: stdin line 2 is not UTF-8 text") and "save the input as UTF-8" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["fine", "abc\udcff"], "argument 2 is not valid UTF-8"),  # how Python reads the argument $'abc\xff'
        (["fine", ""], "argument 2 is empty"),  # case 18: classified, while an empty stdin line is skipped
        (["fine", "   "], "argument 2 is empty"),
    ],
)
def test_an_argument_that_is_not_a_text_is_refused_before_any_answer(classifier_dir, capsys, argv, message):
    assert predict_main(["--model", str(classifier_dir), *argv]) == 1
    lines, err = answered(capsys)
    assert lines == [] and message in err


@pytest.mark.parametrize("text", [None, b"bytes", 3, "lone \udc80 surrogate"])
def test_the_python_api_names_a_text_that_is_not_one(classifier_dir, text):
    """Case 12 (the API): bytes, None, a number or a lone surrogate failed deep in the tokenizer."""
    with pytest.raises(ValueError, match="text 2 is"):
        Classifier(classifier_dir).predict(["a question ?", text])


def test_a_huge_line_is_cut_to_what_the_model_reads_before_tokenizing(classifier_dir, monkeypatch):
    """Case 10: a line of megabytes was tokenized whole, then all but the 32 tokens the model reads dropped."""
    classifier = Classifier(classifier_dir)
    seen: list[str] = []  # every text given to the tokenizer

    def recording(original):
        def call(texts):
            seen.extend([texts] if isinstance(texts, str) else texts)
            return original(texts)

        return call

    for name in ("encode", "encode_batch"):
        monkeypatch.setattr(classifier.tokenizer, name, recording(getattr(classifier.tokenizer, name)))
    huge = "who wrote the book ? " * 250_000  # 5 MB
    short = "who wrote the book ? " * 40  # already more than the 32 tokens the model reads
    assert classifier.predict([huge]) == classifier.predict([short])
    assert max(map(len, seen)) < 10_000


def test_the_readable_prefix_keeps_the_texts_own_first_tokens():
    from minitransformer.data.classification import readable_prefix

    tokenizer = Tokenizer.from_file(REPO / "tests" / "data" / "tokenizer.json")
    texts = ["the cat sat " * 500, "x" + " " * 5000 + "the cat " * 100, "word" * 3000 + " the end", "short"]
    for text in texts:
        prefix = readable_prefix(text, tokenizer, 32)
        assert text.startswith(prefix) and tokenizer.encode(prefix)[:32] == tokenizer.encode(text)[:32]


@pytest.mark.parametrize(
    "content, message",
    [(b"[]", "is damaged (a JSON list, not an object)"), (b'{"label_names": [', "is not valid JSON"),
     (b"\xff{}", "is not valid JSON"), (b'{"label_names": ["A"]}', "lacks clf_position, max_len")],
)  # fmt: skip
def test_a_damaged_classifier_json_is_one_line_naming_it(classifier_dir, tmp_path, capsys, content, message):
    """Cases 14, 15: `[]` was a traceback; a corrupt file's message did not name it."""
    import shutil

    damaged = shutil.copytree(classifier_dir, tmp_path / "seed_0")
    (damaged / "classifier.json").write_bytes(content)
    assert predict_main(["--model", str(damaged), "text"]) == 1
    _, err = answered(capsys)
    assert str(damaged / "classifier.json") in err and message in err
