"""Crash-safe runs: killed at any phase, a run resumes to the byte-identical model; one run per folder;
a complete run is left alone; a failed write is one line and leaves nothing loadable behind.

The kills are deterministic: MINITRANSFORMER_KILL_AT=phase[:step] makes the run SIGKILL itself there
(`minitransformer.runs.run_state.kill_point`). The killed run is a forked copy of this process (no second
torch import); the resume runs here.
"""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import signal
import socket
import time
from pathlib import Path

import pytest
import torch

from adapt.run import main as adapt_main
from minitransformer import TransformerConfig, TransformerWithClfHead, TransformerWithLMHead
from minitransformer.runs.errors import WriteError
from minitransformer.runs.io import atomic_path, write_text_atomic
from minitransformer.runs.metrics_log import MetricsLog
from minitransformer.runs.run_state import KILL_VARIABLE, RunLock, read_state
from pretrain.run import main as pretrain_main

TIMING = ("tokens_per_s", "mfu", "wall_time_s", "seconds")  # differ between any two runs


def pretrain_args(corpus, out: Path, cache: Path) -> list[str]:
    return [
        "--dataset", str(corpus.root), "--tokenizer", str(corpus.tokenizer), "--output-dir", str(out),
        "--cache-dir", str(cache), "--embed-dim", "32", "--hidden-dim", "64", "--num-heads", "2",
        "--num-layers", "2", "--num-max-positions", "32", "--batch-size", "8", "--lr", "3e-3",
        "--warmup-steps", "5", "--max-steps", "12", "--eval-every", "6", "--checkpoint-every", "4",
        "--log-every", "5", "--eval-batch-size", "16", "--sample-tokens", "4", "--no-progress", "--threads", "1",
    ]  # fmt: skip


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


def test_a_folder_in_use_is_refused_in_one_line(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    host = socket.gethostname()
    (out / "run.lock").write_text(json.dumps({"pid": os.getppid(), "host": host}))  # a live process
    assert pretrain_main(pretrain_args(corpus, out, tmp_path / "cache")) == 1
    err = capsys.readouterr().err
    assert f"is in use by another run (pid {os.getppid()} on {host})" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == ["run.lock"]  # nothing written, the lock left alone

    (out / "run.lock").write_text("")  # a run killed between creating the lock and writing it
    assert pretrain_main(pretrain_args(corpus, out, tmp_path / "cache")) == 1
    assert f"{out / 'run.lock'} is empty or unreadable" in capsys.readouterr().err

    (out / "run.lock").write_text(json.dumps({"pid": 1234, "host": "elsewhere"}))
    assert pretrain_main(pretrain_args(corpus, out, tmp_path / "cache")) == 1
    assert f"locked by pid 1234 on host elsewhere: if that run is no longer running, delete {out}" in (
        capsys.readouterr().err
    )


def test_the_lock_is_released_and_a_stale_one_taken_over(tmp_path, capsys):
    folder = tmp_path / "run"
    with RunLock(folder):
        assert json.loads((folder / "run.lock").read_text())["pid"] == os.getpid()
    assert not folder.exists()  # created for the run, nothing written: removed again
    folder.mkdir()
    dead = multiprocessing.get_context("fork").Process(target=os._exit, args=(0,))
    dead.start()
    dead.join()
    (folder / "run.lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    with RunLock(folder):
        assert json.loads((folder / "run.lock").read_text())["pid"] == os.getpid()
    assert f"left by pid {dead.pid}, which is no longer running" in capsys.readouterr().out
    assert not (folder / "run.lock").exists()


# -- every bad value is one line --------------------------------------------------------------------

PRETRAIN_CASES = [
    (["--max-steps", "-2"], "--max-steps -2: expected a value >= 1"),
    (["--max-steps", "0"], "--max-steps 0: expected a value >= 1"),
    (["--epochs", "0"], "--epochs 0: expected a value >= 1"),
    (["--batch-size", "0"], "--batch-size 0: expected a value >= 1"),
    (["--accumulation-steps", "0"], "--accumulation-steps 0: expected a value >= 1"),
    (["--accumulation-steps", "9", "--batch-size", "8"], "--accumulation-steps 9: expected at most"),
    (["--lr", "0"], "--lr 0.0: expected a value > 0"),
    (["--warmup-steps", "-1"], "--warmup-steps -1: expected a value >= 0"),
    (["--dropout", "1"], "--dropout 1.0: expected a value in [0, 1)"),
    (["--keep-checkpoints", "0"], "--keep-checkpoints 0: expected a value >= 1"),
]
ADAPT_CASES = [
    (["--max-steps", "0"], "--max-steps 0: expected a value >= 1"),
    (["--max-steps", "-3"], "--max-steps -3: expected a value >= 1"),
    (["--epochs", "0"], "--epochs 0: expected a value >= 1"),
    (["--epochs", "-1"], "--epochs -1: expected a value >= 1"),
    (["--lr", "0"], "--lr 0.0: expected a value > 0"),
    (["--warmup-steps", "-5"], "--warmup-steps -5: expected a value >= 0"),
    (["--max-len", "1"], "--max-len 1: expected a value >= 2"),
    (["--valid-fraction", "1"], "--valid-fraction 1.0: expected a value in (0, 1)"),
]
CONFIG_CASES = [
    ("list.yaml", "- 1\n- 2\n", "expected a mapping of option names to values"),
    ("broken.yaml", "a: [1\n", "not valid YAML at line 2"),
    ("float.yaml", "batch_size: 2.5\n", "batch_size: 2.5 is not an integer (--batch-size)"),
    ("word.json", '{"lr": "fast"}', "lr: 'fast' is not a number (--lr)"),
    ("both.json", '{"max_steps": 5, "epochs": 2}', "they exclude each other, keep one"),
]


def usage_error(main, argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize("argv, message", PRETRAIN_CASES)
def test_pretrain_numeric_options_are_checked_at_parse_time(argv, message, capsys):
    assert message in usage_error(pretrain_main, argv, capsys)


@pytest.mark.parametrize("argv, message", ADAPT_CASES)
def test_adapt_numeric_options_are_checked_at_parse_time(argv, message, capsys):
    assert message in usage_error(adapt_main, ["--pretrained", "none", *argv], capsys)


@pytest.mark.parametrize("top", ["0", "-2"])
def test_predict_top_is_checked(top, tmp_path, capsys):
    from adapt.predict import main as predict_main

    assert f"--top {top}: expected a value >= 1" in usage_error(
        predict_main, ["--model", str(tmp_path), "--top", top, "text"], capsys
    )


@pytest.mark.parametrize("name, text, message", CONFIG_CASES)
def test_config_file_values_are_checked_like_flags(name, text, message, tmp_path, capsys):
    path = tmp_path / name
    path.write_text(text)
    assert message in usage_error(pretrain_main, ["--config", str(path)], capsys)
    assert message in usage_error(adapt_main, ["--pretrained", "none", "--config", str(path)], capsys)


def test_a_missing_config_file_is_a_usage_error(tmp_path, capsys):
    missing = tmp_path / "missing.yaml"
    assert f"--config {missing}: file not found" in usage_error(
        pretrain_main, ["--config", str(missing)], capsys
    )
    assert "file not found" in usage_error(
        adapt_main, ["--pretrained", "none", "--config", str(missing)], capsys
    )


@pytest.mark.e2e
def test_adapt_max_len_beyond_the_models_positions(pretrained_dir, tmp_path, capsys):
    argv = adapt_args(pretrained_dir, tmp_path / "run")
    assert adapt_main([*argv, "--max-len", "1000"]) == 1
    err = capsys.readouterr().err
    assert "--max-len 1000: " in err and "has 64 positions; use at most 64" in err


# -- checkpoints that do not describe themselves ----------------------------------------------------


def test_weights_the_config_does_not_describe_are_an_error(tiny_config, tmp_path):
    deeper = TransformerConfig.from_dict({**tiny_config.to_dict(), "num_layers": 4})
    TransformerWithLMHead(deeper).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "num_layers": 2}))
    for cls in (TransformerWithLMHead, TransformerWithClfHead):  # adapt loads with the classifier class
        with pytest.raises(ValueError, match="backbone parameters its config does not describe"):
            cls.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "architecture": "GPT5"}))
    with pytest.raises(ValueError, match="unknown architecture 'GPT5'"):
        TransformerWithLMHead.from_pretrained(tmp_path)


