"""A fine-tuned classifier as one object: `Classifier(directory).predict(texts)`.

A classifier directory is a model directory (config.json, model.safetensors, tokenizer.json) plus
`classifier.json`: the label names, where the classification token goes and the maximum length, all
that inference needs besides the weights. `python -m adapt` writes it with `save_classifier`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

from .checkpoint import check_tokenizer_matches
from .data.classification import collate_classification, encode_for_classification
from .model import TransformerWithClfHead
from .runs.io import read_json_object, write_json_atomic
from .tokenization import Tokenizer, check_text

CLASSIFIER_META = "classifier.json"  # label names, classification-token position, max length


def save_classifier(
    directory: str | Path, model: TransformerWithClfHead, tokenizer: Tokenizer, label_names: list[str],
    clf_position: str, max_len: int,
) -> Path:  # fmt: skip
    """Write a classifier directory that `Classifier` loads."""
    directory = model.cpu().save_pretrained(directory, tokenizer=tokenizer)
    meta = {"label_names": label_names, "clf_position": clf_position, "max_len": max_len}
    write_json_atomic(directory / CLASSIFIER_META, meta)
    return directory


def resolve_model_dir(path: Path) -> Path:
    """A classifier directory, or the best seed's directory inside an `adapt` run directory."""
    if (path / CLASSIFIER_META).is_file():
        return path
    results = path / "results.json"
    if results.is_file():
        try:
            runs = json.loads(results.read_text(encoding="utf-8")).get("runs")
        except (ValueError, AttributeError):
            raise ValueError(f"{results} is damaged (not a JSON object): pass a seed_<n> directory") from None
        seeds = [r for r in runs or [] if isinstance(r, dict) and "seed" in r and "valid_accuracy" in r]
        if not seeds:
            raise FileNotFoundError(
                f"--model {path}: its results.json lists no fine-tuned seed (a --baseline tfidf-only run?): "
                "pass the run directory of a run with --pretrained, or one of its seed_<n> directories"
            )
        best = max(seeds, key=lambda r: r["valid_accuracy"])
        return path / f"seed_{best['seed']}"
    raise FileNotFoundError(
        f"--model {path}: neither a classifier directory ({CLASSIFIER_META}) nor an adapt run"
    )


class Classifier:
    """A fine-tuned model with its tokenizer and label names, ready for `predict(texts)`."""

    def __init__(self, directory: str | Path):
        directory = resolve_model_dir(Path(directory))
        meta_path = directory / CLASSIFIER_META
        fix = "the classifier directory is damaged; run `python -m adapt` again"
        meta = read_json_object(meta_path, fix)
        missing = [key for key in ("label_names", "clf_position", "max_len") if key not in meta]
        if missing:
            raise ValueError(f"{meta_path} lacks {', '.join(missing)}: {fix}")
        self.labels: list[str] = meta["label_names"]
        self.position, self.max_len = meta["clf_position"], meta["max_len"]
        self.tokenizer = Tokenizer.from_pretrained(directory)
        check_tokenizer_matches(directory, self.tokenizer)
        self.model = TransformerWithClfHead.from_pretrained(directory).eval()

    @torch.no_grad()
    def predict(self, texts: list[str], batch_size: int = 64) -> list[dict[str, float]]:
        """One {label: probability} dict per text, most likely label first; `batch_size` texts at a time,
        so memory stays bounded however many texts there are (see `predict_stream` for a stream)."""
        return list(self.predict_stream(texts, batch_size))

    @torch.no_grad()
    def predict_stream(self, texts: Iterable[str], batch_size: int = 64) -> Iterator[dict[str, float]]:
        """`predict` over an iterable (e.g. lines of stdin), yielding each batch's results as it is done."""
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: must be at least 1")
        chunk: list[str] = []
        for number, text in enumerate(texts, start=1):
            chunk.append(check_text(text, f"text {number}"))
            if len(chunk) == batch_size:
                yield from self._predict_batch(chunk)
                chunk = []
        if chunk:
            yield from self._predict_batch(chunk)

    def _predict_batch(self, texts: list[str]) -> list[dict[str, float]]:
        ids = encode_for_classification(texts, self.tokenizer, self.max_len, self.position)
        batch = collate_classification(
            [{"input_ids": i, "label": 0} for i in ids], self.tokenizer.pad_id, self.tokenizer.cls_id
        )
        logits = self.model(batch["input_ids"], batch["clf_tokens_mask"], padding_mask=batch["padding_mask"])
        probs = logits.softmax(dim=-1)  # (B, C)
        return [dict(sorted(zip(self.labels, row.tolist()), key=lambda kv: -kv[1])) for row in probs]
