"""Same command, same bytes: a toy pipeline (`pretrain`, its tokenizer trained, then `adapt`) run twice,
here and in a fresh process with another hash seed, writes byte-identical tokenizer, models and metrics."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, pretrain_args

from adapt.run import main as adapt_main
from pretrain.run import main as pretrain_main

TIMING = ("tokens_per_s", "mfu", "wall_time_s", "seconds")  # differ between any two runs
PIPELINE = """import json, sys
from adapt.run import main as adapt
from pretrain.run import main as pretrain
pretrain_argv, adapt_argv = json.loads(sys.argv[1])
sys.exit(pretrain(pretrain_argv) or adapt(adapt_argv))
"""


def pipeline(corpus, data: Path, root: Path) -> tuple[list[str], list[str]]:
    """The two commands: a 12-step pretraining that trains its tokenizer, a 4-step fine-tuning of it."""
    pretrain_argv = pretrain_args(corpus, root / "pretrain", root / "cache")
    at = pretrain_argv.index("--tokenizer")
    del pretrain_argv[at : at + 2]
    adapt_argv = [
        "--pretrained", str(root / "pretrain"), "--output-dir", str(root / "adapt"), "--data-dir", str(data),
        "--train-file", "train_1000.label", "--no-download", "--max-steps", "4", "--eval-every", "2",
        "--batch-size", "8", "--no-progress", "--threads", "1",
    ]  # fmt: skip
    return [*pretrain_argv, "--vocab-size", "500"], adapt_argv


def fingerprint(root: Path) -> dict[str, str]:
    """sha256 of the tokenizer and the models the runs write, and their metrics without the timings."""
    files = ["pretrain/tokenizer.json", "pretrain/model.safetensors", "adapt/seed_0/model.safetensors"]
    found = {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in files}
    for name in ("pretrain/metrics.jsonl", "adapt/metrics.jsonl"):
        lines = (root / name).read_text(encoding="utf-8").splitlines()
        found[name] = json.dumps([{k: v for k, v in json.loads(s).items() if k not in TIMING} for s in lines])
    return found


@pytest.mark.e2e
def test_the_same_command_writes_the_same_bytes(corpus, shared_data, tmp_path):
    """Issue 33: two runs of the same command and seed trained two tokenizers, hence two models."""
    here, fresh = tmp_path / "here", tmp_path / "fresh"
    pretrain_argv, adapt_argv = pipeline(corpus, shared_data, here)
    assert pretrain_main(pretrain_argv) == 0 and adapt_main(adapt_argv) == 0
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": "1"}
    commands = json.dumps(pipeline(corpus, shared_data, fresh))
    subprocess.run([sys.executable, "-c", PIPELINE, commands], env=env, check=True, capture_output=True)
    assert fingerprint(here) == fingerprint(fresh)
