"""`python -m minitransformer explore MODEL_DIR --text TEXT [--output FILE.html]`: write the explorer page."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..runs.errors import run_cli
from . import Explorer, explore, load_model_dir

LARGE_MB = 5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m minitransformer explore",
        description="Write a self-contained HTML page that shows what a model does with a text: attention "
        "per layer and head, predictions and the logit lens, the residual stream, head summaries.",
    )
    parser.add_argument(
        "model_dir", help="a model directory (pretrain, adapt, save_pretrained) or a HF GPT-2/BERT one"
    )
    parser.add_argument("--text", action="append", required=True,
                        help="the text to look at; repeat for several (padded into one batch)")  # fmt: skip
    parser.add_argument("--output", type=Path, help="the page to write (default: MODEL_DIR/explore.html)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --output file that is not an explorer page")  # fmt: skip
    parser.add_argument("--top-k", type=int, default=5, help="predictions shown per position (default: 5)")
    parser.add_argument("--truncate", action="store_true", help="keep the first positions of a too-long text")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    if args.top_k < 1:
        raise ValueError(f"--top-k {args.top_k} must be at least 1")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    output = args.output or Path(args.model_dir) / "explore.html"
    Explorer.check_path(output, args.overwrite)  # before the model is loaded: a wrong path costs nothing
    model, tokenizer, bert = load_model_dir(args.model_dir)
    page = explore(model, tokenizer, args.text, top_k=args.top_k, truncate=args.truncate,
                   add_special_tokens=bert, name=Path(args.model_dir).resolve().name)  # fmt: skip
    path = page.save(output, args.overwrite)
    size = path.stat().st_size / 1e6
    print(f"wrote {path} ({size:.2f} MB): open it in a browser")
    if size > LARGE_MB:  # the attention grows as layers × heads × tokens²
        print(
            f"note: the page is over {LARGE_MB} MB; a shorter text makes it smaller and faster",
            file=sys.stderr,
        )
    return path


if __name__ == "__main__":
    sys.exit(run_cli(main))
