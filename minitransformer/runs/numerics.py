"""What decides a run's numbers besides its options and seed, and what a `--resume` changed of it.

Two runs with the same options and seed write the same bytes (tokenizer.json, model.safetensors, the
metrics but their timings) when these are the same too: the device, the CPU threads (a matrix product
split over more threads adds its terms in another order), the precision, `torch.compile` and the
torch version. A run records them in run_state.json ("numerics") when it starts.

`--resume` may change the device, the threads or `--compile` (they are hardware options); the precision
(`--amp`) it may not (`refuse_resume_changes`). A resume that changes any of them says so, logs a
`resume` event in metrics.jsonl naming each change (`"changed": {"threads": [1, 2]}`) and adds it to
run_state.json's "resumes": the run's result is then its own, not the uninterrupted run's. A resume
that changes none of them ends byte-identical to the uninterrupted run.
"""

from __future__ import annotations

import os
from pathlib import Path

import ignite.distributed as idist
import torch

from .metrics_log import MetricsLog
from .plan import RunPlan
from .run_state import read_state, update_state


def numerics(plan: RunPlan, device: torch.device) -> dict:
    """This process's numerics: device (a GPU with its name), CPU threads, precision, compile, torch."""
    where = f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)
    return {
        "device": where,
        "threads": torch.get_num_threads(),
        "amp": plan.amp,
        "compile": getattr(plan, "compile", False),
        "torch": torch.__version__,
    }


def record_numerics(
    directory: str | os.PathLike, now: dict, log: MetricsLog, step: int, continuing: bool
) -> dict:
    """Record this process's numerics `now`; returns what changed ({name: [before, now]}).

    A run that starts (or starts again from nothing: `continuing` False) writes them to run_state.json.
    A run that continues from kept work compares them with those that computed it: the last `resume`
    event still in metrics.jsonl (a resume cuts the log back to its checkpoint), else the start's.
    Rank 0 records; the other processes return {}.
    """
    if idist.get_rank() != 0:
        return {}
    state = read_state(directory)
    if not continuing or "numerics" not in state:  # (a run started before numerics were recorded)
        update_state(directory, numerics=now, resumes=[])
        return {}
    before = computed_with(state, log)
    changed = {name: [before.get(name), value] for name, value in now.items() if before.get(name) != value}
    if changed:
        log.log("resume", step, changed=changed, numerics=now)
        update_state(directory, resumes=[*state.get("resumes", []), {"step": step, "changed": changed}])
        said = ", ".join(f"{name} {old} → {new}" for name, (old, new) in changed.items())
        print(f"note: resuming at step {step} with {said} (recorded in metrics.jsonl and run_state.json):")
        print("      the result may differ from an uninterrupted run's")
    return changed


def computed_with(state: dict, log: MetricsLog) -> dict:
    """The numerics that computed a run's kept work: the last `resume` event's in `log`, else the start's
    (`state`, run_state.json's)."""
    events = MetricsLog.read(log.path) if Path(log.path).exists() else []
    resumes = [e["numerics"] for e in events if e["event"] == "resume"]
    return resumes[-1] if resumes else state["numerics"]
