"""`python -m benchmarks --quick` runs end to end and prints one headline line per item.

Only crashes and the output format are checked here: timings belong in benchmarks/README.md, never in
assertions (the machine is shared, so any time bound would be flaky).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import REPO

from minitransformer.training.engine import cpu_has_bf16

pytestmark = pytest.mark.e2e  # runs the command-line programs end to end

LINE = re.compile(r"^(?P<name>[\w-]+): ours=\S+ \S+ baseline=\S+ \S+ ratio=\d+\.\d+x( \(.+\))?$")


def test_quick_mode_prints_one_line_per_item(shared_data):
    env = {**os.environ, "MINITRANSFORMER_DATA": str(shared_data)}
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--gpu"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    summary = out.stdout.split("\nsummary")[-1].splitlines()[1:]
    names = [LINE.match(line)["name"] for line in summary if LINE.match(line)]
    expected = ["throughput-quick", "mlm-throughput-quick"]
    expected += ["train-step-bf16-vs-fp32"] if cpu_has_bf16() else []  # nothing to compare without bf16
    expected += ["data-prep-2MB", "finetune-padding", "generation"]
    expected += ["end-to-end-clm", "end-to-end-mlm", "pretrain-mlm-vs-clm"]
    assert names == expected, summary
    assert "\n[gpu] " in out.stdout  # item 5 ran (on a GPU, or as its CPU smoke run)
    assert "graph breaks in our forward under torch.compile: 0" in out.stdout
