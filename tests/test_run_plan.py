"""The run plan: decided once from the options, read-only, and what training_args.json records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minitransformer.runs.options import RunPlan
from pretrain.cli import parse_args
from pretrain.run import plan_run


def test_a_plan_is_read_only_and_replace_makes_a_new_one():
    plan = RunPlan(lr=1e-3, output_dir=Path("runs/x"))
    with pytest.raises(AttributeError, match="read-only"):
        plan.lr = 2e-3
    with pytest.raises(AttributeError, match="read-only"):
        del plan.lr
    changed = plan.replace(lr=2e-3)
    assert (plan.lr, changed.lr, changed.output_dir) == (1e-3, 2e-3, Path("runs/x"))
    assert changed.to_json() == {"lr": 2e-3, "output_dir": "runs/x"}  # JSON-ready: paths as strings


def test_planning_decides_splits_and_objective_without_touching_the_options(corpus, tmp_path):
    args = parse_args(["--dataset", str(corpus.root), "--output-dir", str(tmp_path / "run")])
    options = dict(vars(args))
    plan = plan_run(args)
    assert vars(args) == options  # the parsed options are never rewritten
    assert (plan.train_split, plan.valid_split, plan.objective) == ("valid", "test", "clm")  # no train split
    assert plan.splits == f"trained on {corpus.root}/valid, evaluated on {corpus.root}/test"
    decided = {"train_split", "valid_split", "objective"}  # unset in the options: planning chooses
    assert all(getattr(plan, k) == v for k, v in options.items() if k not in decided)
    json.dumps(plan.to_json())  # what training_args.json will hold


def test_resume_plans_from_the_runs_own_file_with_this_commands_hardware(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    saved = {
        "lr": 0.0123,
        "threads": 8,
        "device": "cuda",
        "splits": "trained on x/valid",
        "output_dir": "old",
    }
    (run / "training_args.json").write_text(json.dumps(saved))
    plan = plan_run(parse_args(["--resume", str(run), "--threads", "1", "--lr", "5"]))
    assert (plan.lr, plan.splits) == (0.0123, "trained on x/valid")  # the run's own values
    assert (plan.threads, plan.device) == (1, "auto")  # hardware options come from this command
    assert plan.output_dir == plan.resume == run
    with pytest.raises(FileNotFoundError, match="no training_args.json"):
        plan_run(parse_args(["--resume", str(tmp_path)]))
