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
from minitransformer.model import TransformerWithClfHead, TransformerWithLMHead
from minitransformer.teaching.circuits import induction_targets, prefix_matching_score
from minitransformer.teaching.inspection import attention_entropy, previous_token_share
from minitransformer.training.stability import llrd_parameter_groups

_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


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


def _close(a, b, atol: float = 1e-5) -> bool:
    """Same shape and values (NaN where the other has NaN counts as equal: a wrong answer may have NaN)."""
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape):
        return False
    return torch.allclose(a.double(), b.double(), atol=atol, rtol=0, equal_nan=True)


def _refuse_known_mistakes(answer, mistakes: list[tuple[torch.Tensor, str]], atol: float) -> None:
    """Raise the message of the first usual mistake whose result the answer reproduces (to `atol`)."""
    for wrong, message in mistakes:
        if _close(answer, wrong, atol):
            raise _NotPassed(message)


def _shape(answer) -> str:
    return str(tuple(answer.shape)) if isinstance(answer, torch.Tensor) else type(answer).__name__


def _require_shape(answer, expected: torch.Tensor, should_be: str) -> None:
    """Raise "`should_be`, got <answer's shape>" unless `answer` is a tensor of `expected`'s shape."""
    if not isinstance(answer, torch.Tensor) or answer.shape != expected.shape:
        raise _NotPassed(f"{should_be}, got {_shape(answer)}")


# ----------------------------------------------------------------------------------------------
# Tutorial 1: scaled dot-product attention with a mask; layer normalisation; a pre-norm Transformer
# ----------------------------------------------------------------------------------------------


