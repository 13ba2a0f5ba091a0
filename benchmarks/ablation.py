"""Issue 23, item 1: what separates our `tiny` causal model from `GPT2LMHeadModel`, one change at a time.

The end-to-end comparison (`benchmarks/end_to_end.py`) trains both at the same size, data, steps, batch,
AdamW and schedule; GPT-2 ended at a lower test perplexity. Here `python -m pretrain` is run once per
variant, each adding one of GPT-2's choices to ours, beside `Trainer` + `GPT2LMHeadModel` on the same
seed(s); every run is a fresh subprocess on the same corpus and tokenizer.

    python -m benchmarks.ablation --seeds 0 1 --variants baseline gpt2-init
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from benchmarks import machine_line
from benchmarks.end_to_end import ours, theirs, write_corpus

# Each variant: the `python -m pretrain` options it adds to the end-to-end settings (our tiny preset).
VARIANTS: dict[str, tuple[str, ...]] = {
    "baseline": ("--init-scheme=hands_on", "--layer-norm-eps=1e-12"),  # the model before issue 23
    "gpt2-init": ("--init-scheme=gpt2", "--layer-norm-eps=1e-12"),  # residual projections / sqrt(2L)
    "decay-embeddings": ("--init-scheme=hands_on", "--layer-norm-eps=1e-12", "--decay-embeddings"),
    "ln-eps-1e-5": ("--init-scheme=hands_on", "--layer-norm-eps=1e-5"),
    "gelu": ("--init-scheme=hands_on", "--layer-norm-eps=1e-12", "--activation=gelu"),
    "all-gpt2": ("--init-scheme=gpt2", "--layer-norm-eps=1e-5", "--decay-embeddings"),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ablation", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--no-gpt2", action="store_true", help="leave out the Trainer + GPT-2 runs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--quick", action="store_true", help="toy shape and corpus (crash check)")
    args = parser.parse_args(argv)

    from minitransformer.data.wikitext import read_lines
    from minitransformer.tokenization import Tokenizer

    print(f"[ablation] {args.steps} steps, seeds {args.seeds} | {machine_line()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        work = Path(tmp_name)
        corpus = work / "corpus"
        write_corpus(corpus, args.data_dir, 300 if args.quick else None, 40 if args.quick else 400)
        tokenizer = Tokenizer.train(read_lines(corpus / "wiki.valid.tokens"), vocab_size=8000)
        tokenizer.save_pretrained(work / "tokenizer")
        common = (corpus, work / "tokenizer", work, args.steps, args.quick, args.threads)
        for seed in args.seeds:
            if not args.no_gpt2:
                r = theirs("clm", *common, seed=seed)
                rows.append(("GPT2LMHeadModel + Trainer", seed, r))
                print(
                    f"  GPT-2 seed {seed}: ppl {math.exp(r['loss']):.1f} ({r['seconds']:.0f} s)", flush=True
                )
            for name in args.variants:
                extra = (*VARIANTS[name], "--amp=none", f"--seed={seed}")  # fp32, as the Trainer runs
                r = ours("clm", *common, extra=extra, name=f"-{name}-{seed}")
                rows.append((name, seed, r))
                print(
                    f"  {name} seed {seed}: ppl {math.exp(r['loss']):.1f} ({r['seconds']:.0f} s)", flush=True
                )
    print(f"\n{'variant':<28} {'seed':>4} {'test ppl':>9} {'wall s':>7}")
    for name, seed, r in rows:
        print(f"{name:<28} {seed:>4} {math.exp(r['loss']):9.1f} {r['seconds']:7.1f}")


if __name__ == "__main__":
    main()
