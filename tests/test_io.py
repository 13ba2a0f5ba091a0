"""`runs.io`: atomic writes; a failed write names the file in one line and keeps the old one."""

from __future__ import annotations

import errno
import os

import pytest

from minitransformer.runs.errors import WriteError
from minitransformer.runs.io import atomic_path, write_text_atomic


@pytest.mark.parametrize(
    "failure",
    [
        OSError(28, "No space left on device"),
        RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed"),
        Exception(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space" })'
        ),
        # issue 27 item 16: the messages seen on a full disk (safetensors 0.5+, torch.save)
        Exception("Error while serializing: I/O error: No space left on device (os error 28)"),
        RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"),
        RuntimeError("basic_ios::clear: iostream error"),
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


def test_other_os_errors_name_the_file_in_one_line(capsys):
    from minitransformer.runs.errors import run_cli

    def read_only() -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), "/runs/metrics.jsonl")

    assert run_cli(read_only) == 1
    assert capsys.readouterr().err == f"error: /runs/metrics.jsonl: {os.strerror(errno.EROFS)}\n"


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_honour_the_umask(tmp_path, umask, mode):
    """Issue 27 item 12: every atomically written file was 0600 whatever the umask."""
    old = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "config.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "config.json").stat().st_mode & 0o777 == mode
