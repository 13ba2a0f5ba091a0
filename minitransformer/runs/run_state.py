"""A run folder's owner and lifecycle: `run.lock` (who is writing it now) and `run_state.json` (how far it got).

`run.lock` is created exclusively when a run starts and removed when it ends, so a second program
pointed at the same folder stops at once. A lock whose process is gone (the run was killed) is stale:
on the same host it is detected from the pid and taken over, with a note; a lock from another host
cannot be checked, and the error says how to remove it.

`run_state.json` says "running" from the moment a run writes anything and "complete" once its last
file is written; `--resume` of a complete run changes nothing. It also holds the run's numerics (device,
threads, precision: `numerics.py`). Both files are written atomically.

For the crash tests, `MINITRANSFORMER_KILL_AT=phase` (or `phase:step`) makes the process SIGKILL
itself when it reaches that phase: a kill at an exact point instead of a race against a timer.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

from ignite.engine import Engine, Events
from ignite.metrics import RunningAverage

from .io import pid_alive, write_json_atomic

LOCK_NAME = "run.lock"
STATE_NAME = "run_state.json"
KILL_VARIABLE = "MINITRANSFORMER_KILL_AT"


class RunLockedError(FileExistsError):
    """Another live process owns the run folder."""


def owner() -> dict:
    """This process as a run folder's owner: its pid and host."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


def _alive(pid: int) -> bool:
    return pid_alive(pid)


class RunLock:
    """`with RunLock(folder):` — own `folder/run.lock` for the block (pid and host inside)."""

    def __init__(self, directory: str | os.PathLike):
        self.path = Path(directory) / LOCK_NAME
        self.owner = owner()

    def __enter__(self) -> RunLock:
        if self.path.parent.exists() and not self.path.parent.is_dir():
            raise FileExistsError(f"--output-dir {self.path.parent} is a file, not a folder: choose a folder")
        self.created = not self.path.parent.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self._create():
            self._take_over_if_stale()
        return self

    def __exit__(self, *exc) -> None:
        if self._read() == self.owner:
            self.path.unlink(missing_ok=True)
        if self.created and not any(self.path.parent.iterdir()):
            self.path.parent.rmdir()  # a run that failed before writing anything leaves no folder

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.owner, f)
        return True

    def _read(self) -> dict:
        try:
            holder = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # being written, or garbage: treated as not ours
        return holder if isinstance(holder, dict) else {}  # e.g. [1, 2] or 123: garbage too

    def _take_over_if_stale(self) -> None:
        holder = self._read()
        for _ in range(20):  # another run may have created the file and not yet written it
            if holder:
                break
            time.sleep(0.05)
            holder = self._read()
        if not holder:
            raise RunLockedError(
                f"{self.path} is empty or unreadable (a run killed as it started, or a damaged file?): delete it "
                "and run the command again"
            )
        pid, host = holder.get("pid"), holder.get("host")
        folder = self.path.parent
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            raise RunLockedError(
                f"{self.path} does not name a process (pid {pid!r}): if no run is using {folder}, delete "
                f"{self.path} and run the command again"
            )
        if host != self.owner["host"]:
            raise RunLockedError(
                f"{folder} is locked by pid {pid} on host {host}: if that run is no longer running, delete "
                f"{self.path} and run the command again"
            )
        if _alive(pid):
            raise RunLockedError(
                f"{folder} is in use by another run (pid {pid} on {host}): wait for it to end or choose another "
                f"--output-dir (if pid {pid} is not a run, delete {self.path})"
            )
        print(f"note: {self.path} was left by pid {pid}, which is no longer running; taking it over")
        self.path.unlink(missing_ok=True)
        if not self._create():  # another process took it over first
            raise RunLockedError(f"{folder} was just taken by another run: choose another --output-dir")


def read_state(directory: str | os.PathLike) -> dict:
    """The folder's recorded lifecycle ({} when none was recorded)."""
    path = Path(directory) / STATE_NAME
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError:
        raise ValueError(f"{path} is not valid JSON: the folder is damaged; start a new run") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} is damaged (not a mapping): start a new run, or delete it to resume")
    return state


def write_state(directory: str | os.PathLike, status: str, **values) -> None:
    """Record `status` ("running" or "complete") with the owner and `values` (e.g. the final step),
    keeping the other values recorded (e.g. the run's numerics); a damaged file is replaced."""
    try:
        kept = read_state(directory)
    except ValueError:
        kept = {}
    write_json_atomic(
        Path(directory) / STATE_NAME, {**kept, "status": status, **owner(), "time": time.time(), **values}
    )


def update_state(directory: str | os.PathLike, **values) -> None:
    """Add `values` to the recorded state, keeping the rest (status, owner, ...)."""
    write_json_atomic(Path(directory) / STATE_NAME, {**read_state(directory), **values})


def started_here(directory: str | os.PathLike) -> bool:
    """Whether this process started the run recorded in `directory` (its state names our pid and host)."""
    try:
        state = read_state(directory)
    except ValueError:
        return False
    return {"pid": state.get("pid"), "host": state.get("host")} == owner()


def remove_temp_files(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a killed atomic write leaves (`.NAME.XXXX.tmp`) in `directory` and
    below; returns them."""
    stale = [p for p in Path(directory).rglob(".*.tmp") if p.is_file()]
    for path in stale:
        path.unlink()
    return stale


class WallClock:
    """Seconds a run has taken, carried across resumes: put it in the training checkpoint's `to_save`.

    The time between the last checkpoint and a kill is not counted: that work is done again."""

    def __init__(self):
        self.started, self.before = time.time(), 0.0

    def elapsed(self) -> float:
        return self.before + time.time() - self.started

    def state_dict(self) -> dict:
        return {"elapsed_s": self.elapsed()}

    def load_state_dict(self, state: dict) -> None:
        self.before = state["elapsed_s"]


class CarriedAverage:
    """A trainer's `RunningAverage` value in the training checkpoint, so that `avg_loss` goes on
    smoothly after a resume (Ignite resets the average when the trainer starts; this sets it back)."""

    def __init__(self, average: RunningAverage, trainer: Engine):
        self.average, self.value = average, None
        trainer.add_event_handler(Events.STARTED, self._restore)  # runs after the metric's own reset

    def state_dict(self) -> dict:
        return {"value": self.average._value}  # Ignite keeps the running value here

    def load_state_dict(self, state: dict) -> None:
        self.value = state["value"]

    def _restore(self, _: Engine) -> None:
        if self.value is not None:
            self.average._value = self.value


def kill_point(phase: str, step: int | None = None) -> None:
    """Test hook: SIGKILL this process if MINITRANSFORMER_KILL_AT names `phase` (and `step`, if given there)."""
    wanted = os.environ.get(KILL_VARIABLE)
    if not wanted:
        return
    name, _, at = wanted.partition(":")
    if name == phase and (not at or str(step) == at):
        os.kill(os.getpid(), signal.SIGKILL)
