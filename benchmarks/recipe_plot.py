"""Validation perplexity against wall-clock minutes, one curve per `python -m pretrain` run folder.

    python -m benchmarks.recipe_plot OUT.png LABEL=RUN_DIR [LABEL=RUN_DIR ...] [--line LABEL=PPL ...]
        [--threads N] [--evaluated-on SPLIT]

Reads each run's metrics.jsonl (its `valid`/`final` events carry `word_ppl` and the run's `wall_time_s`
so far); `--line` draws a horizontal line at a perplexity reached without training time worth plotting
(the n-gram baseline's). Used for docs/tiny_recipe.md, where the old and the new `tiny` recipe are compared.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from minitransformer.runs.metrics_log import MetricsLog  # noqa: E402


def curve(run_dir: Path) -> tuple[list[float], list[float]]:
    """(minutes, word-level perplexity) at each evaluation of the run, the final one included."""
    events = [e for e in MetricsLog.read(run_dir / "metrics.jsonl") if e["event"] in ("valid", "final")]
    events = [e for e in events if "wall_time_s" in e and e["step"] > 0]
    return [e["wall_time_s"] / 60 for e in events], [e["word_ppl"] for e in events]


def labelled(kind: type):
    """An argparse type for `LABEL=VALUE`: (label, kind(value))."""

    def parse(text: str) -> tuple[str, object]:
        label, sep, value = text.partition("=")
        if not sep or not label:
            raise argparse.ArgumentTypeError(f"{text!r}: expected LABEL=VALUE")
        try:
            return label, kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: {value!r} is not a {kind.__name__}") from None

    return parse


def wallclock_figure(
    runs: list[tuple[str, Path]], lines: list[tuple[str, float]], threads: int, evaluated_on: str
) -> Figure:
    """One curve per (label, run folder), one dashed horizontal line per (label, perplexity)."""
    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    for label, folder in runs:
        minutes, ppl = curve(folder)
        axes.plot(minutes, ppl, marker="o", label=f"{label} (final {ppl[-1]:,.0f})")
    for label, ppl in lines:
        axes.axhline(ppl, linestyle="--", color="grey", label=f"{label} ({ppl:,.0f})")
    axes.set_yscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:,.0f}")  # 1,200 rather than 1.2 × 10³
    axes.yaxis.set_major_formatter(plain)
    axes.yaxis.set_minor_formatter(plain)
    axes.set_xlabel(f"wall-clock minutes since the start of the run ({threads} thread{'s' * (threads > 1)})")
    axes.set_ylabel(f"word-level perplexity ({evaluated_on})")
    axes.set_xlim(left=0)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    return figure


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.recipe_plot", description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="the PNG to write")
    p.add_argument("runs", nargs="+", type=labelled(Path), metavar="LABEL=RUN_DIR", help="a curve per run")
    p.add_argument("--line", action="append", default=[], type=labelled(float), metavar="LABEL=PPL")
    p.add_argument("--threads", type=int, default=2, help="the threads the runs used (for the x label)")
    p.add_argument("--evaluated-on", default="WikiText-2 test", help="the split evaluated (for the y label)")
    args = p.parse_args(argv)
    wallclock_figure(args.runs, args.line, args.threads, args.evaluated_on).savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
