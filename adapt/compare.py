"""`python -m minitransformer compare`: several `python -m adapt` runs side by side, as a table and a bar chart.

Each run directory's results.json gives the test accuracy of every seed; a run made with
`--baseline tfidf` also gives the baseline, drawn as a reference line across the bars.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from minitransformer.runs.errors import run_cli
from minitransformer.runs.io import read_json_object

from .run import mean_std


def read_results(directory: Path) -> dict:
    """A finished run's results.json, refused in one line when it is missing, damaged or incomplete."""
    path, fix = directory / "results.json", "give the --output-dir of a finished `python -m adapt` run"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {fix}")
    results = read_json_object(path, fix)
    runs = results.get("runs") or []
    seeds_complete = isinstance(runs, list) and all(
        isinstance(r, dict) and "valid_accuracy" in r and "accuracy" in (r.get("test") or {}) for r in runs
    )
    if not seeds_complete or not (runs or "baseline" in results):
        raise ValueError(f"{path} lacks a seed's test or validation accuracy: {fix}")
    return results


def merge_same_labels(rows: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """Runs given the same label are one model whose seeds ran separately: pool their seeds."""
    merged: dict[str, dict] = {}
    for label, results in rows:
        if label not in merged:
            merged[label] = dict(results, runs=list(results.get("runs", [])))
            continue
        into = merged[label]
        into["runs"] += results.get("runs", [])
        walls = [r.get("wall_time_s") for r in (into, results)]
        into["wall_time_s"] = sum(walls) if all(walls) else None
    return list(merged.items())


def summary_cell(values: list[float]) -> str:
    """'89.1 ± 1.0 %' from fractions (a single value: '89.1 %')."""
    if len(values) == 1:
        return f"{100 * values[0]:.1f} %"
    summary = mean_std([100 * v for v in values])
    return f"{summary['mean']:.1f} ± {summary['std']:.1f} %"


def markdown_table(rows: list[tuple[str, dict]]) -> str:
    """| model | test mean ± std | every seed | validation mean ± std | wall time | from each results.json.

    The validation column is the one to choose between models by: the test column is for reporting."""
    lines = [
        "| model | test accuracy (mean ± std) | every seed | validation accuracy (mean ± std) "
        "| fine-tuning wall time |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, results in rows:
        runs = results.get("runs", [])
        if runs:
            tests = [r["test"]["accuracy"] for r in runs]
            cell, seeds = summary_cell(tests), ", ".join(f"{100 * a:.1f}" for a in tests)
            valid = summary_cell([r["valid_accuracy"] for r in runs])
        else:  # a baseline-only run; its validation accuracy exists when it was tuned on validation
            baseline = results["baseline"]
            cell, seeds = summary_cell([baseline["test"]["accuracy"]]), "deterministic"
            valid = summary_cell([baseline["valid_accuracy"]]) if "valid_accuracy" in baseline else "—"
        wall = results.get("wall_time_s")
        lines.append(f"| {label} | {cell} | {seeds} | {valid} | {f'{wall / 60:.1f} min' if wall else '—'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m minitransformer compare",
        description="Compare `python -m adapt` runs: print a markdown table (test accuracy mean ± std over "
        "seeds, every seed, validation accuracy to choose by, wall time) and draw a bar chart with any TF-IDF "
        "baseline as a reference line.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--run", nargs=2, action="append", metavar=("DIR", "LABEL"), required=True,
                   help="a run's --output-dir and the name to show for it; repeat for each run (runs with the same "
                   "name are pooled: seeds run separately)")  # fmt: skip
    p.add_argument("--figure", type=Path, help="write the bar chart to this PNG")
    p.add_argument("--title", default="Test accuracy", help="title of the bar chart")
    args = p.parse_args(argv)

    def compare() -> None:
        from minitransformer.teaching import plots

        rows = merge_same_labels([(label, read_results(Path(directory))) for directory, label in args.run])
        print(markdown_table(rows))
        if args.figure:
            bars = {label: [r["test"]["accuracy"] for r in res["runs"]] for label, res in rows if res["runs"]}
            baselines = [res["baseline"]["test"]["accuracy"] for _, res in rows if "baseline" in res]
            references = {"TF-IDF + linear SVM": baselines[0]} if baselines else None
            plots.plot_accuracy_bars(bars, references, title=args.title, path=args.figure)
            print(f"bar chart: {args.figure}")

    return run_cli(compare)


if __name__ == "__main__":
    import sys

    sys.exit(main())
