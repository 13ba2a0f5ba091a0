"""The data of language-model pretraining: the run's tokenizer, the binarized splits, the training
batches and the batch the model sees (inputs and labels).

    text files ─► run_tokenizer ─► binarize_splits (token ids on disk) ─► LMBlockDataset ─► BlockBatches
               ─► lm_batch: {"input_ids", "labels"} (B, T), causal or masked

In a distributed run one process writes each file (tokenizer, token cache) and the others wait, then read it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import ignite.distributed as idist
import torch

from ..checkpoint import check_tokenizer_matches
from ..checks import check_token_ids
from ..config import IGNORE_INDEX, TransformerConfig
from ..runs.run_state import kill_point
from ..tokenization import Tokenizer
from .masking import mask_tokens
from .wikitext import LMBlockDataset, TokenFile, binarize, read_lines


def run_tokenizer(
    output_dir: Path,
    train_file: Path,
    *,
    resume: bool,
    init_from: Path | None,
    given: Path | None,
    kind: str,
    vocab_size: int,
    lowercase: bool,
) -> Tokenizer:
    """The run's tokenizer, saved into `output_dir`: the resumed run's, the `init_from` checkpoint's, the
    `given` one (a tokenizer.json or a model folder), or one of `kind` trained on `train_file`."""
    if resume and (output_dir / "tokenizer.json").is_file():
        return Tokenizer.from_pretrained(output_dir)
    if idist.get_rank() == 0:
        if init_from:  # continued pretraining reuses the checkpoint's tokenizer, never retrains it
            tokenizer = Tokenizer.from_pretrained(init_from)
            check_tokenizer_matches(init_from, tokenizer)
        elif given:
            path = Path(given)
            tokenizer = Tokenizer.from_pretrained(path) if path.is_dir() else Tokenizer.from_file(path)
        else:
            print(f"training a {kind} tokenizer ({vocab_size} tokens) on {train_file}")
            tokenizer = Tokenizer.train(
                read_lines(train_file),
                kind=kind,
                vocab_size=vocab_size,
                lowercase=lowercase,
            )
        tokenizer.save_pretrained(output_dir)  # the run directory always carries its own tokenizer
        kill_point("tokenizer")
    idist.barrier()
    return Tokenizer.from_pretrained(output_dir)


def binarize_splits(
    files: tuple[Path, Path], tokenizer: Tokenizer, cache_dir: Path | None
) -> tuple[TokenFile, TokenFile]:
    """The training and validation files as memory-mapped token ids, cached in `cache_dir`."""
    if idist.get_rank() == 0:  # one process writes the cache, the others then read it
        for f in files:
            binarize(f, tokenizer, cache_dir)
            kill_point("binarize")
    idist.barrier()
    train, valid = (binarize(f, tokenizer, cache_dir) for f in files)
    return train, valid


class BlockBatches:
    """Shuffled batches of LM blocks (B, T) where batch i depends only on (seed, i).

    That is what makes `--resume` exact: a restarted run asks for batches from its checkpoint's
    iteration on and gets the very batches the interrupted run would have seen. In a distributed run
    each process takes its share of the same global batch (rank r takes rows r, r+W, ...), as a
    DistributedSampler would.
    """

    def __init__(self, dataset: LMBlockDataset, batch_size: int, seed: int):
        world = idist.get_world_size()
        if batch_size % world:
            raise ValueError(f"--batch-size {batch_size} must be divisible by the {world} processes")
        if len(dataset) < batch_size:
            raise ValueError(
                f"the training split has {len(dataset)} blocks, fewer than --batch-size {batch_size}: "
                "use a smaller batch or block size"
            )
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.batches_per_epoch = len(dataset) // batch_size

    def iterate(self, start: int) -> Iterator[torch.Tensor]:
        rank, world = idist.get_rank(), idist.get_world_size()
        epoch, order = None, None
        for i in range(start, sys.maxsize):
            e, j = divmod(i, self.batches_per_epoch)
            if e != epoch:
                epoch = e
                self.dataset.set_epoch(e)
                order = torch.randperm(
                    len(self.dataset), generator=torch.Generator().manual_seed(self.seed * 7919 + e)
                )
            rows = order[j * self.batch_size : (j + 1) * self.batch_size][rank::world]
            yield torch.stack([self.dataset[int(k)] for k in rows])  # (B / world, block)


def lm_batch(
    config: TransformerConfig, tokenizer: Tokenizer, mlm_probability: float
) -> Callable[..., dict[str, torch.Tensor]]:
    """blocks (B, T) → {"input_ids", "labels"}: masked for MLM (BERT's 80/10/10), the blocks for causal.

    Causal labels are the blocks themselves (the loss shifts them: position t predicts token t + 1), with
    the first label set to IGNORE_INDEX: the first token is nobody's next token, so the loss never scores
    it either way, but counting the labels that are not ignored (`engine.scored_targets`, which weighs
    micro-batches) then gives the number of targets the loss averages over.
    """
    special = list(tokenizer.special_ids.values())
    mask_id = tokenizer.special_ids.get("mask")
    if config.mlm and mask_id is None:
        raise ValueError("--objective mlm needs a [MASK] token in the tokenizer")

    def prepare(x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        check_token_ids(x, config.vocab_size)  # on the CPU batch, before any transfer to a GPU
        if config.mlm:
            inputs, labels = mask_tokens(x, config.vocab_size, special, mask_id, mlm_probability, generator)
            return {"input_ids": inputs, "labels": labels}
        labels = x.clone()
        labels[:, 0] = IGNORE_INDEX  # not a target (see above)
        return {"input_ids": x, "labels": labels}

    return prepare