def solution_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor
) -> torch.Tensor:
    """q: (B, nh, T, hs), k and v: (B, nh, S, hs), allowed: bool broadcastable to (B, nh, T, S), True =
    may attend. Returns (B, nh, T, hs)."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, nh, T, S)
    return scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1) @ v


def _attend(q, k, v, allowed, divisor=None, dim=-1, mask_after=False, fill=float("-inf")):
    """Attention with one deliberate mistake switched on: what a wrong answer computes. `divisor`
    divides the scores (default √hs, the right one)."""
    scores = q @ k.transpose(-2, -1) / (math.sqrt(q.size(-1)) if divisor is None else divisor)
    if mask_after:
        return scores.softmax(dim=dim).masked_fill(~allowed, 0.0) @ v
    return scores.masked_fill(~allowed, fill).softmax(dim=dim) @ v


def check_attention(fn: Callable) -> None:
    """Compare `fn(q, k, v, allowed)` with PyTorch's `scaled_dot_product_attention` under a causal +
    padding mask (True = may attend), on heads and rows that all differ, and name the usual mistakes."""

    def check() -> str:
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(2, 3, 5, 16, generator=g) for _ in range(3))  # hs = 16: √hs = 4 matters
        padding = torch.tensor([[False] * 5, [False, False, False, True, True]])  # (B, S), True = pad
        causal = torch.ones(5, 5, dtype=torch.bool).tril()
        allowed = causal & ~padding[:, None, None, :]  # (B, 1, T, S)
        answer = fn(q, k, v, allowed)
        expected = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        if _close(answer, expected):
            return "matches torch's scaled_dot_product_attention with a causal + padding mask"
        _require_shape(answer, expected, f"the output should be (B, nh, T, hs) = {tuple(expected.shape)}")
        everything = torch.ones_like(allowed)
        num_heads, head_size = q.size(1), q.size(-1)
        mistakes = [
            (dict(divisor=1.0), "the scores are not divided by sqrt(hs), the size of one head's vectors"),
            (
                dict(divisor=math.sqrt(num_heads * head_size)),
                "the scores are divided by sqrt(nh·hs) = sqrt(E), the whole embedding: divide by sqrt(hs), "
                "the size of one head's vectors, since each head's dot products have hs terms",
            ),
            (
                dict(fill=0.0),
                "forbidden scores are set to 0 (the mask multiplied in, or filled with 0): a score of 0 still "
                "gets weight exp(0) in the softmax; fill them with -inf",
            ),
            (
                dict(allowed=allowed.transpose(-2, -1)),
                "the mask is transposed: allowed[..., i, j] says whether query i (row) may attend to key j "
                "(column); use it as it is, or the queries see the future and padded rows end up empty",
            ),
            (
                dict(allowed=everything),
                "the mask is not applied: set the scores of forbidden keys to -inf before the softmax",
            ),
            (
                dict(allowed=~allowed),
                "the mask is inverted: `allowed` is True where a query MAY attend, so fill where it is False (~allowed)",
            ),
            (
                dict(dim=-2),
                "the softmax runs over the queries (dim=-2): each query's weights over the keys must sum to 1, softmax(dim=-1)",
            ),
            (
                dict(mask_after=True),
                "the mask is applied after the softmax: zeroing weights afterwards leaves rows that no longer sum to 1; fill with -inf before",
            ),
            (
                dict(allowed=causal.expand_as(allowed)),
                "the padding is ignored: the queries still attend to padded keys; use the whole `allowed` mask, not only the causal part",
            ),
            (
                dict(allowed=~padding[:, None, None, :].expand_as(allowed)),
                "the causal part is missing: token i may only attend to tokens 0..i",
            ),
        ]
        for fill in (float("-inf"), -1e9, -1e4):
            for change, message in mistakes:
                kwargs = {"allowed": allowed, "fill": fill, **change}
                if _close(answer, _attend(q, k, v, **kwargs)):
                    raise _NotPassed(message)
        if torch.isnan(answer).any():
            raise _NotPassed(
                "the output has NaN: a row whose keys are all forbidden gets softmax of all -inf"
            )
        raise _NotPassed("the output differs from softmax(QKᵀ/√hs, masked, over the keys: dim=-1) @ V")

    _verdict("attention", check)


def solution_layer_norm(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
) -> torch.Tensor:
    """Layer norm over the last dimension: (x − mean) / √(var + eps) · weight + bias, var the biased one."""
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def check_layer_norm(fn: Callable) -> None:
    """Compare `fn(x, weight, bias, eps)` with `F.layer_norm` on (B, T, E) states, a large eps so that
    where it goes matters, and name the usual mistakes."""

    def check() -> str:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(2, 4, 8, generator=g, dtype=torch.float64) * 3 + 1
        weight = torch.rand(8, generator=g, dtype=torch.float64) + 0.5
        bias = torch.randn(8, generator=g, dtype=torch.float64)
        eps = 0.1  # large on purpose: with 1e-5, eps in the wrong place would hardly show
        answer = fn(x.clone(), weight, bias, eps)
        expected = F.layer_norm(x, (8,), weight, bias, eps)
        if _close(answer, expected, atol=1e-8):
            return "matches F.layer_norm over the last dimension, eps inside the square root"
        _require_shape(answer, expected, f"the output should have the shape of x, {tuple(x.shape)}")
        centred = x - x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, unbiased=False)
        mistakes = [
            (
                centred / torch.sqrt(x.var(-1, keepdim=True) + eps) * weight + bias,
                "you used the unbiased variance (divided by E − 1; torch.var's default): layer norm divides by E, unbiased=False",
            ),
            (
                centred / (torch.sqrt(var) + eps) * weight + bias,
                "eps is added to the standard deviation: it goes inside the square root, √(var + eps)",
            ),
            (centred / torch.sqrt(var + eps), "the learned weight (scale) and bias (shift) are not applied"),
            (centred / torch.sqrt(var + eps) * weight, "the bias (shift) is not added"),
            (
                (x - x.mean(-2, keepdim=True))
                / torch.sqrt(x.var(-2, keepdim=True, unbiased=False) + eps)
                * weight
                + bias,
                "you normalised over the tokens (dim=-2): layer norm normalises each token's vector, over dim=-1",
            ),
            (x / torch.sqrt(var + eps) * weight + bias, "the mean is not subtracted"),
        ]
        _refuse_known_mistakes(answer, mistakes, 1e-8)
        raise _NotPassed(
            "the values differ from (x − mean) / √(var + eps) · weight + bias over the last dimension"
        )

    _verdict("layer_norm", check)


def solution_pre_norm_forward(backbone, x: torch.Tensor) -> torch.Tensor:
    """The last hidden state (B, T, E) of a pre-norm backbone (GPT-2's placement, no padding, dropout 0):
    the embeddings, then in every block h = h + attn(ln_1(h)) and h = h + ff(ln_2(h)), the final norm."""
    h = backbone.tokens_embeddings(x) + backbone.position_embeddings(torch.arange(x.size(1)))  # (B, T, E)
    for block in backbone.blocks:
        h = h + block.attention(block.layer_norm_1(h), None, True)[0]  # is_causal=True
        h = h + block.feed_forward(block.layer_norm_2(h))
    return backbone.final_layer_norm(h)


def _pre_norm_block(h, attn, ff, ln_1, ln_2):
    h = h + attn(ln_1(h))
    return h + ff(ln_2(h))


def _normed_residual_block(h, attn, ff, ln_1, ln_2):  # the hands-on's placement
    h = (n := ln_1(h)) + attn(n)
    return (n := ln_2(h)) + ff(n)


def _post_norm_block(h, attn, ff, ln_1, ln_2):
    h = ln_1(h + attn(h))
    return ln_2(h + ff(h))


def _no_residual_block(h, attn, ff, ln_1, ln_2):
    return ff(ln_2(attn(ln_1(h))))


def _swapped_norms_block(h, attn, ff, ln_1, ln_2):
    h = h + attn(ln_2(h))
    return h + ff(ln_1(h))


def _stack(
    backbone, x, block=_pre_norm_block, final_norm=True, is_causal=True, positions=True, same_layer=False
):
    """A backbone's forward pass with `block` for every layer and one slip switched on: what a wrong
    answer computes."""
    h = backbone.tokens_embeddings(x)  # (B, T, E)
    if positions:
        h = h + backbone.position_embeddings(torch.arange(x.size(1)))
    for i in range(backbone.config.num_layers):
        parts = backbone.blocks[0 if same_layer else i]
        h = block(
            h,
            lambda z, attention=parts.attention: attention(z, None, is_causal)[0],
            parts.feed_forward,
            parts.layer_norm_1,
            parts.layer_norm_2,
        )
    return backbone.final_layer_norm(h) if final_norm else h


def check_pre_norm_forward(fn: Callable) -> None:
    """Compare `fn(backbone, x)` with the library's pre-norm `Transformer` (3 layers, weights large
    enough that every sub-block moves the result) and name the usual slips: the residual added to the
    normed value, post-norm, no residual, the norms swapped, no final norm, no causal mask, no
    positions, one layer's weights reused."""

    def check() -> str:
        torch.manual_seed(0)
        config = TransformerConfig(
            embed_dim=16, hidden_dim=32, num_heads=2, num_layers=3, vocab_size=50, num_max_positions=8,
            dropout=0.0, initializer_range=0.2, norm_placement="pre", final_layer_norm=True,
        )  # fmt: skip
        backbone = TransformerWithLMHead(config).transformer.eval()
        for module in backbone.modules():  # norms that are not the identity, so that swapping them shows
            if isinstance(module, torch.nn.LayerNorm):
                torch.nn.init.uniform_(module.weight, 0.5, 1.5)
                torch.nn.init.normal_(module.bias, std=0.5)
        x = torch.randint(50, (2, 8), generator=torch.Generator().manual_seed(0))  # (B, T)
        with torch.no_grad():
            answer = fn(backbone, x)
            expected = backbone(x).last_hidden_state
            if _close(answer, expected):
                return "3 pre-norm blocks and the final norm give the library's last hidden state"
            _require_shape(answer, expected, f"the output should be (B, T, E) = {tuple(expected.shape)}")
            mistakes = [
                (
                    _stack(backbone, x, _normed_residual_block),
                    "the residual adds to the normed value (h = ln(h) + attn(ln(h))): that is the hands-on's "
                    "placement; in pre-norm the stream h itself skips the sub-block, h = h + attn(ln_1(h))",
                ),
                (
                    _stack(backbone, x, _post_norm_block, final_norm=False),
                    "that is post-norm, h = ln(h + attn(h)): pre-norm normalises the sub-block's input, "
                    "h = h + attn(ln_1(h))",
                ),
                (
                    _stack(backbone, x, _no_residual_block),
                    "the residual connections are missing: add each sub-block's output to h, h = h + …",
                ),
                (
                    _stack(backbone, x, _swapped_norms_block),
                    "the norms are swapped: layer_norm_1 goes before the attention, layer_norm_2 before "
                    "the feed-forward",
                ),
                (
                    _stack(backbone, x, final_norm=False),
                    "the final layer norm is missing: pre-norm leaves the top of the stream unnormalised; "
                    "apply backbone.final_layer_norm after the last block",
                ),
                (
                    _stack(backbone, x, is_causal=False),
                    "the attention is not causal: pass is_causal=True, each token sees only itself and the past",
                ),
                (
                    _stack(backbone, x, positions=False),
                    "the position embeddings are missing: add backbone.position_embeddings(torch.arange(T))",
                ),
                (
                    _stack(backbone, x, same_layer=True),
                    "every block uses layer 0's weights: block i uses backbone.blocks[i]'s attention, "
                    "feed-forward and norms",
                ),
            ]
        _refuse_known_mistakes(answer, mistakes, 1e-5)
        raise _NotPassed("the hidden states differ from the library's pre-norm Transformer")

    _verdict("pre_norm_forward", check)


