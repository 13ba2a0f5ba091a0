"""`data.lm_data`: the pretraining batches; batch i depends only on (seed, i); the causal batch's labels."""

from __future__ import annotations

import torch

from minitransformer.config import IGNORE_INDEX
from minitransformer.data.lm_data import BlockBatches, lm_batch
from minitransformer.training.engine import scored_targets


class Blocks:
    """Twenty blocks of 6 tokens, block k holding the ids k, k, ... (the epoch is recorded, not used)."""

    def __len__(self) -> int:
        return 20

    def __getitem__(self, k: int) -> torch.Tensor:
        return torch.full((6,), k)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


def test_batches_from_any_start_are_the_batches_a_full_run_sees():
    batches = BlockBatches(Blocks(), batch_size=4, seed=3)
    full = batches.iterate(0)
    seen = [next(full) for _ in range(12)]  # 5 batches an epoch: into the third epoch
    resumed = batches.iterate(7)
    assert all(torch.equal(next(resumed), seen[i]) for i in range(7, 12))
    first_epoch = torch.cat(seen[:5])[:, 0]
    assert sorted(first_epoch.tolist()) == list(range(20))  # each block once an epoch


def test_causal_labels_ignore_the_first_token_so_the_count_is_the_targets(tiny_config):
    class NoMask:
        special_ids = {"pad": 0}

    prepare = lm_batch(tiny_config, NoMask(), mlm_probability=0.15)
    x = torch.randint(1, tiny_config.vocab_size, (3, 7))
    batch = prepare(x)
    assert torch.equal(batch["input_ids"], x) and torch.equal(batch["labels"][:, 1:], x[:, 1:])
    assert (batch["labels"][:, 0] == IGNORE_INDEX).all()
    assert scored_targets(batch) == 3 * 6  # position t predicts t + 1: T - 1 targets a row
