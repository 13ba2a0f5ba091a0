"""A fine-tuned classifier as one object: `Classifier(directory).predict(texts)`.

A classifier directory is a model directory (config.json, model.safetensors, tokenizer.json) plus
`classifier.json`: the label names, where the classification token goes and the maximum length, all
that inference needs besides the weights. `python -m adapt` writes it with `save_classifier`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .checkpoint import check_tokenizer_matches
from .data.classification import collate_classification, encode_for_classification
from .model import TransformerWithClfHead
from .runs.io import write_json_atomic
from .tokenization import Tokenizer

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
        runs = json.loads(results.read_text(encoding="utf-8"))["runs"]
        best = max(runs, key=lambda r: r["valid_accuracy"])
        return path / f"seed_{best['seed']}"
    raise FileNotFoundError(
        f"--model {path}: neither a classifier directory ({CLASSIFIER_META}) nor an adapt run"
    )


class Classifier:
    """A fine-tuned model with its tokenizer and label names, ready for `predict(texts)`."""

    def __init__(self, directory: str | Path):
        directory = resolve_model_dir(Path(directory))
        meta = json.loads((directory / CLASSIFIER_META).read_text(encoding="utf-8"))
        self.labels: list[str] = meta["label_names"]
        self.position, self.max_len = meta["clf_position"], meta["max_len"]
        self.tokenizer = Tokenizer.from_pretrained(directory)
        check_tokenizer_matches(directory, self.tokenizer)
        self.model = TransformerWithClfHead.from_pretrained(directory).eval()

    @torch.no_grad()
    def predict(self, texts: list[str]) -> list[dict[str, float]]:
        """One {label: probability} dict per text, most likely label first."""
        ids = encode_for_classification(texts, self.tokenizer, self.max_len, self.position)
        batch = collate_classification(
            [{"input_ids": i, "label": 0} for i in ids], self.tokenizer.pad_id, self.tokenizer.cls_id
        )
        logits = self.model(batch["input_ids"], batch["clf_tokens_mask"], padding_mask=batch["padding_mask"])
        probs = logits.softmax(dim=-1)  # (B, C)
        return [dict(sorted(zip(self.labels, row.tolist()), key=lambda kv: -kv[1])) for row in probs]
