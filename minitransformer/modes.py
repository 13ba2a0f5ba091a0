"""`evaluating(model)`: a model in eval mode (no dropout) for the length of a `with` block.

Generation, the explorer and the induction probe read a model that may be in the middle of training:
each switches it to eval mode and must hand it back in the mode it found it, even when it fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """The model in eval mode inside the block, its earlier mode (train or eval) restored after it."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