# -- a full disk ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        OSError(28, "No space left on device"),
        RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed"),
        Exception(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space" })'
        ),
    ],
)
def test_a_failed_write_names_the_file_and_keeps_the_old_one(failure, tmp_path):
    target = tmp_path / "model.safetensors"
    target.write_text("the previous, complete file")
    with pytest.raises(WriteError) as error:
        with atomic_path(target):
            raise failure
    assert str(error.value).startswith(f"could not write {target}: ")
    if not isinstance(failure, RuntimeError):
        assert "No space left on device" in str(error.value)
    assert target.read_text() == "the previous, complete file"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # no temp file


def test_other_errors_inside_a_write_are_not_disguised(tmp_path):
    with pytest.raises(KeyError):
        with atomic_path(tmp_path / "x"):
            raise KeyError("a bug, not a disk")
    write_text_atomic(tmp_path / "y", "ok")
    assert (tmp_path / "y").read_text() == "ok"


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


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_run(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        pretrain_main([*pretrain_args(corpus, out, tmp_path / "cache"), "--dataset", str(tmp_path / "no")])
        == 1
    )
    assert "no" in capsys.readouterr().err and not out.exists()
    kept = tmp_path / "theirs"
    kept.mkdir()
    (kept / "notes.txt").write_text("the user's own file")
    assert (
        pretrain_main([*pretrain_args(corpus, kept, tmp_path / "cache"), "--dataset", str(tmp_path / "no")])
        == 1
    )
    assert [p.name for p in kept.iterdir()] == ["notes.txt"]


def test_other_os_errors_name_the_file_in_one_line(capsys):
    from minitransformer.runs.errors import run_cli

    def read_only() -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), "/runs/metrics.jsonl")

    assert run_cli(read_only) == 1
    assert capsys.readouterr().err == f"error: /runs/metrics.jsonl: {os.strerror(errno.EROFS)}\n"
