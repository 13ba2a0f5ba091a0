"""`python -m minitransformer study`: how much does each fine-tuning stability technique change the spread over seeds?

Few-sample TREC-6 (the official 1000-question subset, tested on the official 500-question test set),
one pretrained checkpoint, the same fine-tuning recipe for every run, and N seeds for the plain
baseline and for each technique at its usual setting. Every run is one call of `adapt.run.adapt` (its
own folder, results.json and plots under `--output-dir/TECHNIQUE/seed_S`); the study prints one line
per run and writes `results.json` (every run, the recipe, the machine, the wall time), `table.md`
(mean, std, min, max and every seed's test accuracy per technique) and `stability_seed_spread.png`
(a box plot), plus a copy of the LLRD run's learning-rate figure as `llrd_lr.png`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from minitransformer.checkpoint import read_config
from minitransformer.runs.errors import run_cli
from minitransformer.runs.io import write_json_atomic

from .cli import parse_args, seed_list
from .run import adapt, mean_std

TECHNIQUES = ("baseline", "bertadam", "reinit", "weighted-pooling", "llrd", "mixout", "prior-wd", "swa")


@dataclass(frozen=True)
class Technique:
    """One row of the study: a name, its setting in words, and the `adapt` options that switch it on."""

    name: str
    setting: str
    options: tuple[str, ...]


def technique_list(text: str) -> list[str]:
    """`--techniques a,b`: names from TECHNIQUES, in the order given."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in TECHNIQUES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"--techniques {text!r}: unknown {unknown or 'empty list'}; choose from {','.join(TECHNIQUES)}"
        )
    return names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m minitransformer study",
        description="Fine-tune one pretrained checkpoint on few-sample TREC-6 with the plain recipe and with "
        "each stability technique, once per seed, and report the spread of test accuracy over seeds "
        "(table.md, results.json, a box plot).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--pretrained", type=Path, required=True, help="a model directory from `python -m pretrain`"
    )
    p.add_argument("--seeds", type=seed_list, default=[0, 1, 2, 3, 4], help="seeds, e.g. 0,1,2,3,4")
    p.add_argument(
        "--techniques", type=technique_list, default=list(TECHNIQUES), help="comma-separated subset, in order"
    )
    p.add_argument("--output-dir", type=Path, default=Path("runs/study"), help="where the study is written")
    p.add_argument("--overwrite", action="store_true", help="replace a finished study in --output-dir")
    p.add_argument("--quick", action="store_true",
                   help="smoke test, not a measurement: one epoch at batch 64 per run, SWA from epoch 1")  # fmt: skip

    g = p.add_argument_group("the fine-tuning recipe shared by every run")
    g.add_argument(
        "--train-file", default="train_1000.label", help="TREC training file (10 %% is validation)"
    )
    g.add_argument("--data-dir", type=Path, help="data folder (else $MINITRANSFORMER_DATA)")
    g.add_argument("--epochs", type=int, default=5, help="5: the tiny model still improves after 3")
    g.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (warm-up, then linear decay)")
    g.add_argument("--batch-size", type=int, default=16)

    g = p.add_argument_group("technique settings")
    g.add_argument("--reinit-layers", type=int, default=2, help="top layers re-initialised")
    g.add_argument("--pooled-layers", type=int, default=4, help="weighted pooling over this many top layers")
    g.add_argument("--llrd", type=float, default=0.9, help="layer-wise lr decay γ")
    g.add_argument("--mixout", type=float, default=0.3, help="Mixout p (0.7 is BERT-large's; see the docs)")
    g.add_argument("--prior-wd", type=float, default=0.01, help="weight decay toward the pretrained weights")
    g.add_argument(
        "--swa-start",
        type=int,
        default=4,
        help="SWA: average the weights at the end of this epoch and each later one",
    )
    g.add_argument("--swa-lr", type=float, default=2.5e-4, help="SWA: constant lr of the averaged epochs")

    g = p.add_argument_group("hardware")
    g.add_argument("--threads", type=int, help="CPU threads per run (default: all available)")
    return p


def techniques(opts: argparse.Namespace, num_layers: int) -> list[Technique]:
    """The selected techniques with their `adapt` options, for a backbone of `num_layers` layers."""
    first = max(1, num_layers - opts.pooled_layers + 1)  # layer 0 is the embedding output
    swa_start = 1 if opts.quick else opts.swa_start
    every = {
        "baseline": Technique("baseline", "AdamW, [CLS] token, no technique", ()),
        "bertadam": Technique("bertadam", "Adam without bias correction", ("--optimizer", "bertadam")),
        "reinit": Technique(
            "reinit",
            f"top {opts.reinit_layers} layers + head re-initialised",
            ("--reinit-layers", str(opts.reinit_layers)),
        ),
        "weighted-pooling": Technique(
            "weighted-pooling",
            f"learned weights over layers {first}–{num_layers}",
            ("--pooling", "weighted", "--layer-start", str(first)),
        ),
        "llrd": Technique("llrd", f"γ = {opts.llrd}", ("--llrd", str(opts.llrd))),
        "mixout": Technique("mixout", f"p = {opts.mixout}", ("--mixout", str(opts.mixout))),
        "prior-wd": Technique("prior-wd", f"λ = {opts.prior_wd}", ("--prior-wd", str(opts.prior_wd))),
        "swa": Technique(
            "swa",
            f"average of epochs {swa_start}–end at lr {opts.swa_lr}",
            ("--swa-start", str(swa_start), "--swa-lr", str(opts.swa_lr)),
        ),
    }
    return [every[name] for name in opts.techniques]


