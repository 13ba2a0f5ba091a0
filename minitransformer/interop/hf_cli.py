"""`python -m minitransformer.interop.hf compare PATH` and `... convert PATH OUT`: the command line of `hf.py`.

compare prints the per-layer maximum difference between our import of a GPT-2/BERT checkpoint and
`transformers` (which it needs); convert writes the checkpoint in our model-directory format.
"""

from __future__ import annotations

import argparse
import sys

from ..runs.errors import USER_ERRORS, mask_urls
from .hf import clf_position, compare_with_transformers, convert, format_table, sample_batch


def main(argv: list[str] | None = None) -> int:
    """`python -m minitransformer.interop.hf compare PATH` and `... convert PATH OUT`."""
    parser = argparse.ArgumentParser(
        prog="python -m minitransformer.interop.hf", description="Hugging Face interop for minitransformer."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser("compare", help="per-layer max difference with transformers (needs it)")
    compare.add_argument("path", help="a local GPT-2 or BERT checkpoint directory")
    compare.add_argument("--text", action="append", help="a sentence to run (repeatable); default: samples")
    compare.add_argument("--tol", type=float, default=1e-4, help="exit 1 if any difference exceeds this")
    conv = commands.add_parser("convert", help="write a HF checkpoint in minitransformer's format")
    conv.add_argument("path", help="a local GPT-2 or BERT checkpoint directory")
    conv.add_argument("out_dir", help="the output model directory")
    conv.add_argument("--task", choices=("lm", "classification"), default="lm")
    conv.add_argument("--num-classes", type=int, help="classes of a new classifier (task=classification)")
    conv.add_argument("--overwrite", action="store_true", help="replace a run or model already in OUT")
    args = parser.parse_args(argv)
    try:
        if args.command == "convert":
            out = convert(args.path, args.out_dir, args.task, args.overwrite, num_classes=args.num_classes)
            print(f"wrote {out} (classification token: {clf_position(out)})")
            return 0
        input_ids, attention_mask = sample_batch(args.path, args.text)
        rows = compare_with_transformers(args.path, input_ids, attention_mask)
    except ImportError as e:
        print(f"error: {e}; compare needs transformers: pip install 'minitransformer[hf]'", file=sys.stderr)
        return 2
    except USER_ERRORS as e:
        print(f"error: {mask_urls(str(e))}", file=sys.stderr)
        return 2
    print(format_table(rows))
    worst = max(value for _, value in rows)
    print(
        f"max difference {worst:.3e} on {int(attention_mask.sum())} real tokens: "
        f"{'OK' if worst <= args.tol else 'MISMATCH'} (tolerance {args.tol:g})"
    )
    return 0 if worst <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
