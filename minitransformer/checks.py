"""Checks of what users feed the model (token ids, labels): one error naming the value, the limit and the fix.

They read tensor values, so they run on CPU tensors only (on a GPU reading a value waits for the device).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .config import IGNORE_INDEX


def check_token_ids(x: Tensor, vocab_size: int) -> None:
    """Refuse token ids outside [0, vocab_size) with the fix; call it on a CPU batch (it reads values)."""
    if x.numel() == 0:
        return
    low, high = int(x.min()), int(x.max())
    if low < 0 or high >= vocab_size:
        raise ValueError(
            f"token id {low if low < 0 else high} is outside the vocabulary [0, {vocab_size}): check "
            "that the tokenizer matches the model (the config's vocab_size = the tokenizer's)"
        )


def check_labels(labels: Tensor, num_classes: int, name: str) -> None:
    """Refuse labels outside [0, num_classes) other than IGNORE_INDEX, naming the argument. Only a CPU tensor
    is read (on a GPU, reading values would wait for the device at every step; torch's own check then runs)."""
    if labels.device.type != "cpu" or labels.numel() == 0:
        return
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"{name} has dtype {labels.dtype}: give integer class ids (torch.long)")
    bad = labels[(labels != IGNORE_INDEX) & ((labels < 0) | (labels >= num_classes))]
    if bad.numel():
        raise ValueError(
            f"{name} holds {int(bad[0])}, outside [0, {num_classes}) (and not the ignored {IGNORE_INDEX}): "
            "check the label ids against the model's number of classes / vocabulary"
        )