# ----------------------------------------------------------------------------------------------
# Tutorial 2: the masked-LM corruption, 80 / 10 / 10; the masked-LM loss; one training step
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
    """Check `fn(ids, mask_id, vocab_size, generator)` on 200,000 tokens: labels, the 15 % and 80/10/10
    proportions within about four standard deviations, and that the random 10 % are drawn from the whole
    vocabulary (the text uses only ids 5..49 of a 1,000-token vocabulary, so tokens taken from the text
    itself, or a fixed id, are told apart from random ones)."""

    def check() -> str:
        vocab_size, mask_id = 1000, 4
        ids = torch.randint(5, 50, (200, 1000), generator=torch.Generator().manual_seed(1))
        inputs, labels = fn(ids.clone(), mask_id, vocab_size, torch.Generator().manual_seed(0))
        if not isinstance(inputs, torch.Tensor) or not isinstance(labels, torch.Tensor):
            raise _NotPassed("return a pair of tensors: (inputs, labels)")
        if inputs.shape != ids.shape or labels.shape != ids.shape:
            raise _NotPassed(f"inputs and labels should both have the shape of ids, {tuple(ids.shape)}")
        selected = labels != IGNORE_INDEX
        if not torch.equal(labels[selected], ids[selected]):
            raise _NotPassed("a selected position's label must be its original id (not the corrupted one)")
        if not torch.equal(inputs[~selected], ids[~selected]):
            raise _NotPassed("positions that are not selected (label -100) must keep their id")
        share = selected.float().mean().item()  # n = 200,000: one standard deviation is 0.08 %
        if abs(share - 0.15) > 0.0035:
            raise _NotPassed(f"{share:.1%} of the tokens are selected (label ≠ -100); expected 15 %")
        chosen, corrupted = ids[selected], inputs[selected]  # about 30,000: one std of a share ≈ 0.2 %
        is_mask = corrupted == mask_id
        is_kept = corrupted == chosen
        is_random = ~is_mask & ~is_kept
        masked, kept, randomised = (t.float().mean().item() for t in (is_mask, is_kept, is_random))
        if abs(masked - 0.8) > 0.01:
            raise _NotPassed(f"{masked:.1%} of the selected tokens became [MASK]; expected 80 %")
        if abs(randomised - 0.1) > 0.008:
            raise _NotPassed(
                f"{randomised:.1%} of the selected tokens became another id; expected 10 % "
                "(half of the 20 % that are not masked)"
            )
        if abs(kept - 0.1) > 0.008:
            raise _NotPassed(f"{kept:.1%} of the selected tokens kept their id; expected 10 %")
        random_ids = corrupted[is_random]
        if (random_ids < 0).any() or (random_ids >= vocab_size).any():
            raise _NotPassed(f"some random ids lie outside the vocabulary, 0..{vocab_size - 1}")
        if random_ids.unique().numel() < 10:
            raise _NotPassed(
                f"the random share uses only {random_ids.unique().numel()} distinct ids: draw each one "
                "anew, torch.randint(vocab_size, ...)"
            )
        outside_text = (random_ids >= 50).float().mean().item()  # uniform over 0..999: 95 %
        if outside_text < 0.9:
            raise _NotPassed(
                f"only {outside_text:.0%} of the random tokens are ids the text does not contain (95 % "
                "expected): draw them uniformly from the whole vocabulary, not from the input"
            )
        mean = random_ids.double().mean().item()  # uniform over 0..999: 499.5, one std ≈ 5 here
        if abs(mean - (vocab_size - 1) / 2) > 30:
            raise _NotPassed(
                f"the random ids average {mean:.0f}, not {(vocab_size - 1) / 2} as uniform draws over the "
                "vocabulary would"
            )
        return (
            f"15 % selected ({share:.1%}); of those {masked:.1%} [MASK], {randomised:.1%} random ids from "
            f"the whole vocabulary, {kept:.1%} unchanged"
        )

    _verdict("mask_tokens", check)


