"""`runs.run_state`: one run per folder (the lock, released and taken over when stale)."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import socket

import pytest
from conftest import pretrain_args

from minitransformer.runs.run_state import RunLock, RunLockedError
from pretrain.run import main as pretrain_main


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


@pytest.mark.parametrize(
    "content, message",
    [
        ("[1, 2]", "is empty or unreadable"),
        ("123", "is empty or unreadable"),
        ('"str"', "is empty or unreadable"),
        ('{"pid": "x", "host": "h"}', "does not name a process (pid 'x')"),
        ('{"pid": -1, "host": "h"}', "does not name a process (pid -1)"),
    ],
)
def test_a_damaged_lock_is_one_clear_error(tmp_path, content, message):
    """Issue 27 item 19: `[1,2]`, `123`, `"str"` in run.lock gave AttributeError."""
    (tmp_path / "run.lock").write_text(content)
    with pytest.raises(RunLockedError, match=re.escape(message)), RunLock(tmp_path):
        pass


def test_a_lock_of_a_pid_too_large_to_exist_is_stale(tmp_path, capsys):
    """Issue 27 item 19: pid 99999999999 gave OverflowError."""
    (tmp_path / "run.lock").write_text(json.dumps({"pid": 99999999999, "host": socket.gethostname()}))
    with RunLock(tmp_path):
        pass
    assert "no longer running; taking it over" in capsys.readouterr().out


def test_a_damaged_training_checkpoint_names_itself_and_the_previous_one(tmp_path):
    """Issue 27 item 28: a garbage checkpoint gave torch's "retry with weights_only=False" advice."""
    import torch

    from minitransformer.runs.training_state import load_training_state

    torch.save({"x": torch.zeros(1)}, tmp_path / "training_checkpoint_4.pt")
    (tmp_path / "training_checkpoint_8.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError) as error:
        load_training_state(tmp_path / "training_checkpoint_8.pt", {})
    message = str(error.value)
    assert "training_checkpoint_8.pt is damaged" in message and "weights_only" not in message
    assert "resumes from the previous one (training_checkpoint_4.pt)" in message
