"""`python -m adapt.predict --model DIR "question" ...`: label and class probabilities from a classifier.

DIR is a `seed_<n>` model directory written by `python -m adapt`, or the run directory itself (then the
seed with the best validation accuracy is used). Texts come from the arguments, or one per line on stdin.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from minitransformer import TransformerWithClfHead
from minitransformer.data.classification import collate_classification, encode_for_classification
from minitransformer.errors import run_cli
from minitransformer.tokenization import Tokenizer

from .run import CLASSIFIER_META


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m adapt.predict",
        description="Classify texts with a model fine-tuned by `python -m adapt`.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--model", type=Path, required=True, help="seed_<n> directory or the adapt run directory"
    )
    parser.add_argument("--top", type=int, default=3, help="how many labels to show per text")
    parser.add_argument("--json", action="store_true", help="print one JSON object per text")
    parser.add_argument("texts", nargs="*", help="texts to classify (default: one per line on stdin)")
    args = parser.parse_args(argv)

    def run() -> None:
        texts = args.texts or [line.strip() for line in sys.stdin if line.strip()]
        if not texts:
            raise ValueError("no text to classify: pass texts as arguments or on stdin")
        classifier = Classifier(args.model)
        for text, probs in zip(texts, classifier.predict(texts)):
            top = dict(list(probs.items())[: args.top])
            if args.json:
                print(json.dumps({"text": text, "label": next(iter(probs)), "probabilities": probs}))
            else:
                shown = "  ".join(f"{label} {p:.3f}" for label, p in top.items())
                print(f"{next(iter(probs))}\t{text}\t({shown})")

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