def solution_masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the positions whose label is not -100. logits (B, T, V), labels (B, T)."""
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)


def check_masked_lm_loss(fn: Callable) -> None:
    """Compare `fn(logits, labels)` with the cross-entropy averaged over the labelled positions only."""

    def check() -> str:
        g = torch.Generator().manual_seed(0)
        logits = torch.randn(2, 6, 11, generator=g, dtype=torch.float64) * 2
        labels = torch.randint(11, (2, 6), generator=g)
        labels[torch.rand(2, 6, generator=g) < 0.6] = IGNORE_INDEX
        labels[0, 0], labels[1, 5] = 3, IGNORE_INDEX  # at least one labelled, one ignored
        answer = fn(logits, labels)
        expected = solution_masked_lm_loss(logits, labels)
        if (
            isinstance(answer, torch.Tensor)
            and answer.numel() == 1
            and _close(answer.reshape(()), expected, 1e-8)
        ):
            return (
                f"{expected.item():.4f}: the mean over the {int((labels != -100).sum())} labelled positions"
            )
        if not isinstance(answer, torch.Tensor) or answer.numel() != 1:
            raise _NotPassed(f"return one number (a 0-d tensor), the mean loss; got {_shape(answer)}")
        answer = answer.reshape(())
        flat, target = logits.flatten(0, 1), labels.flatten()
        per_token = F.cross_entropy(flat, target.clamp(min=0), reduction="none")
        labelled = target != IGNORE_INDEX
        mistakes = [
            (
                (per_token * labelled).mean(),
                "you averaged over every position, the ignored ones counting 0: divide by the number of labelled positions",
            ),
            (
                per_token.mean(),
                "the ignored positions (-100) are scored too: leave them out (ignore_index=-100)",
            ),
            (
                F.nll_loss(flat, target, ignore_index=IGNORE_INDEX),
                "the log-softmax is missing: cross_entropy takes raw logits, nll_loss takes log-probabilities",
            ),
            (per_token[labelled].sum(), "that is the sum, not the mean, over the labelled positions"),
        ]
        shifted = F.cross_entropy(
            logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=IGNORE_INDEX
        )
        mistakes.append(
            (
                shifted,
                "you shifted the labels as for a causal LM: a masked LM predicts each token at its own position",
            )
        )
        _refuse_known_mistakes(answer, mistakes, 1e-8)
        raise _NotPassed(f"expected {expected.item():.4f}, got {answer.item():.4f}")

    _verdict("masked_lm_loss", check)


def solution_train_step(model, optimizer, batch: torch.Tensor) -> float:
    """One optimizer step of a causal LM on token ids (B, T); returns the loss before the step. The
    logits at position t are scored against token t + 1, and the gradients start from zero."""
    logits = model(batch)  # (B, T, V)
    loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), batch[:, 1:].flatten())  # (B·(T−1), V) vs targets
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def _slipped_step(shift: int = 1, zero_grad: bool = True, reduction: str = "mean") -> Callable:
    """A training step with one slip: `shift` 0 scores each position against its own token, -1 the
    wrong way round; `zero_grad=False` lets gradients pile up; `reduction="sum"` sums the loss."""

    def step(model, optimizer, batch):
        logits = model(batch)  # (B, T, V)
        scored, targets = {
            1: (logits[:, :-1], batch[:, 1:]),
            0: (logits, batch),
            -1: (logits[:, 1:], batch[:, :-1]),
        }[shift]
        loss = F.cross_entropy(scored.flatten(0, 1), targets.flatten(), reduction=reduction)
        if zero_grad:
            optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def _loss_value(loss) -> float:
    """The loss a training step returned, as a float; one number, or _NotPassed."""
    if isinstance(loss, (int, float)) or (isinstance(loss, torch.Tensor) and loss.numel() == 1):
        return float(loss)
    raise _NotPassed(f"return the loss as a number (loss.item()), got {_shape(loss)}")


def check_train_step(fn: Callable) -> None:
    """Run `fn(model, optimizer, batch)` for two steps of SGD on a small causal LM and compare the
    returned losses and the weights with the reference step; name the usual slips: the loss not shifted
    (or shifted the wrong way), zero_grad missing, the weights not updated, a summed loss."""

    def run(step_fn: Callable) -> tuple[list[float], list[torch.Tensor]]:
        torch.manual_seed(0)
        config = TransformerConfig(
            embed_dim=16, hidden_dim=32, num_heads=2, num_layers=2, vocab_size=30, num_max_positions=8,
            dropout=0.0,
        )  # fmt: skip
        model = TransformerWithLMHead(config).double()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)  # plain SGD: every slip shows in the weights
        g = torch.Generator().manual_seed(0)
        losses = [
            _loss_value(step_fn(model, optimizer, torch.randint(30, (4, 8), generator=g))) for _ in range(2)
        ]
        return losses, [p.detach().clone() for p in model.parameters()]

    def same(a, b) -> bool:
        return all(math.isclose(x, y, rel_tol=1e-6) for x, y in zip(a[0], b[0])) and all(
            _close(p, q, 1e-8) for p, q in zip(a[1], b[1])
        )

    def check() -> str:
        answer = run(fn)
        expected = run(solution_train_step)
        if same(answer, expected):
            return f"losses {answer[0][0]:.4f}, {answer[0][1]:.4f} and the weights after 2 steps match the reference"
        if all(_close(p, q, 0) for p, q in zip(answer[1], run(lambda m, o, b: 0.0)[1])):
            raise _NotPassed(
                "the weights did not change: call loss.backward(), then optimizer.step() (zero_grad comes "
                "before backward, not between backward and step)"
            )
        mistakes = [
            (
                dict(shift=0),
                "the loss is not shifted: the logits at position t predict token t + 1, so score "
                "logits[:, :-1] against batch[:, 1:]",
            ),
            (dict(shift=-1), "the shift goes the wrong way: score logits[:, :-1] against batch[:, 1:]"),
            (
                dict(zero_grad=False),
                "optimizer.zero_grad() is missing: the second step adds the first step's gradients to its own",
            ),
            (
                dict(reduction="sum"),
                "the loss is summed: average it over the predictions (cross_entropy's default)",
            ),
        ]
        for slip, message in mistakes:
            if same(answer, run(_slipped_step(**slip))):
                raise _NotPassed(message)
        if all(math.isclose(x, y, rel_tol=1e-6) for x, y in zip(answer[0], expected[0])):
            raise _NotPassed(
                "the losses are right but the weights after 2 steps differ from the reference step's"
            )
        raise _NotPassed(
            f"the losses are {[round(x, 4) for x in answer[0]]}, the reference step's "
            f"{[round(x, 4) for x in expected[0]]}"
        )

    _verdict("train_step", check)


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
    random causal classifier and a padded batch whose rows have different lengths: one padded on the
    right and one on the left, whose classification token would read its padding without the mask."""

    def check() -> str:
        torch.manual_seed(0)
        config = TransformerConfig(
            embed_dim=16, hidden_dim=32, num_heads=2, num_layers=2, vocab_size=50, num_max_positions=8
        )
        model = TransformerWithClfHead(config, FineTuningConfig(num_classes=3)).eval()
        x = torch.tensor([[5, 6, 7, 8, 1], [9, 10, 1, 0, 0], [0, 0, 11, 12, 1]])  # 1: [CLS], 0: padding
        clf, padding = x == 1, x == 0
        with torch.no_grad():
            answer = fn(model, x, clf, padding)
            expected = model(x, clf, padding_mask=padding)
            unmasked = model(x, clf)
            last = model.classification_head(
                model.transformer(x, padding_mask=padding).last_hidden_state[:, -1]
            )
        if _close(answer, expected):
            return "same logits as TransformerWithClfHead on rows of different lengths, padded right and left"
        if _close(answer, unmasked):
            raise _NotPassed(
                "the padding mask is not used: pass padding_mask to model.transformer; the row padded on the "
                "left has [PAD] before its classification token, which reads it without the mask"
            )
        if _close(answer, last):
            raise _NotPassed(
                "you took the last position: in a padded batch the shorter rows end with padding"
            )
        with torch.no_grad():
            h = model.transformer(x, padding_mask=padding).last_hidden_state
            first = model.classification_head(h[:, 0])
            mean_all = model.classification_head(h.mean(dim=1))
            mean_real = model.classification_head(
                (h * ~padding[..., None]).sum(1) / (~padding).sum(1, keepdim=True)
            )
        if _close(answer, first):
            raise _NotPassed("you took the first position: this causal model's classification token is last")
        if _close(answer, mean_all) or _close(answer, mean_real):
            raise _NotPassed(
                "you averaged over the tokens: the default pooling reads the classification token"
            )
        raise _NotPassed("the logits differ: take each row's hidden state where clf_tokens_mask is True")

    _verdict("classify", check)


