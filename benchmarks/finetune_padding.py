"""Item 3: one TREC-6 fine-tuning epoch, dynamic padding + length buckets vs padding to the maximum.

  - ours: `LengthBucketSampler` batches of similar-length questions, each padded to its own longest;
  - baseline: shuffled batches, every question padded to the dataset's longest
    (`collate_classification(..., pad_to=max_len)`), the usual fixed-shape recipe.

Both sides start from the same randomly initialised tiny-preset classifier (`TransformerWithClfHead`,
seed 0; no pretraining, so the accuracies are those of one epoch from scratch) and the same AdamW.
Their training steps alternate (ours, baseline, ours, …) so machine load hits both alike. Reported:
positions processed (padding included), training wall time, and test accuracy after the epoch.
"""

from __future__ import annotations

import time
from functools import partial

import torch

from benchmarks import Result, machine_line
from benchmarks.throughput import QUICK, TINY
from minitransformer.config import FineTuningConfig
from minitransformer.data.classification import (
    ClassificationDataset,
    LengthBucketSampler,
    collate_classification,
    encode_for_classification,
    load_trec,
)
from minitransformer.model import TransformerWithClfHead
from minitransformer.tokenization import Tokenizer

BATCH_SIZE = 32


def accuracy(model: TransformerWithClfHead, loader: torch.utils.data.DataLoader) -> float:
    """Fraction of correctly classified rows."""
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for batch in loader:
            logits = model(batch["input_ids"], batch["clf_tokens_mask"], padding_mask=batch["padding_mask"])
            correct += int((logits.argmax(-1) == batch["labels"]).sum())
            total += len(batch["labels"])
    return correct / total


def run(quick: bool = False, data_dir: str | None = None) -> list[Result]:
    """Train both sides for one epoch, interleaved step by step; print the comparison."""
    train, test = load_trec(data_dir)
    if quick:
        train, test = train.subset(range(0, len(train), 20)), test.subset(range(0, len(test), 5))
    tokenizer = Tokenizer.train(train.texts, vocab_size=8000)
    max_positions = 128
    train_ids = encode_for_classification(train.texts, tokenizer, max_positions)
    test_ids = encode_for_classification(test.texts, tokenizer, max_positions)
    train_set = ClassificationDataset(train_ids, train.labels)
    max_len = max(train_set.lengths())
    collate = partial(collate_classification, pad_id=tokenizer.pad_id, cls_id=tokenizer.cls_id)
    loaders = {
        "ours": torch.utils.data.DataLoader(
            train_set,
            batch_sampler=LengthBucketSampler(train_set.lengths(), BATCH_SIZE, seed=0),
            collate_fn=collate,
        ),
        "baseline": torch.utils.data.DataLoader(
            train_set,
            batch_size=BATCH_SIZE,
            shuffle=True,
            generator=torch.Generator().manual_seed(0),
            collate_fn=partial(collate, pad_to=max_len),
        ),
    }
    test_loader = torch.utils.data.DataLoader(
        ClassificationDataset(test_ids, test.labels), batch_size=64, collate_fn=collate
    )
    shape = QUICK if quick else TINY
    config = shape.config(num_max_positions=max_positions, vocab_size=tokenizer.vocab_size)
    models, optimizers = {}, {}
    for side in loaders:
        torch.manual_seed(0)  # the same initial weights and dropout stream for both sides
        models[side] = TransformerWithClfHead(config, FineTuningConfig(num_classes=len(train.label_names)))
        optimizers[side] = torch.optim.AdamW(models[side].parameters(), lr=5e-4, weight_decay=0.01)

    seconds = dict.fromkeys(loaders, 0.0)
    positions = dict.fromkeys(loaders, 0)
    for batches in zip(*loaders.values()):
        for side, batch in zip(loaders, batches):
            model, optimizer = models[side], optimizers[side]
            model.train()
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            _, loss = model(
                batch["input_ids"],
                batch["clf_tokens_mask"],
                batch["labels"],
                padding_mask=batch["padding_mask"],
            )
            loss.backward()
            optimizer.step()
            seconds[side] += time.perf_counter() - start
            positions[side] += batch["input_ids"].numel()
    real_tokens = sum(train_set.lengths())
    print(
        f"\n[finetune-padding] TREC-6 train {len(train)} questions, test {len(test)}, batch {BATCH_SIZE}, "
        f"longest question {max_len} tokens, {real_tokens:,} real tokens | {machine_line()}"
    )
    print(f"{'side':<9} {'positions':>10} {'padding':>8} {'train s':>8} {'test acc':>9}")
    accuracies = {side: accuracy(models[side], test_loader) for side in loaders}
    for side in loaders:
        padding = 1 - real_tokens / positions[side]
        print(f"{side:<9} {positions[side]:10,} {padding:8.1%} {seconds[side]:8.1f} {accuracies[side]:9.1%}")
    print(
        f"positions ratio ours/baseline {positions['ours'] / positions['baseline']:.2f}x, "
        f"speed-up {seconds['baseline'] / seconds['ours']:.2f}x"
    )
    note = (
        f"positions {positions['ours'] / positions['baseline']:.2f}x, "
        f"test accuracy ours {accuracies['ours']:.1%}, baseline {accuracies['baseline']:.1%}"
    )
    return [Result("finetune-padding", seconds["ours"], seconds["baseline"], "s/epoch", False, note)]
