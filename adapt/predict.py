"""`python -m minitransformer predict --model DIR "question" ...`: label and class probabilities from a classifier.

DIR is a `seed_<n>` model directory written by `python -m adapt`, or the run directory itself (then the
seed with the best validation accuracy is used). Texts come from the arguments, or one per line on stdin.
The inference itself is `minitransformer.classifier.Classifier`, usable from Python.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from minitransformer.classifier import Classifier
from minitransformer.runs.errors import run_cli
from minitransformer.tokenization import check_text


def stdin_lines(stream: BinaryIO) -> Iterator[str]:
    """The non-blank lines of `stream`, stripped; a ValueError naming the first line that is not UTF-8 text."""
    for number, raw in enumerate(stream, start=1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError as e:
            raise ValueError(
                f"stdin line {number} is not UTF-8 text (byte {raw[e.start]:#04x} at position {e.start + 1}): "
                "save the input as UTF-8"
            ) from None
        if line:
            yield line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m minitransformer predict",
        description="Classify texts with a model fine-tuned by `python -m adapt`.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--model", type=Path, required=True, help="seed_<n> directory or the adapt run directory"
    )
    parser.add_argument("--top", type=int, default=3, help="how many labels to show per text")
    parser.add_argument("--json", action="store_true", help="print one JSON object per text")
    parser.add_argument(
        "--batch-size", type=int, default=64, help="texts classified at a time (memory grows with it)"
    )
    parser.add_argument("texts", nargs="*", help="texts to classify (default: one per line on stdin)")
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error(f"--top {args.top}: expected a value >= 1 (how many labels to show)")
    if args.batch_size < 1:
        parser.error(f"--batch-size {args.batch_size}: expected a value >= 1")

    def run() -> None:
        for number, text in enumerate(args.texts, start=1):  # all of them, before any output
            if not check_text(text, f"argument {number}").strip():
                raise ValueError(f"argument {number} is empty: give a text to classify, or drop it")
        classifier = Classifier(args.model)
        # stdin is read as it comes and answered a batch at a time: memory stays bounded, output streams
        texts = iter(args.texts) if args.texts else stdin_lines(sys.stdin.buffer)
        pending: deque[str] = deque()  # the texts of the batch being classified, in order
        # a line that is not text ends the input; the texts before it are answered, then the error is raised
        bad_line: list[ValueError] = []

        def remembered(source):
            try:
                for text in source:
                    pending.append(text)
                    yield text
            except ValueError as e:
                bad_line.append(e)

        count = 0
        for probs in classifier.predict_stream(remembered(texts), args.batch_size):
            text = pending.popleft()
            top = dict(list(probs.items())[: args.top])
            if args.json:
                print(json.dumps({"text": text, "label": next(iter(probs)), "probabilities": probs}))
            else:
                shown = "  ".join(f"{label} {p:.3f}" for label, p in top.items())
                print(f"{next(iter(probs))}\t{text}\t({shown})")
            count += 1
            if not pending:  # a batch is done: let a pipe see it
                sys.stdout.flush()
        if bad_line:
            raise bad_line[0]
        if not count:
            raise ValueError("no text to classify: pass texts as arguments or on stdin")

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