def solution_padding_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """(B,) lengths → (B, T) bool, True where a position is padding (position ≥ the row's length)."""
    return torch.arange(T)[None, :] >= lengths[:, None]


def check_padding_mask(fn: Callable) -> None:
    """Compare `fn(lengths, T)` with the library's convention (True = padding) on rows of different lengths."""

    def check() -> str:
        lengths, T = torch.tensor([5, 2, 3, 1]), 5
        answer = fn(lengths, T)
        expected = solution_padding_mask(lengths, T)
        _require_shape(answer, expected, f"the mask should be (B, T) = {tuple(expected.shape)}")
        if answer.dtype != torch.bool:
            raise _NotPassed(f"the mask should be bool (True = padding), got {answer.dtype}")
        if torch.equal(answer, expected):
            return "True exactly on the padded positions of rows of lengths 5, 2, 3, 1"
        if torch.equal(answer, ~expected):
            raise _NotPassed(
                "the mask is inverted: the library's padding mask is True where a token is PADDING"
            )
        if torch.equal(answer, torch.arange(T)[None, :] > lengths[:, None]):
            raise _NotPassed(
                "off by one: the last real token is at position length − 1, so padding starts at length"
            )
        if torch.equal(answer, torch.arange(T)[None, :] >= lengths[:, None] - 1):
            raise _NotPassed("off by one: you marked each row's last real token as padding")
        raise _NotPassed(f"expected {expected.int().tolist()}, got {answer.int().tolist()}")

    _verdict("padding_mask", check)


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
            embed_dim=8, hidden_dim=16, num_heads=2, num_layers=3, vocab_size=20, num_max_positions=8
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


