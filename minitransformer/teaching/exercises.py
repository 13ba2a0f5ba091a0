"""Checkers for the tutorials' exercises, and a reference solution for each.

A tutorial asks the learner to write a function, then calls `check_<name>(their_function)`. The
checker runs it on inputs whose answer the library knows and prints one line: "exercise passed: ...",
"exercise not passed: <what is wrong>" (it recognises the usual mistakes), or "exercise not
attempted yet" while the function still raises NotImplementedError.
The `solution_<name>` functions are the answers; try before you read them. The tests run every
tutorial with the solutions (`MINITRANSFORMER_SOLUTIONS=1`), so the checkers themselves are tested.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import torch
import torch.nn.functional as F

from minitransformer.config import FineTuningConfig, TransformerConfig
from minitransformer.data.masking import IGNORE_INDEX
from minitransformer.model import TransformerWithClfHead
from minitransformer.teaching.inspection import previous_token_share
from minitransformer.training.stability import llrd_parameter_groups


class _NotPassed(Exception):
    """What the learner's answer got wrong, in one sentence."""


def use_solutions() -> bool:
    """True when the tutorials should run the reference solutions (the tests set MINITRANSFORMER_SOLUTIONS=1)."""
    return os.environ.get("MINITRANSFORMER_SOLUTIONS") == "1"


def _verdict(name: str, check: Callable[[], str]) -> None:
    """Run `check` (returns what passed, raises _NotPassed) and print the verdict in one line."""
    try:
        print(f"exercise passed: {name}: {check()}")
    except NotImplementedError:
        print(f"exercise not attempted yet: {name} (write the function above, then rerun both cells)")
    except _NotPassed as problem:
        print(f"exercise not passed: {name}: {problem}")
    except Exception as error:  # the learner's code failed: say how, without a traceback to dig through
        print(f"exercise not passed: {name}: your function raised {type(error).__name__}: {error}")


def _close(a, b) -> bool:
    return (
        isinstance(a, torch.Tensor) and a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=1e-5)
    )


# ----------------------------------------------------------------------------------------------
# Tutorial 1: scaled dot-product attention with a mask
# ----------------------------------------------------------------------------------------------


def solution_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor
) -> torch.Tensor:
    """q: (B, nh, T, hs), k and v: (B, nh, S, hs), allowed: bool broadcastable to (B, nh, T, S), True =
    may attend. Returns (B, nh, T, hs)."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, nh, T, S)
    return scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1) @ v


def check_attention(fn: Callable) -> None:
    """Compare `fn(q, k, v, allowed)` with PyTorch's `scaled_dot_product_attention` under a causal +
    padding mask (True = may attend)."""

    def check() -> str:
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(2, 3, 5, 8, generator=g) for _ in range(3))
        padding = torch.tensor([[False] * 5, [False, False, False, True, True]])  # (B, S), True = pad
        allowed = torch.ones(5, 5, dtype=torch.bool).tril() & ~padding[:, None, None, :]  # (B, 1, T, S)
        answer = fn(q, k, v, allowed)
        expected = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        if _close(answer, expected):
            return "matches torch's scaled_dot_product_attention with a causal + padding mask"
        shape = tuple(answer.shape) if isinstance(answer, torch.Tensor) else type(answer).__name__
        if shape != tuple(expected.shape):
            raise _NotPassed(f"the output should be (B, nh, T, hs) = {tuple(expected.shape)}, got {shape}")
        if _close(answer, F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=1.0)):
            raise _NotPassed("the scores are not divided by sqrt(hs), the size of one head's vectors")
        if _close(answer, F.scaled_dot_product_attention(q, k, v)):
            raise _NotPassed(
                "the mask is not applied: set the scores of forbidden keys to -inf before the softmax"
            )
        raise _NotPassed("the output differs from softmax(QKᵀ/√hs, masked, over the keys: dim=-1) @ V")

    _verdict("attention", check)


# ----------------------------------------------------------------------------------------------
# Tutorial 2: the masked-LM corruption, 80 / 10 / 10
# ----------------------------------------------------------------------------------------------


def solution_mask_tokens(
    ids: torch.Tensor, mask_id: int, vocab_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Select each token with probability 0.15; of those 80 % → mask_id, 10 % → a random id, 10 % kept.
    Returns (inputs, labels), labels -100 where not selected. (The library's `mask_tokens` also skips
    special tokens and padding.)"""
    selected = torch.rand(ids.shape, generator=generator) < 0.15
    to_mask = selected & (torch.rand(ids.shape, generator=generator) < 0.8)
    to_random = selected & ~to_mask & (torch.rand(ids.shape, generator=generator) < 0.5)
    inputs = ids.masked_fill(to_mask, mask_id)
    inputs = torch.where(to_random, torch.randint(vocab_size, ids.shape, generator=generator), inputs)
    return inputs, ids.masked_fill(~selected, IGNORE_INDEX)