def recipe_options(opts: argparse.Namespace) -> list[str]:
    """The `adapt` options every run shares (the seed, output folder and technique come on top)."""
    epochs, batch_size = (1, 64) if opts.quick else (opts.epochs, opts.batch_size)
    options = ["--pretrained", str(opts.pretrained), "--task", "trec-6", "--train-file", opts.train_file,
               "--epochs", str(epochs), "--lr", str(opts.lr), "--batch-size", str(batch_size),
               "--no-progress", "--overwrite"]  # fmt: skip
    if opts.data_dir:
        options += ["--data-dir", str(opts.data_dir)]
    if opts.threads:
        options += ["--threads", str(opts.threads)]
    return options


def run_one(options: list[str], out: Path) -> tuple[dict, float]:
    """One `adapt` run with its chatter kept in `out/adapt.log`; (its single run's result, seconds)."""
    start = time.perf_counter()
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        results = adapt(parse_args([*options, "--output-dir", str(out)]))
    (out / "adapt.log").write_text(log.getvalue(), encoding="utf-8")
    return results["runs"][0], time.perf_counter() - start


def markdown_table(rows: list[dict]) -> str:
    """Test accuracy (%) per technique: mean, sample std, min, max, and each seed's value."""
    lines = [
        "| technique | setting | mean | std | min | max | every seed |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        acc = row["test_accuracy"]
        seeds = ", ".join(f"{100 * r['test_accuracy']:.1f}" for r in row["runs"])
        lines.append(
            f"| {row['technique']} | {row['setting']} | {100 * acc['mean']:.2f} | {100 * acc['std']:.2f} "
            f"| {100 * acc['min']:.1f} | {100 * acc['max']:.1f} | {seeds} |"
        )
    return "\n".join(lines) + "\n"


def cpu_model() -> str:
    """The processor's name as `lscpu` shows it (from /proc/cpuinfo), else what Python knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def study(opts: argparse.Namespace) -> dict:
    """Run every (technique, seed); write results.json, table.md and the figures; return the results."""
    out = opts.output_dir
    if (out / "results.json").exists() and not opts.overwrite:
        raise FileExistsError(
            f"--output-dir {out} already holds a study: pass --overwrite to replace it or choose another directory"
        )
    num_layers = read_config(opts.pretrained)[1].num_layers
    selected = techniques(opts, num_layers)
    common = recipe_options(opts)
    total, done, start = len(selected) * len(opts.seeds), 0, time.perf_counter()
    rows: list[dict] = []
    for technique in selected:
        runs = []
        for seed in opts.seeds:
            run_dir = out / technique.name / f"seed_{seed}"
            result, seconds = run_one([*common, *technique.options, "--seeds", str(seed)], run_dir)
            runs.append({"seed": seed, "test_accuracy": result["test"]["accuracy"],
                         "valid_accuracy": result["valid_accuracy"], "seconds": seconds})  # fmt: skip
            done += 1
            print(
                f"[{done:>2}/{total}] {technique.name:<16} seed {seed}: test accuracy "
                f"{100 * runs[-1]['test_accuracy']:5.1f} % (valid {100 * result['valid_accuracy']:5.1f} %) "
                f"in {seconds:4.0f} s",
                flush=True,
            )
        rows.append(
            {
                "technique": technique.name,
                "setting": technique.setting,
                "options": list(technique.options),
                "test_accuracy": mean_std([r["test_accuracy"] for r in runs]),
                "runs": runs,
            }
        )
    table = markdown_table(rows)
    results = {
        "task": f"trec-6 ({opts.train_file}, test TREC_10.label)",
        "pretrained": str(opts.pretrained),
        "recipe": common,
        "quick": opts.quick,
        "seeds": opts.seeds,
        "machine": {"cpu": cpu_model(), "threads": opts.threads, "python": sys.version.split()[0]},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": time.perf_counter() - start,
        "techniques": rows,  # a list, in the order of --techniques
        "table_markdown": table,
    }
    write_json_atomic(out / "results.json", results)
    (out / "table.md").write_text(table, encoding="utf-8")
    write_figures(out, rows, opts.seeds[0])
    print(table + f"{total} runs in {results['wall_seconds'] / 60:.1f} min; written to {out}")
    return results


def write_figures(out: Path, rows: list[dict], first_seed: int) -> None:
    """The box plot of every technique's seeds, and the LLRD run's learning-rate figure beside it."""
    from minitransformer.teaching import plots

    spread = {row["technique"]: [100 * r["test_accuracy"] for r in row["runs"]] for row in rows}
    plots.plot_seed_spread(
        spread,
        ylabel="test accuracy (%)",
        title=f"Few-sample TREC-6: test accuracy over {len(next(iter(spread.values())))} seeds",
        path=out / "stability_seed_spread.png",
    )
    if "llrd" in spread:
        shutil.copyfile(out / "llrd" / f"seed_{first_seed}" / "plots" / "llrd_lr.png", out / "llrd_lr.png")


def main(argv: list[str] | None = None) -> int:
    opts = build_parser().parse_args(argv)
    return run_cli(lambda: study(opts))


if __name__ == "__main__":
    sys.exit(main())