def solution_adam_update(
    grad: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    step: int,
    lr: float,
    betas: tuple[float, float],
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Adam step: returns (update, m, v) with parameter ← parameter − update; `step` counts from 1.
    The bias corrections 1 − β^step are what BertAdam left out."""
    beta1, beta2 = betas
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    m_hat, v_hat = m / (1 - beta1**step), v / (1 - beta2**step)
    return lr * m_hat / (v_hat.sqrt() + eps), m, v


def check_adam_update(fn: Callable) -> None:
    """Run `fn` for 5 steps on fixed gradients and compare the parameter with `torch.optim.Adam`'s; name
    BertAdam's missing bias correction and the usual slips."""

    def check() -> str:
        g = torch.Generator().manual_seed(0)
        grads = [torch.randn(6, generator=g, dtype=torch.float64) for _ in range(5)]
        lr, betas, eps = 0.1, (0.9, 0.999), 1e-8
        reference = torch.zeros(6, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.Adam([reference], lr=lr, betas=betas, eps=eps)
        for grad in grads:
            reference.grad = grad.clone()
            optimizer.step()

        def run(update_fn) -> torch.Tensor:
            param, m, v = (
                torch.zeros(6, dtype=torch.float64),
                torch.zeros(6, dtype=torch.float64),
                torch.zeros(6, dtype=torch.float64),
            )
            for step, grad in enumerate(grads, start=1):
                update, m, v = update_fn(grad.clone(), m, v, step, lr, betas, eps)
                param = param - update
            return param

        answer = run(fn)
        if _close(answer, reference.detach(), 1e-10):
            return "5 steps give torch.optim.Adam's parameters, bias corrections included"
        _require_shape(answer, reference, "the update should have the gradient's shape, (6,)")

        def variant(no_correction=False, eps_inside=False, no_square=False, first_step_zero=False):
            def update_fn(grad, m, v, step, lr, betas, eps):
                b1, b2 = betas
                step = step - 1 if first_step_zero else step
                m = b1 * m + (1 - b1) * grad
                v = b2 * v + (1 - b2) * (grad if no_square else grad**2)
                if not no_correction:
                    m, v_used = m / (1 - b1**step), v / (1 - b2**step)
                else:
                    v_used = v
                denominator = (v_used + eps).sqrt() if eps_inside else v_used.abs().sqrt() + eps
                return lr * m / denominator, m if no_correction else m * (1 - b1**step), v

            return update_fn

        mistakes = [
            (
                dict(no_correction=True),
                "no bias correction (BertAdam's omission): divide m by 1 − β1^step and v by 1 − β2^step; early steps come out too large (about 3× at step 1)",
            ),
            (dict(eps_inside=True), "eps is inside the square root: Adam adds it to √v̂"),
            (dict(no_square=True), "v averages the gradient, not its square (grad**2)"),
        ]
        for change, message in mistakes:
            try:
                wrong = run(variant(**change))
            except Exception:
                continue
            if _close(answer, wrong, 1e-10):
                raise _NotPassed(message)
        raise _NotPassed(
            f"after 5 steps the parameter is {[round(x, 4) for x in answer.tolist()]}, torch.optim.Adam gives "
            f"{[round(x, 4) for x in reference.detach().tolist()]}"
        )

    _verdict("adam_update", check)


# ----------------------------------------------------------------------------------------------
# Tutorial 5: GPT-2's GELU
# ----------------------------------------------------------------------------------------------


def solution_gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GELU's tanh approximation (GPT-2, "gelu_new"): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


_GELU_ATOL = 1e-6  # float32 constants are 1e-8 off; a constant written with 4 digits, 1e-5


def check_gelu_tanh(fn: Callable) -> None:
    """Compare `fn(x)` with `F.gelu(x, approximate="tanh")` on [-6, 6] in float64, to 1e-6: loose enough
    for a constant held in float32 (`torch.tensor(2 / math.pi)`, 1e-8 off), tight enough to catch a
    constant written with too few digits; a misplaced parenthesis and an off constant each get their
    own message."""

    def check() -> str:
        x = torch.linspace(-6, 6, 1001, dtype=torch.float64)
        answer = fn(x.clone())
        expected = F.gelu(x, approximate="tanh")
        if _close(answer, expected, _GELU_ATOL):
            return f"matches F.gelu(x, approximate='tanh') on [-6, 6] to {_GELU_ATOL:.0e}"
        _require_shape(answer, x, f"the output should have the shape of x, {tuple(x.shape)}")
        c, a = _SQRT_2_OVER_PI, 0.044715
        mistakes = [
            (F.gelu(x), "that is the exact GELU (with erf); GPT-2 uses the tanh approximation"),
            (
                x * torch.sigmoid(1.702 * x),
                "that is the sigmoid approximation x·σ(1.702x); GPT-2 uses the tanh form",
            ),
            (
                0.5 * x * (1 + torch.tanh(math.sqrt(2 * math.pi) * (x + a * x**3))),
                "the factor is √(2/π) ≈ 0.798, not √(2π)",
            ),
            (
                0.5 * x * (1 + torch.tanh(2 / math.pi * (x + a * x**3))),
                "the factor is √(2/π) ≈ 0.798, not 2/π: the square root is missing",
            ),
            (0.5 * x * (1 + torch.tanh(c * (x + a * x**2))), "the cubic term is x³, not x²"),
            (x * (1 + torch.tanh(c * (x + a * x**3))), "the 0.5 in front is missing"),
            (
                0.5 * x * (1 + torch.tanh(c * x + a * x**3)),
                "a parenthesis is misplaced: √(2/π) multiplies the whole sum, √(2/π)·(x + 0.044715·x³), "
                "not x alone",
            ),
            (
                0.5 * x * (1 + torch.tanh(c * (x + a * x) ** 3)),
                "a parenthesis is misplaced: only x is cubed, x + 0.044715·x³, not (x + 0.044715·x)³",
            ),
            (
                0.5 * x + torch.tanh(c * (x + a * x**3)),
                "a parenthesis is misplaced: 0.5·x multiplies (1 + tanh(…)) as a whole",
            ),
        ]
        _refuse_known_mistakes(answer, mistakes, _GELU_ATOL)
        raise _NotPassed(_gelu_constant_off(x, answer.double()))

    _verdict("gelu_tanh", check)


def _gelu_constant_off(x: torch.Tensor, answer: torch.Tensor) -> str:
    """Which constant of 0.5·x·(1 + tanh(c·(x + a·x³))) the answer uses with another value, if one fits.

    Solving for tanh's argument u where tanh is far from saturated (0.25 ≤ |x| ≤ 1.5) gives c = u / (x +
    a·x³) if only c is off, a = (u/c − x) / x³ if only a is: a constant value across x says which.
    """
    c, a = _SQRT_2_OVER_PI, 0.044715
    keep = (x.abs() >= 0.25) & (x.abs() <= 1.5)
    xs, ys = x[keep], answer[keep]
    u = torch.atanh((2 * ys / xs - 1).clamp(-1 + 1e-12, 1 - 1e-12))
    for fitted, name, right in ((u / (xs + a * xs**3), "√(2/π)", c), ((u / c - xs) / xs**3, "0.044715", a)):
        if torch.isfinite(fitted).all() and fitted.std() < 1e-6 * fitted.mean().abs():
            return (
                f"the constant {name} is off: your answer uses {fitted.mean().item():.6g}, it is "
                f"{right:.6g} (write math.sqrt(2 / math.pi) and 0.044715)"
            )
    return "the values differ from 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))"


def solution_conv1d_to_linear(c_attn_weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GPT-2's fused attention projection, a Conv1D weight (E, 3E) used as x @ W, as the three
    nn.Linear weights (E, E) of q, k, v (nn.Linear computes x @ W.T)."""
    return tuple(c_attn_weight.t().chunk(3, dim=0))


def check_conv1d_to_linear(fn: Callable) -> None:
    """Check that `fn(c_attn_weight)` gives Linear weights whose outputs are GPT-2's q, k, v."""

    def check() -> str:
        g = torch.Generator().manual_seed(0)
        E = 6
        weight = torch.randn(E, 3 * E, generator=g, dtype=torch.float64)
        x = torch.randn(4, E, generator=g, dtype=torch.float64)
        expected = (x @ weight).split(E, dim=-1)  # what GPT-2 computes: q, k, v
        answer = fn(weight.clone())
        if not isinstance(answer, (tuple, list)) or len(answer) != 3:
            raise _NotPassed("return three weights: (q, k, v)")
        if any(not isinstance(w, torch.Tensor) or w.shape != (E, E) for w in answer):
            raise _NotPassed(f"each weight should be (E, E) = ({E}, {E}), got {[_shape(w) for w in answer]}")
        outputs = [F.linear(x, w) for w in answer]
        if all(_close(a, b, 1e-10) for a, b in zip(outputs, expected)):
            return "F.linear with your weights gives GPT-2's q, k and v"
        if all(_close(a, b, 1e-10) for a, b in zip(answer, weight.split(E, dim=-1))):
            raise _NotPassed(
                "not transposed: Conv1D stores (in, out) and computes x @ W; nn.Linear stores (out, in)"
            )
        if sorted(i for i, o in enumerate(outputs) for e in expected if _close(o, e, 1e-10)) == [0, 1, 2]:
            raise _NotPassed("q, k and v are in the wrong order: GPT-2's columns are [q | k | v]")
        raise _NotPassed("F.linear(x, w) with your weights differs from GPT-2's x @ W split into q, k, v")

    _verdict("conv1d_to_linear", check)


# ----------------------------------------------------------------------------------------------
# Tutorial 6: the previous-token share of a head
# ----------------------------------------------------------------------------------------------


def check_previous_token_share(fn: Callable) -> None:
    """Compare `fn(attention)` ((B, nh, T, T) → (nh,)) with `inspection.previous_token_share` on three
    heads of random rows (each diagonal holds different weights, batch rows differ) and one perfect
    previous-token head (1.0); name the usual mistakes."""

    def check() -> str:
        T = 6
        g = torch.Generator().manual_seed(0)
        random_rows = (torch.randn(2, 3, T, T, generator=g) * 2).softmax(dim=-1)  # (2, 3, T, T)
        rows = torch.arange(T)
        perfect = F.one_hot((rows - 1).clamp(min=0), T).float().expand(2, 1, T, T)
        attention = torch.cat([random_rows, perfect], dim=1)  # (2, 4, T, T)
        answer = fn(attention.clone())
        expected = previous_token_share(attention)
        if _close(answer, expected, 1e-6):
            return f"{[round(x, 3) for x in expected.tolist()]}: three random heads and a perfect one (1.0)"
        _require_shape(
            answer, expected, f"one number per head: the output should be (nh,) = {tuple(expected.shape)}"
        )

        def diagonal(offset, batch=slice(None)):
            return attention[batch].diagonal(offset=offset, dim1=-2, dim2=-1).mean(dim=(0, -1))

        below = attention.diagonal(offset=-1, dim1=-2, dim2=-1)  # (B, nh, T - 1)
        mistakes = [
            (
                diagonal(1),
                "you read the diagonal above (offset=+1): entry [i, i+1] is the NEXT token; the previous one is [i, i-1], offset=-1",
            ),
            (
                diagonal(0),
                "you read the main diagonal (offset=0): that is each token looking at itself; the previous token is offset=-1",
            ),
            (
                diagonal(-2),
                "you read two tokens back (offset=-2): the previous token is entry [i, i-1], offset=-1",
            ),
            (
                below.sum(-1).mean(0) / T,
                "you divided by T: only T − 1 tokens have a previous token, average over those",
            ),
            (below[0].mean(-1), "only the first row of the batch is averaged: average over the batch too"),
            (
                attention[0, :, 1:, :].diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1),
                "dropping row 0 and then taking offset=-1 reads two tokens back, and only the first batch row",
            ),
        ]
        _refuse_known_mistakes(answer, mistakes, 1e-6)
        raise _NotPassed(f"expected {[round(x, 4) for x in expected.tolist()]}, got {answer}")

    _verdict("previous_token_share", check)


solution_attention_entropy = attention_entropy  # the reference answer is the library's own function


def check_attention_entropy(fn: Callable) -> None:
    """Compare `fn(attention)` with the mean entropy in nats of causal rows (zeros above the diagonal)."""

    def check() -> str:
        T = 6
        g = torch.Generator().manual_seed(1)
        scores = torch.randn(2, 3, T, T, generator=g, dtype=torch.float64) * 2
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        attention = scores.masked_fill(~causal, float("-inf")).softmax(-1)  # zeros above the diagonal
        answer = fn(attention.clone())
        expected = solution_attention_entropy(attention)
        if _close(answer, expected, 1e-6):
            return f"{[round(x, 3) for x in expected.tolist()]} nats (a uniform row over k keys: log k)"
        _require_shape(
            answer, expected, f"one number per head: the output should be (nh,) = {tuple(expected.shape)}"
        )
        if torch.isnan(answer).any():
            raise _NotPassed(
                "NaN: the causal zeros give 0·log 0 = 0·(−inf); clamp p before the log (or use xlogy)"
            )
        plogp = attention * attention.clamp(min=1e-12).log()
        mistakes = [
            (expected / math.log(2), "that is in bits (log2): use the natural log, nats"),
            ((plogp).sum(-1).mean(dim=(0, -1)), "the sign: entropy is −Σ p log p, a positive number"),
            (
                -(plogp).mean(-1).mean(dim=(0, -1)),
                "you averaged over the keys instead of summing: entropy is −Σ p log p over a row",
            ),
        ]
        _refuse_known_mistakes(answer, mistakes, 1e-6)
        raise _NotPassed(f"expected {[round(x, 4) for x in expected.tolist()]}, got {answer}")

    _verdict("attention_entropy", check)


# ----------------------------------------------------------------------------------------------
# Tutorial 7: the prefix-matching score of a head; ablating one head
# ----------------------------------------------------------------------------------------------


def _prefix_matching_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """(attention (2, 4, 12, 12), tokens (2, 12)): three heads of random causal rows and a perfect
    induction head. Row 0 repeats 6 distinct tokens; row 1 repeats the same 6 in another order, so the
    token after each earlier occurrence is not always T/2 − 1 positions back. 6 repeated tokens per row."""
    g = torch.Generator().manual_seed(0)
    first = torch.randperm(40, generator=g)[:6]
    tokens = torch.stack([first.repeat(2), torch.cat([first, first[[2, 3, 4, 0, 1, 5]]])])  # (2, 12)
    T, causal = 12, torch.ones(12, 12, dtype=torch.bool).tril()
    random_rows = (torch.randn(2, 3, T, T, generator=g, dtype=torch.float64) * 2).masked_fill(
        ~causal, -torch.inf
    )
    targets = induction_targets(tokens).double()  # (2, T, T): one target per repeated token here
    perfect = torch.where(targets.any(-1, keepdim=True), targets, torch.eye(T, dtype=torch.float64))
    return torch.cat([random_rows.softmax(-1), perfect[:, None]], dim=1), tokens


def check_prefix_matching_score(fn: Callable) -> None:
    """Compare `fn(attention, tokens)` ((B, nh, T, T), (B, T) → (nh,)) with `circuits.prefix_matching_score`
    on random heads and a perfect induction head (1.0); name the usual mistakes."""

    def check() -> str:
        attention, tokens = _prefix_matching_inputs()
        answer = fn(attention.clone(), tokens.clone())
        expected = prefix_matching_score(attention, tokens)
        if _close(answer, expected, 1e-6):
            return f"{[round(x, 3) for x in expected.tolist()]}: three random heads and a perfect one (1.0)"
        _require_shape(
            answer, expected, f"one number per head: the output should be (nh,) = {tuple(expected.shape)}"
        )
        T, targets = tokens.shape[1], induction_targets(tokens)  # (B, T, T)
        repeated = targets.any(-1)  # (B, T): the tokens that occurred before, the same 6 places per row

        def over_repeated(weights: torch.Tensor) -> torch.Tensor:  # (B, nh, T) → (nh,)
            return weights.transpose(0, 1)[:, repeated].mean(-1)

        occurrences = F.pad(targets, (0, 1))[..., 1:]  # [i, j]: the earlier occurrence itself
        halves = attention[..., T // 2 :, :].diagonal(offset=1 - T // 2, dim1=-2, dim2=-1)  # key i − T/2 + 1
        on_targets = (attention * targets[:, None]).sum(-1)  # (B, nh, T)
        mistakes = [
            (
                over_repeated((attention * occurrences[:, None]).sum(-1)),
                "off by one: you read the weight on the earlier occurrence of the token itself; an induction "
                "head looks at the token AFTER it (key j + 1), the one that came next then",
            ),
            (
                on_targets.mean(dim=(0, -1)),
                "you averaged over all T positions: only the tokens that occurred before have something to "
                "match; average over those (the first copy would pull every head towards 0)",
            ),
            (
                halves.mean(dim=(0, -1)),
                "you assumed the text is one half repeated (key i − T/2 + 1): batch row 1 repeats its tokens in "
                "another order; find each token's earlier occurrence in `tokens`",
            ),
            (
                on_targets[0][:, T // 2 :].mean(-1),
                "only the first row of the batch is averaged: average over the batch too",
            ),
        ]
        _refuse_known_mistakes(answer, mistakes, 1e-6)
        raise _NotPassed(f"expected {[round(x, 4) for x in expected.tolist()]}, got {answer}")

    _verdict("prefix_matching_score", check)


def solution_ablate_head(
    heads: torch.Tensor, out_proj: torch.nn.Linear, head: int, num_heads: int
) -> torch.Tensor:
    """The attention's output without head `head`: out_proj of `heads` (B, T, E, the heads side by side)
    with that head's slice of columns [head·hs, (head + 1)·hs) set to 0. (B, T, E)."""
    hs = heads.shape[-1] // num_heads
    heads = heads.clone()  # the caller's tensor stays as it was
    heads[..., head * hs : (head + 1) * hs] = 0.0
    return out_proj(heads)


def check_ablate_head(fn: Callable) -> None:
    """Compare `fn(heads, out_proj, head, num_heads)` with the heads' input zeroed on head 1's columns,
    for 4 heads of 3 dims; name the usual mistakes."""

    def check() -> str:
        g = torch.Generator().manual_seed(0)
        B, T, num_heads, hs, head = 2, 5, 4, 3, 1
        E = num_heads * hs
        heads = torch.randn(B, T, E, generator=g, dtype=torch.float64)
        out_proj = torch.nn.Linear(E, E, dtype=torch.float64)
        with torch.no_grad():
            for parameter in out_proj.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=g, dtype=torch.float64))
        with torch.no_grad():
            answer = fn(heads.clone(), out_proj, head, num_heads)
            expected = solution_ablate_head(heads, out_proj, head, num_heads)
        if _close(answer, expected, 1e-6):
            return f"head {head} of {num_heads} zeroed: columns {head * hs}..{(head + 1) * hs - 1} of out_proj's input"
        _require_shape(
            answer, expected, f"the attention's output should be (B, T, E) = {tuple(expected.shape)}"
        )
        with torch.no_grad():
            rows_zeroed = out_proj(heads).clone()
            rows_zeroed[..., head * hs : (head + 1) * hs] = 0.0
            positions_zeroed = heads.clone()
            positions_zeroed[:, head * hs : (head + 1) * hs] = 0.0
            mistakes = [
                (
                    solution_ablate_head(heads, out_proj, head + 1, num_heads),
                    f"you zeroed head {head + 1}'s columns: head h owns [h·hs, (h + 1)·hs), counted from 0",
                ),
                (
                    solution_ablate_head(heads, out_proj, head - 1, num_heads),
                    f"you zeroed head {head - 1}'s columns: head h owns [h·hs, (h + 1)·hs), counted from 0",
                ),
                (
                    rows_zeroed,
                    "you zeroed a slice of out_proj's OUTPUT: after out_proj every output dim mixes all heads; "
                    "zero the head's slice of its INPUT (the heads side by side), then apply out_proj",
                ),
                (
                    out_proj(positions_zeroed),
                    "you zeroed positions (dim 1, the tokens), not the head's columns: slice the last dim",
                ),
                (
                    torch.zeros_like(expected),
                    "you zeroed the whole attention output: that switches off every head; zero one head's slice",
                ),
                (
                    out_proj(torch.zeros_like(heads)),
                    "you zeroed every head's columns: only head `head`'s slice goes to 0, the others stay",
                ),
            ]
        _refuse_known_mistakes(answer, mistakes, 1e-6)
        raise _NotPassed("out_proj(heads with head `head`'s columns set to 0) differs from your answer")

    _verdict("ablate_head", check)
