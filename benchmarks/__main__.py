"""`python -m benchmarks [--quick] [--only NAME] [--gpu]`: run the benchmarks, one headline line each.

Items 1-4 run on the CPU; `--gpu` adds item 5 (a CPU smoke run of its code path when there is no GPU).
Each prints its own table, then the run ends with one `name: ours=… baseline=… ratio=…` line per
item. `--wait-quiet` first waits (up to 10 minutes) for the 1-minute load average to fall below 1.5,
for runs whose numbers go into benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks import (
    data_prep,
    end_to_end,
    finetune_padding,
    generation,
    gpu,
    machine_line,
    precision,
    throughput,
    wait_for_quiet_machine,
)

CPU_ITEMS = ("throughput", "precision", "data-prep", "finetune-padding", "generation", "end-to-end")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, for a crash check (not for numbers)"
    )
    parser.add_argument("--only", choices=(*CPU_ITEMS, "gpu"), help="run this item only")
    parser.add_argument("--gpu", action="store_true", help="also run the GPU benchmark (item 5)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's; --quick: 1)"
    )
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's top ops of our step")
    parser.add_argument("--wait-quiet", action="store_true", help="wait for 1-minute load < 1.5 first")
    parser.add_argument(
        "--data-dir", default=None, help="folder with wikitext-2/ and trec/ (else MINITRANSFORMER_DATA)"
    )
    args = parser.parse_args(argv)

    threads = args.threads or (1 if args.quick else None)
    if threads:
        torch.set_num_threads(threads)
    if args.wait_quiet:
        wait_for_quiet_machine()
    print(f"benchmarks{' (quick)' if args.quick else ''}: {machine_line()}", flush=True)
    runners = {
        "throughput": lambda: throughput.run(args.quick, profile=args.profile),
        "precision": lambda: precision.run(args.quick),
        "data-prep": lambda: data_prep.run(args.quick, args.data_dir),
        "finetune-padding": lambda: finetune_padding.run(args.quick, args.data_dir),
        "generation": lambda: generation.run(args.quick),
        "end-to-end": lambda: end_to_end.run(args.quick, args.data_dir, torch.get_num_threads()),
        "gpu": lambda: gpu.run(args.quick),
    }
    chosen = [args.only] if args.only else [*CPU_ITEMS, *(["gpu"] if args.gpu else [])]
    start = time.perf_counter()
    results = []
    for name in chosen:
        results += runners[name]()
    print(f"\nsummary ({time.perf_counter() - start:.0f} s) | {machine_line()}")
    for result in results:
        print(result.line())


if __name__ == "__main__":
    main()
