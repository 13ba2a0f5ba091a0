"""DDP with gradient accumulation: one all-reduce per optimizer step (`no_sync` on the others)."""

from __future__ import annotations

import contextlib
from unittest import mock

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel

from minitransformer import TransformerConfig, TransformerWithLMHead
from minitransformer.training.engine import create_trainer

STEPS, ACCUMULATION = 2, 4
CONFIG = TransformerConfig(
    embed_dim=24, hidden_dim=40, num_heads=3, num_layers=2, num_embeddings=50, num_max_positions=16
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