def check_mask_tokens(fn: Callable) -> None:
    """Check `fn(ids, mask_id, vocab_size, generator)` on 200,000 tokens: labels, and the 15 % and
    80/10/10 proportions within a few standard deviations."""

    def check() -> str:
        vocab_size, mask_id = 1000, 4
        ids = torch.randint(5, vocab_size, (200, 1000), generator=torch.Generator().manual_seed(1))
        inputs, labels = fn(ids.clone(), mask_id, vocab_size, torch.Generator().manual_seed(0))
        if inputs.shape != ids.shape or labels.shape != ids.shape:
            raise _NotPassed(f"inputs and labels should both have the shape of ids, {tuple(ids.shape)}")
        selected = labels != IGNORE_INDEX
        if not torch.equal(labels[selected], ids[selected]):
            raise _NotPassed("a selected position's label must be its original id (not the corrupted one)")
        if not torch.equal(inputs[~selected], ids[~selected]):
            raise _NotPassed("positions that are not selected (label -100) must keep their id")
        share = selected.float().mean().item()
        if abs(share - 0.15) > 0.005:
            raise _NotPassed(f"{share:.1%} of the tokens are selected (label ≠ -100); expected 15 %")
        chosen, corrupted = ids[selected], inputs[selected]
        masked = (corrupted == mask_id).float().mean().item()
        kept = (corrupted == chosen).float().mean().item()
        if abs(masked - 0.8) > 0.01:
            raise _NotPassed(f"{masked:.1%} of the selected tokens became [MASK]; expected 80 %")
        if abs(kept - 0.1) > 0.01:
            raise _NotPassed(f"{kept:.1%} of the selected tokens kept their id; expected 10 %")
        return f"15 % selected ({share:.1%}); of those {masked:.1%} [MASK], {kept:.1%} unchanged, the rest random"

    _verdict("mask_tokens", check)


# ----------------------------------------------------------------------------------------------
# Tutorial 3: the classification head's forward pass
# ----------------------------------------------------------------------------------------------


def solution_classify(model, x: torch.Tensor, clf_tokens_mask: torch.Tensor, padding_mask: torch.Tensor):
    """Logits (B, C) of a `TransformerWithClfHead` (pooling "clf"): the classification token's final
    state, through the classification head. x, clf_tokens_mask, padding_mask: (B, T)."""
    h = model.transformer(x, padding_mask=padding_mask).last_hidden_state  # (B, T, E)
    pooled = h[clf_tokens_mask]  # (B, E): one classification token per row
    return model.classification_head(pooled)


def check_classify(fn: Callable) -> None:
    """Compare `fn(model, x, clf_tokens_mask, padding_mask)` with the library's forward pass on a small
    random causal classifier and a padded batch whose rows have different lengths."""

    def check() -> str:
        torch.manual_seed(0)
        config = TransformerConfig(
            embed_dim=16, hidden_dim=32, num_heads=2, num_layers=2, num_embeddings=50, num_max_positions=8
        )
        model = TransformerWithClfHead(config, FineTuningConfig(num_classes=3)).eval()
        x = torch.tensor([[5, 6, 7, 8, 1], [9, 10, 1, 0, 0]])  # id 1: classification token, 0: padding
        clf, padding = x == 1, x == 0
        with torch.no_grad():
            answer = fn(model, x, clf, padding)
            expected = model(x, clf, padding_mask=padding)
            last = model.classification_head(
                model.transformer(x, padding_mask=padding).last_hidden_state[:, -1]
            )
        if _close(answer, expected):
            return "same logits as TransformerWithClfHead on rows of different lengths"
        if _close(answer, last):
            raise _NotPassed(
                "you took the last position: in a padded batch the shorter rows end with padding"
            )
        raise _NotPassed("the logits differ: take each row's hidden state where clf_tokens_mask is True")

    _verdict("classify", check)


