"""`training.engine`: the trainer (accumulation, clipping, fp16, DDP syncs once per step), the lr finder,
the schedules, device and precision checks."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import sys
from unittest import mock

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from ignite.engine import Engine, Events
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel

from minitransformer import FineTuningConfig, TransformerConfig, TransformerWithClfHead, TransformerWithLMHead
from minitransformer.data.masking import mask_tokens
from minitransformer.runs.metrics_log import MetricsLog
from minitransformer.training.engine import (
    check_amp,
    cpu_has_bf16,
    create_trainer,
    find_lr,
    resolve_amp,
    split_rows,
    warmup_cosine,
    warmup_linear,
    warmup_stable_decay,
)


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


def test_warmup_stable_decay_holds_the_peak_then_decays_linearly_over_the_last_fifth():
    trace = lr_trace(warmup_stable_decay, steps=20)  # 3 warm-up steps; the decay starts at step 16
    assert [high for high, _ in trace[:4]] == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])
    assert all(high == pytest.approx(1.0) for high, _ in trace[3:17])  # cosine: 0.13 at step 16
    assert [high for high, _ in trace[17:]] == pytest.approx([0.75, 0.5, 0.25])  # 0 at step 20
    assert all(low == pytest.approx(high / 2) for high, low in trace)


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


@pytest.mark.parametrize("max_iters", [25, 30])  # ends inside the third epoch / at its end
def test_the_progress_bar_is_closed_when_a_run_ends_so_later_lines_start_on_their_own(capsys, max_iters):
    """A run given in steps ended inside an epoch with its bar still open: pretrain's "done in ..."
    was printed onto the bar's line (seen in the README's main command)."""
    from minitransformer.training.engine import attach_progress

    engine = Engine(lambda e, batch: {"loss": 1.0})
    attach_progress(engine)
    engine.run(range(10), max_iters=max_iters, epoch_length=10)
    print("done", file=sys.stderr)
    err = capsys.readouterr().err
    assert err.endswith("\ndone\n"), err[-200:]


def lm_loss(model, batch):
    return model(batch["input_ids"], labels=batch["labels"])[1]


def clf_loss(model, batch):
    return model(
        batch["input_ids"],
        batch["clf_tokens_mask"],
        clf_labels=batch["labels"],
        padding_mask=batch["padding_mask"],
    )[1]


def causal_case(config):
    x = torch.randint(4, config.vocab_size, (3, 12))  # 3 rows: micro-batches of 2 and 1
    labels = x.clone()
    labels[:, 0] = -100  # nobody's next token
    labels[1, 7:] = -100  # and a padded tail
    return TransformerWithLMHead(config), lm_loss, {"input_ids": x, "labels": labels}, None


def mlm_case(config):
    config = dataclasses.replace(config, mlm=True)
    x = torch.randint(4, config.vocab_size, (4, 12))

    def mask(batch):  # drawn after the step seeds the RNG, for the whole batch at once
        inputs, labels = mask_tokens(batch, config.vocab_size, [0, 1, 2], 3, mlm_probability=0.3)
        return {"input_ids": inputs, "labels": labels}

    return TransformerWithLMHead(config), lm_loss, x, mask


def classification_case(config):
    lengths = torch.tensor([3, 12, 7])  # 3 questions padded to 12: micro-batches of 2 and 1
    x = torch.randint(4, config.vocab_size, (3, 12))
    padding = torch.arange(12)[None, :] >= lengths[:, None]
    clf = torch.zeros_like(padding)
    clf[torch.arange(3), lengths - 1] = True  # the classification token ends each question
    batch = {
        "input_ids": x,
        "padding_mask": padding,
        "clf_tokens_mask": clf,
        "labels": torch.tensor([0, 2, 1]),
    }
    model = TransformerWithClfHead(config, FineTuningConfig(num_classes=3, dropout=0.0))
    return model, clf_loss, batch, None


def one_sgd_step(model, loss_fn, batch, prepare, accumulation_steps: int, max_norm=None):
    """The parameters after one plain-SGD step (lr 1: the change is minus the gradient) and the output."""
    model = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    trainer = create_trainer(
        model, optimizer, loss_fn, prepare, accumulation_steps=accumulation_steps, max_norm=max_norm
    )
    trainer.run([batch], max_epochs=1)
    return {k: v.detach().clone() for k, v in model.named_parameters()}, trainer.state.output


@pytest.mark.parametrize("case", [causal_case, mlm_case, classification_case])
def test_accumulating_two_micro_batches_equals_one_batch(case, tiny_config):
    """Micro-batches scoring unequal numbers of targets still give the big batch's gradient."""
    model, loss_fn, batch, prepare = case(dataclasses.replace(tiny_config, dropout=0.0))
    whole, out_whole = one_sgd_step(model, loss_fn, batch, prepare, accumulation_steps=1)
    split, out_split = one_sgd_step(model, loss_fn, batch, prepare, accumulation_steps=2)
    for name in whole:
        assert torch.allclose(whole[name], split[name], atol=1e-6, rtol=0), name
    assert out_split["loss"] == pytest.approx(out_whole["loss"], abs=1e-6)
    assert out_split["grad_norm"] == pytest.approx(out_whole["grad_norm"], rel=1e-5)


