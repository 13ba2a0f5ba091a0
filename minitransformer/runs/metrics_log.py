"""`metrics.jsonl`: the JSON-lines log of a run's events, and part of its training checkpoint."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ignite.distributed as idist

from .errors import WriteError
from .io import atomic_path


class MetricsLog:
    """`metrics.jsonl`: one JSON object per log event ({"event": ..., "step": ..., ...}), rank 0 only.

    It is part of the training checkpoint (`state_dict`: how many events were logged): resuming keeps
    the events logged before the checkpoint and drops the later ones, which the resumed run logs again.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.enabled = idist.get_rank() == 0
        self.listeners: list[Callable[[dict], object]] = []  # also told every record (experiment trackers)
        self.events = len(self.read(self.path)) if self.enabled and self.path.exists() else 0

    def log(self, event: str, step: int, **values: Any) -> None:
        if not self.enabled:
            return
        record = {"event": event, "step": step, **values}
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:
            raise WriteError(self.path, e.errno) from e
        self.events += 1
        for listener in self.listeners:
            listener(record)

    def state_dict(self) -> dict:
        return {"events": self.events}

    def load_state_dict(self, state: dict) -> None:
        """Keep the first state["events"] events: those logged before the checkpoint was written."""
        if self.enabled:
            self.keep(lambda index, _: index < state["events"])

    def keep(self, wanted: Callable[[int, dict], bool]) -> None:
        """Rewrite the log with the events for which wanted(index, event) is true."""
        events = self.read(self.path) if self.path.exists() else []
        kept = [e for i, e in enumerate(events) if wanted(i, e)]
        with atomic_path(self.path) as tmp:
            tmp.write_text("".join(json.dumps(e) + "\n" for e in kept), encoding="utf-8")
        self.events = len(kept)

    @staticmethod
    def read(path: str | os.PathLike) -> list[dict]:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