# ----------------------------------------------------------------------------------------------
# Tutorial 4: layer-wise learning-rate decay
# ----------------------------------------------------------------------------------------------


def solution_llrd(lr: float, decay: float, num_layers: int) -> list[float]:
    """Learning rates from the head down: head lr, top layer lr·γ, …, layer 1 lr·γ^L, embeddings lr·γ^(L+1)."""
    return [lr * decay**depth for depth in range(num_layers + 2)]


def check_llrd(fn: Callable) -> None:
    """Compare `fn(lr, decay, num_layers)` with the groups `stability.llrd_parameter_groups` builds."""

    def check() -> str:
        config = TransformerConfig(
            embed_dim=8, hidden_dim=16, num_heads=2, num_layers=3, num_embeddings=20, num_max_positions=8
        )
        model = TransformerWithClfHead(config, FineTuningConfig(num_classes=2))
        groups = llrd_parameter_groups(model, lr=1e-3, decay=0.5, weight_decay=0.0)
        expected = list(dict.fromkeys(g["lr"] for g in groups))  # one rate per block, head first
        answer = [float(r) for r in fn(1e-3, 0.5, 3)]
        if len(answer) != len(expected):
            raise _NotPassed(
                f"{len(answer)} rates for {len(expected)} blocks: the head, 3 layers, the embeddings"
            )
        if all(math.isclose(a, b) for a, b in zip(answer, expected)):
            return f"head to embeddings: {', '.join(f'{r:.2e}' for r in answer)}, as llrd_parameter_groups"
        if all(math.isclose(a, b) for a, b in zip(answer, reversed(expected))):
            raise _NotPassed("the order is reversed: the head comes first with the full rate")
        if math.isclose(answer[0], expected[1]):
            raise _NotPassed("the head should get the base rate; the top layer is the first to be decayed")
        raise _NotPassed(f"expected {expected}, got {answer}")

    _verdict("llrd", check)


# ----------------------------------------------------------------------------------------------
# Tutorial 5: GPT-2's GELU
# ----------------------------------------------------------------------------------------------


def solution_gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GELU's tanh approximation (GPT-2, "gelu_new"): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def check_gelu_tanh(fn: Callable) -> None:
    """Compare `fn(x)` with `F.gelu(x, approximate="tanh")` on [-6, 6]."""

    def check() -> str:
        x = torch.linspace(-6, 6, 1001)
        answer = fn(x)
        if _close(answer, F.gelu(x, approximate="tanh")):
            return "matches F.gelu(x, approximate='tanh') on [-6, 6]"
        if _close(answer, F.gelu(x)):
            raise _NotPassed("that is the exact GELU (with erf); GPT-2 uses the tanh approximation")
        raise _NotPassed("the values differ from 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))")

    _verdict("gelu_tanh", check)


# ----------------------------------------------------------------------------------------------
# Tutorial 6: the previous-token share of a head
# ----------------------------------------------------------------------------------------------


def check_previous_token_share(fn: Callable) -> None:
    """Compare `fn(attention)` ((B, nh, T, T) → (nh,)) with `inspection.previous_token_share` on heads
    whose answer is known: a perfect previous-token head (1.0), a self head (0.0), a two-back head (0.0)."""

    def check() -> str:
        T = 6
        rows = torch.arange(T)
        heads = [(rows - 1).clamp(min=0), rows, torch.where(rows >= 2, rows - 2, rows)]
        attention = torch.stack([F.one_hot(h, T).float() for h in heads])[None]  # (1, 3, T, T)
        attention = attention.expand(2, -1, -1, -1)  # (2, 3, T, T): the batch must be averaged too
        answer = fn(attention)
        expected = previous_token_share(attention)
        if _close(answer, expected):
            return "1.0 on a previous-token head, 0.0 on a self head and on a two-back head"
        if _close(answer, torch.tensor([0.0, 0.0, 1.0])):
            raise _NotPassed(
                "you read two tokens back: entry [i, i-1] is diagonal(offset=-1) of the full matrix"
            )
        raise _NotPassed(f"expected {expected.tolist()} for (previous, self, two-back) heads, got {answer}")

    _verdict("previous_token_share", check)
