"""`python -m pretrain` end to end on a slice of the real WikiText-2, with a very small model."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, small_run

from minitransformer import TransformerWithLMHead
from minitransformer.runs.metrics_log import MetricsLog
from minitransformer.tokenization import Tokenizer
from pretrain.run import main


def events(out: Path, kind: str) -> list[dict]:
    return [e for e in MetricsLog.read(out / "metrics.jsonl") if e["event"] == kind]


@pytest.mark.e2e
@pytest.mark.parametrize("objective", ["clm", "mlm"])
def test_short_run_learns_and_writes_its_files(corpus, tmp_path, objective):
    out = tmp_path / "run"
    assert main(small_run(corpus, out, "--objective", objective)) == 0
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "training_args.json",
        "plots/training_curves.png",
    ):
        assert (out / name).is_file(), name
    valid = events(out, "valid")
    final = events(out, "final")[0]
    assert valid[0]["step"] == 0 and final["step"] == 30
    assert final["loss"] < valid[0]["loss"] - 0.3  # learned something in 30 steps
    key = "word_ppl" if objective == "clm" else "mlm_ppl"
    assert math.isfinite(final[key])
    assert len(events(out, "train")) == 3  # every 10 steps
    assert all(e["mfu"] > 0 for e in events(out, "train"))  # against a matmul measured on this CPU
    assert bool(events(out, "sample")) == (objective == "clm")
    args = json.loads((out / "training_args.json").read_text())
    assert "trained on" in args["splits"] and args["train_split"] == "valid" and args["valid_split"] == "test"
    model = TransformerWithLMHead.from_pretrained(out)
    assert model.config.mlm == (objective == "mlm")
    assert Tokenizer.from_pretrained(out).vocab_size == model.config.vocab_size


@pytest.mark.e2e
def test_the_schedule_option_sets_the_lr_of_every_step(corpus, tmp_path):
    out = tmp_path / "run"
    assert main(small_run(corpus, out, "--schedule", "wsd", "--log-every", "1")) == 0
    lrs = [e["lr"] for e in events(out, "train")]  # step s trains at the schedule's value at s - 1
    assert lrs[5:25] == pytest.approx([3e-3] * 20)  # the peak after 5 warm-up steps, held to step 24
    assert lrs[27] == pytest.approx(1.5e-3)  # then linear decay to 0 at step 30


@pytest.mark.e2e
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(corpus, tmp_path, monkeypatch, capsys):
    forward = TransformerWithLMHead.forward
    calls = {"n": 0}

    def poisoned(self, x, labels=None, **kw):
        out = forward(self, x, labels=labels, **kw)
        if labels is not None and self.training:
            calls["n"] += 1
            if calls["n"] > 12:
                return out[0], out[1] * float("nan")
        return out

    monkeypatch.setattr(TransformerWithLMHead, "forward", poisoned)
    out = tmp_path / "run"
    assert main(small_run(corpus, out, "--checkpoint-every", "5")) == 1
    assert "loss became nan at step 13" in capsys.readouterr().err
    saved = sorted(p.name for p in (out / "checkpoints").glob("training_checkpoint_*.pt"))
    assert saved == ["training_checkpoint_10.pt", "training_checkpoint_5.pt"]  # the last 2 kept
    state = torch.load(out / "checkpoints" / saved[0], weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert not (out / "model.safetensors").exists()


@pytest.mark.e2e
def test_two_gloo_processes_follow_the_single_process_loss_curve(corpus, tmp_path):
    common = [  # fp32: the two runs must agree to 1e-4, which bf16's rounding does not promise
        "--amp",
        "none",
        "--dropout",
        "0",
        "--max-steps",
        "8",
        "--log-every",
        "1",
        "--eval-every",
        "100",
        "--max-eval-batches",
        "1",
    ]
    single, double = tmp_path / "one", tmp_path / "two"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-m", "pretrain", *small_run(corpus, single, *common)], env=env, check=True
    )
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
    ]
    subprocess.run([*torchrun, "-m", "pretrain", *small_run(corpus, double, *common)], env=env, check=True)
    one = [e["loss"] for e in events(single, "train")]
    two = [e["loss"] for e in events(double, "train")]
    assert len(one) == len(two) == 8
    assert max(abs(x - y) for x, y in zip(one, two)) < 1e-4


@pytest.mark.e2e
def test_refuses_to_overwrite_a_run(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text("{}\n")
    assert main(small_run(corpus, out)) == 1
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--overwrite" in err and "Traceback" not in err


@pytest.mark.e2e
def test_clear_errors_before_training(corpus, tmp_path, capsys):
    assert main(small_run(corpus, tmp_path / "a", "--amp", "fp16", "--device", "cpu")) == 1
    assert "--amp fp16 needs a CUDA GPU" in capsys.readouterr().err
    assert main(small_run(corpus, tmp_path / "b", "--dataset", str(tmp_path / "nowhere"))) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "nowhere" in err
    assert not (tmp_path / "b" / "checkpoints").exists()
