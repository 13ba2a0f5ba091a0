"""The Ignite building blocks shared by pretrain and adapt."""

from __future__ import annotations

import math

import pytest
import torch
from ignite.engine import Engine, Events

from minitransformer.runs.metrics_log import MetricsLog
from minitransformer.training.engine import check_amp, split_rows, warmup_cosine, warmup_linear


def lr_trace(make_schedule, steps: int = 10) -> list[list[float]]:
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    optimizer = torch.optim.SGD([{"params": [params[0]], "lr": 1.0}, {"params": [params[1]], "lr": 0.5}])
    scheduler = make_schedule(optimizer, 3, steps)
    engine, trace = Engine(lambda e, b: None), []
    engine.add_event_handler(Events.ITERATION_STARTED, scheduler)
    engine.add_event_handler(
        Events.ITERATION_COMPLETED, lambda _: trace.append([g["lr"] for g in optimizer.param_groups])
    )
    engine.run([0] * steps, max_epochs=1)
    return trace


@pytest.mark.parametrize("make_schedule", [warmup_cosine, warmup_linear])
def test_schedules_warm_up_then_decay_and_keep_group_ratios(make_schedule):
    trace = lr_trace(make_schedule)
    assert trace[0] == [0.0, 0.0]
    assert trace[3] == pytest.approx([1.0, 0.5])  # the peak, reached after the warm-up
    for high, low in trace[1:]:
        assert low == pytest.approx(high / 2)  # layer-wise lr ratios survive the schedule
    peaks = [high for high, _ in trace[3:]]
    assert peaks == sorted(peaks, reverse=True) and peaks[-1] < 0.2


def test_cosine_shape():
    trace = lr_trace(warmup_cosine)  # 3 warm-up steps, then cosine from 1 toward 0 over 7 steps
    for k in range(7):
        assert trace[3 + k][0] == pytest.approx(0.5 * (1 + math.cos(math.pi * k / 7)))


def test_split_rows_keeps_rows_together():
    batch = {"input_ids": torch.arange(12).view(6, 2), "labels": torch.arange(6)}
    parts = split_rows(batch, 3)
    assert len(parts) == 3 and all(p["input_ids"].shape == (2, 2) for p in parts)
    assert torch.equal(torch.cat([p["labels"] for p in parts]), batch["labels"])
    assert split_rows(batch, 1) == [batch]


def test_metrics_log_resumes_with_the_events_of_its_checkpoint(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    log.log("train", 10, loss=0.1)
    saved = log.state_dict()  # what a training checkpoint at step 10 records
    log.log("valid", 10, loss=0.2)  # logged after the checkpoint: replayed by the resumed run
    log.log("train", 20, loss=0.05)
    resumed = MetricsLog(path)
    resumed.load_state_dict(saved)
    resumed.log("valid", 10, loss=0.2)
    assert [(e["event"], e["step"]) for e in MetricsLog.read(path)] == [("train", 10), ("valid", 10)]
    assert resumed.state_dict() == {"events": 2}


def test_amp_choices_are_checked():
    assert check_amp("none", torch.device("cpu")) is None
    with pytest.raises(ValueError, match="fp16 needs a CUDA GPU"):
        check_amp("fp16", torch.device("cpu"))
    with pytest.raises(ValueError, match="expected one of"):
        check_amp("int8", torch.device("cpu"))


def test_progress_epoch_counts_the_epochs_of_a_run_given_in_steps():
    from minitransformer.training.engine import epoch_of

    seen = []
    engine = Engine(lambda e, batch: None)
    engine.add_event_handler(Events.EPOCH_STARTED, lambda e: seen.append(epoch_of(e)))
    engine.run(range(10), max_iters=25, epoch_length=10)  # 2 full epochs and a partial third
    assert seen == ["1/3", "2/3", "3/3"]
    by_epochs = Engine(lambda e, batch: None)
    by_epochs.add_event_handler(Events.EPOCH_STARTED, lambda e: seen.append(epoch_of(e)))
    by_epochs.run(range(10), max_epochs=2)
    assert seen[-2:] == ["1/2", "2/2"]
