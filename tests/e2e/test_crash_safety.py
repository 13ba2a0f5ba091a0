"""Crash-safe runs: killed at any phase, a run resumes to the byte-identical model; one run per folder;
a complete run is left alone; a failed write is one line and leaves nothing loadable behind.

The kills are deterministic: MINITRANSFORMER_KILL_AT=phase[:step] makes the run SIGKILL itself there
(`minitransformer.runs.run_state.kill_point`). The killed run is a forked copy of this process (no second
torch import); the resume runs here.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from conftest import pretrain_args

from adapt.run import main as adapt_main
from minitransformer.runs.metrics_log import MetricsLog
from minitransformer.runs.run_state import KILL_VARIABLE, read_state
from pretrain.run import main as pretrain_main

TIMING = ("tokens_per_s", "mfu", "wall_time_s", "seconds")  # differ between any two runs


def adapt_args(pretrained: Path, out: Path) -> list[str]:
    return [
        "--pretrained", str(pretrained), "--output-dir", str(out), "--train-file", "train_1000.label",
        "--no-download", "--seeds", "0,1", "--max-steps", "12", "--eval-every", "5", "--batch-size", "8",
        "--no-progress", "--threads", "1",
    ]  # fmt: skip


def killed_at(phase: str, main, argv: list[str]) -> int:
    """Run main(argv) in a forked process that kills itself at `phase`; its exit code (-9 when killed)."""

    def child() -> None:
        os.environ[KILL_VARIABLE] = phase
        os._exit(main(argv))

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(120)
    return process.exitcode


def events(out: Path) -> list[dict]:
    return [{k: v for k, v in e.items() if k not in TIMING} for e in MetricsLog.read(out / "metrics.jsonl")]


def leftovers(out: Path) -> list[str]:
    """Temp files of a killed write and a lock nobody holds: a clean folder has none."""
    return sorted(str(p) for p in [*out.rglob(".*.tmp"), *out.rglob("tmp*"), *out.rglob("run.lock")])


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    assert pretrain_main(pretrain_args(corpus, out, out.parent / "cache")) == 0
    return out


@pytest.mark.e2e
@pytest.mark.parametrize(
    "phase",
    ["binarize", "step:7", "checkpoint:8", "last_checkpoint", "final_eval", "final_save"],
)
def test_pretrain_killed_at_any_phase_resumes_to_the_identical_model(
    corpus, reference, tmp_path, phase, capsys
):
    out = tmp_path / "run"
    assert killed_at(phase, pretrain_main, pretrain_args(corpus, out, tmp_path / "cache")) == -signal.SIGKILL
    assert read_state(out)["status"] == "running" and (out / "run.lock").exists()
    (out / ".model.safetensors.k1ll3d.tmp").write_bytes(b"half a file")  # what a kill inside a write leaves
    (out / "checkpoints").mkdir(exist_ok=True)
    (out / "checkpoints" / ".training_checkpoint_8.pt.k1ll3d.tmp").write_bytes(b"half")
    capsys.readouterr()

    started = time.time()
    assert pretrain_main(["--resume", str(out), "--no-progress", "--threads", "1"]) == 0
    resume_seconds = time.time() - started
    printed = capsys.readouterr().out
    assert "no longer running; taking it over" in printed  # the killed run's stale lock
    assert (out / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    assert events(out) == events(reference)  # each event once, avg_loss carried over the resume
    assert leftovers(out) == []
    assert read_state(out)["status"] == "complete"
    if phase != "binarize":  # resumed from a checkpoint: the killed process's time is carried over
        summary = MetricsLog.read(out / "metrics.jsonl")[-1]
        assert summary["event"] == "summary" and summary["wall_time_s"] > resume_seconds
    checkpoints = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert checkpoints == sorted(p.name for p in (reference / "checkpoints").iterdir())
    assert len([n for n in checkpoints if n.startswith("best_")]) == 1
    assert [n for n in checkpoints if n.startswith("training_")] == [
        "training_checkpoint_12.pt",
        "training_checkpoint_8.pt",
    ]  # --keep-checkpoints 2, counting those of the killed process


@pytest.mark.e2e
def test_a_resume_keeps_its_precision_and_records_other_threads(corpus, reference, tmp_path, capsys):
    """Issue 33: `--resume --amp none` of a bf16 run, or `--resume --threads 2`, ended with a third model
    (neither uninterrupted run's) and nothing in the run's files said so."""
    out = tmp_path / "run"
    argv = pretrain_args(corpus, out, tmp_path / "cache")
    assert killed_at("checkpoint:8", pretrain_main, argv) == -signal.SIGKILL
    amp = json.loads((out / "training_args.json").read_text())["amp"]
    other = "none" if amp == "bf16" else "bf16"
    with pytest.raises(SystemExit) as refused:
        pretrain_main(["--resume", str(out), "--amp", other, "--no-progress"])
    assert refused.value.code == 2 and f"--amp {other} (the run has {amp})" in capsys.readouterr().err

    assert pretrain_main(["--resume", str(out), "--no-progress", "--threads", "2"]) == 0
    assert "resuming at step 8 with threads 1 → 2 (recorded" in capsys.readouterr().out
    resumes = [e for e in MetricsLog.read(out / "metrics.jsonl") if e["event"] == "resume"]
    assert [(e["step"], e["changed"]) for e in resumes] == [(8, {"threads": [1, 2]})]
    assert read_state(out)["resumes"] == [{"step": 8, "changed": {"threads": [1, 2]}}]
    assert [e for e in events(out) if e["event"] != "resume"][:3] == events(reference)[:3]  # the same start


@pytest.mark.e2e
def test_resuming_a_complete_run_changes_nothing(reference, capsys):
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in reference.rglob("*") if p.is_file()}
    assert pretrain_main(["--resume", str(reference), "--no-progress", "--threads", "1"]) == 0
    assert "complete run (step 12): nothing to resume" in capsys.readouterr().out
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in reference.rglob("*") if p.is_file()}
    assert after == before


@pytest.fixture(scope="module")
def adapt_reference(pretrained_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("adapt_uninterrupted") / "run"
    assert adapt_main(adapt_args(pretrained_dir, out)) == 0
    return out


@pytest.mark.e2e
@pytest.mark.parametrize("phase", ["seed0_step:5", "seed_done:0", "seed1_step:6", "seed_save:1"])
def test_adapt_killed_between_or_within_seeds_resumes_to_the_identical_models(
    pretrained_dir, adapt_reference, tmp_path, phase
):
    out = tmp_path / "run"
    assert killed_at(phase, adapt_main, adapt_args(pretrained_dir, out)) == -signal.SIGKILL
    assert adapt_main(["--resume", str(out), "--no-progress", "--threads", "1"]) == 0
    for seed in (0, 1):
        name = f"seed_{seed}/model.safetensors"
        assert (out / name).read_bytes() == (adapt_reference / name).read_bytes(), name
    assert events(out) == events(adapt_reference)
    assert leftovers(out) == [] and read_state(out)["status"] == "complete"
    results = json.loads((out / "results.json").read_text())
    expected = json.loads((adapt_reference / "results.json").read_text())
    assert results["test_accuracy"] == expected["test_accuracy"]
    before = (out / "results.json").stat().st_mtime_ns
    assert adapt_main(["--resume", str(out), "--threads", "1"]) == 0  # complete: nothing is done
    assert (out / "results.json").stat().st_mtime_ns == before


# -- one run per folder -----------------------------------------------------------------------------


# -- every bad value is one line --------------------------------------------------------------------


@pytest.mark.e2e
def test_adapt_max_len_beyond_the_models_positions(pretrained_dir, tmp_path, capsys):
    argv = adapt_args(pretrained_dir, tmp_path / "run")
    assert adapt_main([*argv, "--max-len", "1000"]) == 1
    err = capsys.readouterr().err
    assert "--max-len 1000: " in err and "has 64 positions; use at most 64" in err


# -- checkpoints that do not describe themselves ----------------------------------------------------


# -- a full disk ------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_disk_full_during_a_run_is_one_line_and_resume_finishes_it(
    corpus, reference, tmp_path, monkeypatch, capsys
):
    save = torch.save

    def fills_the_disk(obj, f, *args, **kwargs):  # the checkpoint at step 4 fits, the one at step 8 does not
        if ".training_checkpoint_8.pt." in str(f):  # its temp name
            raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 4480 vs 4416")
        return save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", fills_the_disk)
    out = tmp_path / "run"
    assert pretrain_main(pretrain_args(corpus, out, tmp_path / "cache")) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: could not write {out / 'checkpoints' / 'training_checkpoint_8.pt'}: ")
    assert len(err.splitlines()) == 1
    assert [p.name for p in (out / "checkpoints").glob("training_*")] == ["training_checkpoint_4.pt"]
    assert not (out / "model.safetensors").exists() and leftovers(out) == []
    assert read_state(out)["status"] == "running"

    monkeypatch.undo()  # space freed
    assert pretrain_main(["--resume", str(out), "--no-progress", "--threads", "1"]) == 0
    assert (out / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