def test_lr_finder_restores_the_weights_and_the_optimizer(tiny_config):
    torch.manual_seed(0)
    model, loss_fn, batch, _ = causal_case(tiny_config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    trainer = create_trainer(model, optimizer, loss_fn)
    try:
        lr = find_lr(trainer, model, optimizer, [batch] * 20, num_iter=20, start_lr=1e-5, end_lr=10.0)
    except ValueError:  # no descent to suggest on this toy batch: the restoring is what is tested
        lr = 1e-3
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert optimizer.param_groups[0]["lr"] == pytest.approx(lr) and not optimizer.state  # no moments left


def test_fp16_steps_are_unscaled_before_the_norm_and_the_update(tiny_config):
    """With fp16 autocast the GradScaler's factor (65536 at first) never reaches the norm or the weights."""
    model, loss_fn, batch, _ = causal_case(dataclasses.replace(tiny_config, dropout=0.0))
    fp32, out32 = one_sgd_step(model, loss_fn, batch, None, 1)
    fp16 = copy.deepcopy(model)
    optimizer = torch.optim.SGD(fp16.parameters(), lr=1.0)
    trainer = create_trainer(
        fp16, optimizer, loss_fn, max_norm=None, device=torch.device("cpu"), amp_dtype=torch.float16
    )
    trainer.run([batch], max_epochs=1)
    assert trainer.state.output["grad_norm"] == pytest.approx(out32["grad_norm"], rel=1e-3)
    assert trainer.state.output["loss"] == pytest.approx(out32["loss"], rel=1e-3)
    for name, p in fp16.named_parameters():
        assert torch.allclose(p, fp32[name], atol=1e-3), name


def test_clipping_scales_the_step_and_the_reported_norm_is_before_clipping(tiny_config):
    model, loss_fn, batch, _ = causal_case(dataclasses.replace(tiny_config, dropout=0.0))
    reference = copy.deepcopy(model)
    lm_loss(reference, batch).backward()
    norm = torch.cat([p.grad.flatten() for p in reference.parameters() if p.grad is not None]).norm().item()
    start = {k: v.detach().clone() for k, v in model.named_parameters()}

    for max_norm, expected_step in ((None, norm), (norm / 10, norm / 10)):
        after, out = one_sgd_step(model, loss_fn, batch, None, 1, max_norm)
        step = torch.cat([(after[k] - start[k]).flatten() for k in start]).norm().item()
        assert out["grad_norm"] == pytest.approx(norm, rel=1e-4)  # always the norm before clipping
        assert step == pytest.approx(expected_step, rel=1e-4)


STEPS, ACCUMULATION = 2, 4
CONFIG = TransformerConfig(
    embed_dim=24, hidden_dim=40, num_heads=3, num_layers=2, vocab_size=50, num_max_positions=16
)


def train(sync_every_micro_batch: bool) -> tuple[int, list[torch.Tensor]]:
    """Two steps of accumulation 4 on this rank's data; the all-reduces counted, the final weights."""
    torch.manual_seed(0)
    model = DistributedDataParallel(TransformerWithLMHead(CONFIG), bucket_cap_mb=1000)  # one bucket
    all_reduces = []

    def counting_hook(state, bucket):
        all_reduces.append(bucket.index())
        return default_hooks.allreduce_hook(None, bucket)

    model.register_comm_hook(None, counting_hook)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    loss_fn = lambda m, b: m(b["input_ids"], labels=b["labels"])[1]  # noqa: E731
    trainer = create_trainer(model, optimizer, loss_fn, accumulation_steps=ACCUMULATION)
    data = torch.Generator().manual_seed(dist.get_rank())
    batches = [torch.randint(0, 50, (8, 16), generator=data) for _ in range(STEPS)]
    old = mock.patch("minitransformer.training.engine.gradient_sync", lambda *_: contextlib.nullcontext())
    with old if sync_every_micro_batch else contextlib.nullcontext():
        trainer.run([{"input_ids": x, "labels": x} for x in batches], max_epochs=1)
    return len(all_reduces), [p.detach().clone() for p in model.module.parameters()]


def worker(rank: int, init_file: str, results: dict) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    torch.set_num_threads(1)
    try:
        count, weights = train(sync_every_micro_batch=False)
        old_count, old_weights = train(sync_every_micro_batch=True)
        max_diff = max(float((a - b).abs().max()) for a, b in zip(weights, old_weights))
        results[rank] = (count, old_count, max_diff)
    finally:
        dist.destroy_process_group()


def test_accumulation_all_reduces_once_per_step_with_the_same_weights(tmp_path):
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(worker, args=(str(tmp_path / "init"), results), nprocs=2)
        results = dict(results)
    for rank in (0, 1):
        count, old_count, max_diff = results[rank]
        assert old_count == STEPS * ACCUMULATION  # what the trainer did before: one per micro-batch
        assert count == STEPS  # now: one per optimizer step
        assert max_diff <= 1e-6


def test_amp_auto_is_bf16_exactly_where_the_cpu_has_it(monkeypatch):
    import minitransformer.training.engine as engine

    cpu = torch.device("cpu")
    monkeypatch.setattr(engine, "cpu_has_bf16", lambda: True)
    assert resolve_amp("auto", cpu)[0] == "bf16"
    monkeypatch.setattr(engine, "cpu_has_bf16", lambda: False)
    assert resolve_amp("auto", cpu)[0] == "none"
    assert resolve_amp("none", cpu) == ("none", "as asked")  # --amp none keeps fp32, whatever the CPU


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bfloat16 (AVX512-BF16/AMX)")
def test_a_short_bf16_run_ends_within_two_percent_of_fp32(tiny_config):
    """30 AdamW steps on a learnable sequence: bf16 autocast's final loss is within 2 % of fp32's."""
    config = dataclasses.replace(tiny_config, dropout=0.0, init_scheme="gpt2")
    x = torch.arange(48).remainder(config.vocab_size).repeat(4, 1)[:, :16]  # (4, 16)
    batch = {"input_ids": x, "labels": x}

    def final_loss(amp_dtype):
        torch.manual_seed(0)
        model = TransformerWithLMHead(config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
        trainer = create_trainer(model, optimizer, lm_loss, amp_dtype=amp_dtype)
        trainer.run([batch] * 30, max_epochs=1)
        return trainer.state.output["loss"]

    fp32, bf16 = final_loss(None), final_loss(torch.bfloat16)
    assert fp32 < 2.0  # it learned (from ln(50) = 3.9)
    assert abs(bf16 - fp32) <= 0.02 * fp32
