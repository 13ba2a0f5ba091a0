"""Validation perplexity against wall-clock minutes, one curve per `python -m pretrain` run folder.

    python -m benchmarks.recipe_plot OUT.png LABEL=RUN_DIR [LABEL=RUN_DIR ...]

Reads each run's metrics.jsonl (its `valid`/`final` events carry `word_ppl` and the run's `wall_time_s`
so far); used for docs/tiny_recipe.md, where the old and the new `tiny` recipe are compared.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from minitransformer.runs.metrics_log import MetricsLog  # noqa: E402


def curve(run_dir: Path) -> tuple[list[float], list[float]]:
    """(minutes, word-level perplexity) at each evaluation of the run, the final one included."""
    events = [e for e in MetricsLog.read(run_dir / "metrics.jsonl") if e["event"] in ("valid", "final")]
    events = [e for e in events if "wall_time_s" in e and e["step"] > 0]
    return [e["wall_time_s"] / 60 for e in events], [e["word_ppl"] for e in events]


def main(argv: list[str]) -> None:
    if len(argv) < 2 or not all("=" in a for a in argv[1:]):
        sys.exit(__doc__.split("\n\n")[1].strip())
    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    for item in argv[1:]:
        label, folder = item.split("=", 1)
        minutes, ppl = curve(Path(folder))
        axes.plot(minutes, ppl, marker="o", label=f"{label} (final {ppl[-1]:,.0f})")
    axes.set_yscale("log")
    axes.set_xlabel("wall-clock minutes since the start of the run (2 threads)")
    axes.set_ylabel("word-level perplexity (WikiText-2 test)")
    axes.set_xlim(left=0)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(argv[0], dpi=120)
    print(f"wrote {argv[0]}")


if __name__ == "__main__":
    main(sys.argv[1:])
