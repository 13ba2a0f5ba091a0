"""Masked-LM corruption (BERT): pick 15 % of the real tokens, hide most of them, predict them all."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ..config import IGNORE_INDEX


def mask_tokens(
    input_ids: torch.Tensor,
    vocab_size: int,
    special_ids: Iterable[int],
    mask_id: int,
    mlm_probability: float = 0.15,
    generator: torch.Generator | None = None,
    padding_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (inputs, labels) for masked-LM training; `input_ids` is left untouched.

    Each position that is neither a special token nor padding (`padding_mask` True) is selected with
    probability `mlm_probability`. Selected positions: 80 % become `mask_id`, 10 % a random
    non-special token, 10 % stay unchanged; their label is the original id. Other labels are -100.
    All randomness comes from `generator` (same seed, same mask).
    """
    # input_ids, padding_mask: (B, T)
    if not 0.0 < mlm_probability <= 1.0:
        raise ValueError(f"mlm_probability={mlm_probability} must be in (0, 1]")
    device = input_ids.device
    special = torch.tensor(sorted({*special_ids, mask_id}), dtype=torch.long, device=device)
    regular = torch.ones(vocab_size, dtype=torch.bool, device=device)
    regular[special[special < vocab_size]] = False
    replacements = regular.nonzero().squeeze(1)  # ids a "random token" may take
    if len(replacements) == 0:
        raise ValueError(f"vocab_size={vocab_size} leaves no non-special token to sample")

    def draw(p: float) -> torch.Tensor:  # (B, T) bool, True with probability p
        return torch.rand(input_ids.shape, generator=generator, device=device) < p

    candidates = ~torch.isin(input_ids, special)
    if padding_mask is not None:
        candidates &= ~padding_mask
    selected = candidates & draw(mlm_probability)
    to_mask = selected & draw(0.8)
    to_random = selected & ~to_mask & draw(0.5)

    labels = input_ids.masked_fill(~selected, IGNORE_INDEX)
    inputs = input_ids.masked_fill(to_mask, mask_id)
    random_tokens = replacements[
        torch.randint(len(replacements), input_ids.shape, generator=generator, device=device)
    ]
    inputs = torch.where(to_random, random_tokens, inputs)
    return inputs, labels
