"""Reading a trained model: where its attention heads look, and what context buys its predictions.

The functions take the attention probabilities a model returns with `output_attentions=True`: one
(B, nh, T, S) tensor per layer, row i of a head holding where token i looks (each row sums to 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def previous_token_share(attention: torch.Tensor) -> torch.Tensor:
    """The attention each head puts on the token just before, averaged over tokens and the batch.

    `attention` is (B, nh, T, S) with S == T; returns (nh,). Entry [i, i - 1] of a head is what token i
    puts on token i - 1: that is the diagonal just below the main one (offset -1), which has T - 1 entries
    (token 0 has no previous token). A perfect previous-token head scores 1.0.
    """
    below = attention.diagonal(offset=-1, dim1=-2, dim2=-1)  # (B, nh, T - 1): entries [i, i - 1]
    return below.mean(dim=(0, -1))


def attention_entropy(attention: torch.Tensor) -> torch.Tensor:
    """Each head's mean row entropy in nats, (B, nh, T, S) → (nh,); 0·log 0 counts as 0 (the causal zeros).

    0 = every row on one token; ln k = a row spread evenly over k tokens.
    """
    return -(attention * attention.clamp(min=1e-12).log()).sum(-1).mean(dim=(0, -1))


def column_share(attention: torch.Tensor, column: int) -> torch.Tensor:
    """The attention each head puts on one position (0: the first token, -1: the last), averaged over
    the attending tokens and the batch; (B, nh, T, S) → (nh,)."""
    return attention[..., column].mean(dim=(0, -1))


@torch.no_grad()
def next_token_probability(
    model: torch.nn.Module, windows: torch.Tensor, context_sizes: Sequence[int]
) -> torch.Tensor:
    """How likely the causal LM `model` finds the true next token when it sees only the last k tokens.

    `windows` is (N, T): each row a prompt of T - 1 tokens followed by the token that really came next.
    Returns (len(context_sizes), N): row j holds p(true next token | the last context_sizes[j] tokens).
    """
    prompts, targets = windows[:, :-1], windows[:, -1]  # (N, T - 1), (N,)
    rows = []
    for k in context_sizes:
        if not 1 <= k <= prompts.shape[1]:
            raise ValueError(f"context size {k} is outside 1..{prompts.shape[1]} (the prompts' length)")
        logits = model(prompts[:, -k:])  # (N, k, V)
        rows.append(logits[:, -1].softmax(-1).gather(1, targets[:, None])[:, 0])  # (N,)
    return torch.stack(rows)
