"""Sampling text from a causal language model, with a key/value cache.

Without a cache, every new token re-runs the model over the whole prefix (O(T²) work per token);
with it, each step feeds only the newest token and reuses the keys and values of earlier positions.
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real

import torch
from torch import Tensor

from .checks import check_token_ids
from .modes import evaluating


def filter_logits(logits: Tensor, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """Set to -inf every logit outside the top-k and outside the nucleus of mass top_p. (B, V) → (B, V)."""
    if top_k is not None and top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # drop a token when the tokens ranked above it already reach top_p (the first one always stays)
        drop_sorted = (cumulative - sorted_logits.softmax(dim=-1)) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def _is_int(value) -> bool:
    return isinstance(value, (int, Integral)) and not isinstance(value, bool)


def check_sampling_args(
    ids: Tensor, max_new_tokens: int, top_p: float | None, temperature: float = 1.0, top_k: int | None = None
) -> None:
    """Raise ValueError, naming the value and its range, for arguments `generate` cannot honour."""
    if ids.numel() == 0:
        raise ValueError(
            f"the prompt has shape {tuple(ids.shape)}: give at least one sequence of at least one token id"
        )
    if not _is_int(max_new_tokens) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens={max_new_tokens!r}: must be a whole number, 0 or more")
    if isinstance(temperature, bool) or not isinstance(temperature, Real) or not 0 <= temperature < math.inf:
        raise ValueError(
            f"temperature={temperature!r}: must be a finite number >= 0 (0 is greedy decoding, 1 the model's "
            "own distribution)"
        )
    if top_k is not None and (not _is_int(top_k) or top_k < 1):
        raise ValueError(f"top_k={top_k!r}: must be a whole number >= 1 (None turns top-k off)")
    if top_p is not None and (
        isinstance(top_p, bool) or not isinstance(top_p, Real) or not 0.0 < top_p <= 1.0
    ):
        raise ValueError(
            f"top_p={top_p}: must be in (0, 1] (1 keeps every token; None turns nucleus sampling off)"
        )


@torch.no_grad()
def generate(
    model,
    prompt_ids: Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    use_cache: bool = True,
    suppress_ids: list[int] | tuple[int, ...] = (),
) -> Tensor:
    """Continue `prompt_ids` ((T,) or (B, T)) by up to `max_new_tokens` tokens; returns (B, T + new).

    temperature=0 means greedy decoding; top_p in (0, 1] keeps the smallest set of tokens whose
    probability reaches it (nucleus sampling). Generation stops at the model's num_max_positions
    with a warning saying so. `suppress_ids` are never generated (their logits are set to -inf), e.g.
    `[tokenizer.unk_id]` for a model trained on text where rare words were replaced by `<unk>`. Bad
    arguments, and masked-LM models (which cannot generate left to right), raise ValueError.
    """
    config = model.config
    if config.mlm:
        raise ValueError(
            "this model was trained as a masked LM (config.mlm=True): it cannot generate text left "
            "to right; use a causal model (mlm=False)"
        )
    ids = prompt_ids.unsqueeze(0) if prompt_ids.dim() == 1 else prompt_ids  # (B, T)
    check_sampling_args(ids, max_new_tokens, top_p, temperature, top_k)
    check_token_ids(ids, config.vocab_size)  # once per call: the forward does not, on a GPU
    room = config.num_max_positions - ids.size(1)
    if room <= 0:
        raise ValueError(
            f"the prompt has {ids.size(1)} tokens, the model's context is num_max_positions="
            f"{config.num_max_positions}: shorten the prompt"
        )
    if max_new_tokens > room:
        warnings.warn(
            f"stopping after {room} new tokens instead of {max_new_tokens}: prompt ({ids.size(1)}) + new "
            f"tokens would exceed num_max_positions={config.num_max_positions}",
            stacklevel=2,
        )
        max_new_tokens = room
    generator = None
    if seed is not None:
        generator = torch.Generator(device=ids.device).manual_seed(seed)

    with evaluating(model):
        past, step_input = None, ids
        for _ in range(max_new_tokens):
            if use_cache:
                out = model.transformer(step_input, past_key_values=past, use_cache=True)
                past = out.past_key_values
            else:
                out = model.transformer(ids)
            logits = model.lm_head(out.last_hidden_state[:, -1]).float()  # (B, V)
            if suppress_ids:
                logits[:, list(suppress_ids)] = float("-inf")
            if temperature == 0:
                next_ids = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
            else:
                probs = filter_logits(logits / temperature, top_k, top_p).softmax(dim=-1)
                next_ids = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
            ids = torch.cat([ids, next_ids], dim=1)
            step_input = next_ids
    return ids
