"""`runs.numerics`: what decides a run's numbers besides its options, recorded, and compared on --resume."""

from __future__ import annotations

import torch

from minitransformer.runs.metrics_log import MetricsLog
from minitransformer.runs.numerics import numerics, record_numerics
from minitransformer.runs.run_state import read_state, write_state
from pretrain.cli import PretrainPlan, parse_args

START = {"device": "cpu", "threads": 1, "amp": "none", "compile": False, "torch": torch.__version__}


def test_numerics_of_this_process():
    plan = PretrainPlan(**vars(parse_args(["--amp", "none"])))
    assert numerics(plan, torch.device("cpu")) == {
        **START,
        "threads": torch.get_num_threads(),
    }


def test_a_resume_that_changes_the_numerics_is_recorded(tmp_path):
    """Issue 33: a resume with --threads 2 ended with a third model, and nothing said so."""
    write_state(tmp_path, "running", step=0)
    log = MetricsLog(tmp_path / "metrics.jsonl")
    assert record_numerics(tmp_path, START, log, 0, continuing=False) == {}
    log.log("valid", 10, loss=1.0)
    assert record_numerics(tmp_path, START, log, 10, continuing=True) == {}  # the same: nothing to say
    assert [e["event"] for e in MetricsLog.read(log.path)] == ["valid"]

    more = {**START, "threads": 2}
    assert record_numerics(tmp_path, more, log, 10, continuing=True) == {"threads": [1, 2]}
    assert MetricsLog.read(log.path)[-1] == {
        "event": "resume",
        "step": 10,
        "changed": {"threads": [1, 2]},
        "numerics": more,
    }
    write_state(tmp_path, "complete", step=20)  # the recorded numerics outlive the lifecycle's writes
    state = read_state(tmp_path)
    assert state["numerics"] == START and state["resumes"] == [{"step": 10, "changed": {"threads": [1, 2]}}]


def test_a_resume_compares_with_the_numerics_of_the_work_it_keeps(tmp_path):
    write_state(tmp_path, "running", step=0)
    log = MetricsLog(tmp_path / "metrics.jsonl")
    record_numerics(tmp_path, START, log, 0, continuing=False)
    log.log("valid", 10, loss=1.0)
    more = {**START, "threads": 2}
    record_numerics(tmp_path, more, log, 10, continuing=True)
    assert record_numerics(tmp_path, more, log, 20, continuing=True) == {}  # 2 threads since step 10
    log.keep(lambda index, _: index < 1)  # resumed from step 10 again: the 2-thread resume is undone
    assert record_numerics(tmp_path, START, log, 10, continuing=True) == {}
    assert record_numerics(tmp_path, START, log, 0, continuing=False) == {}  # starting over: a new record
    assert read_state(tmp_path)["resumes"] == []
