"""Side-by-side performance measurements: our code against the baseline a user would otherwise pick.

Every benchmark runs both sides in one process (or back to back in one run) and reports the ratio,
because on a shared 2-core machine absolute numbers move with other people's jobs while ratios of
interleaved measurements do not. Run them with `python -m benchmarks` (see benchmarks/README.md).

This module holds what the benchmarks share: the machine/load banner, interleaved timing and the
one-line result format `name: ours=… baseline=… ratio=…`.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


def machine_line() -> str:
    """Load averages, torch threads and torch version: printed next to every table of timings."""
    one, five, fifteen = os.getloadavg()
    return (
        f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs | "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )


def interleaved(
    candidates: dict[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, float]:
    """Median seconds per call of each candidate, timed round-robin (A, B, C, A, B, C, …).

    Interleaving spreads the noise of a shared machine over every side alike, so the ratios hold even
    when the absolute times do not. `warmup` untimed rounds come first (allocator, kernel caches).
    """
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


@dataclass
class Result:
    """One benchmark's headline: our figure, the baseline's, and how we compare (higher is better)."""

    name: str
    ours: float
    baseline: float
    unit: str
    higher_is_better: bool = True
    note: str = ""  # what else the line should say (memory, accuracy), after the ratio

    @property
    def ratio(self) -> float:
        """How many times better we are than the baseline (> 1 means we win)."""
        return self.ours / self.baseline if self.higher_is_better else self.baseline / self.ours

    def line(self) -> str:
        line = f"{self.name}: ours={self.ours:.4g} {self.unit} baseline={self.baseline:.4g} {self.unit} ratio={self.ratio:.2f}x"
        return f"{line} ({self.note})" if self.note else line


def wait_for_quiet_machine(threshold: float = 1.5, max_wait_s: float = 600.0, poll_s: float = 15.0) -> float:
    """Wait (up to `max_wait_s`) until the 1-minute load average drops below `threshold`; return it."""
    deadline = time.monotonic() + max_wait_s
    while (load := os.getloadavg()[0]) >= threshold and time.monotonic() < deadline:
        print(f"waiting for a quieter machine: 1-minute load {load:.2f} >= {threshold}", flush=True)
        time.sleep(poll_s)
    return load
