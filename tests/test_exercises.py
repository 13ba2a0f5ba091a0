"""The exercise checkers: each passes its reference solution, names the usual mistakes, and says when
the learner has not written anything yet."""

import math

import pytest
import torch
import torch.nn.functional as F

from minitransformer.teaching import exercises as ex
from minitransformer.teaching.circuits import prefix_matching_score
from minitransformer.teaching.inspection import previous_token_share


def not_written(*args):
    raise NotImplementedError


def verdict(capsys, checker, fn) -> tuple[bool, str]:
    """(passed, the line the checker printed)"""
    checker(fn)
    out = capsys.readouterr().out
    assert out.count("\n") == 1, out
    return out.startswith("exercise passed:"), out


@pytest.mark.parametrize(
    "checker, solution",
    [
        (ex.check_attention, ex.solution_attention),
        (ex.check_layer_norm, ex.solution_layer_norm),
        (ex.check_mask_tokens, ex.solution_mask_tokens),
        (ex.check_masked_lm_loss, ex.solution_masked_lm_loss),
        (ex.check_classify, ex.solution_classify),
        (ex.check_padding_mask, ex.solution_padding_mask),
        (ex.check_llrd, ex.solution_llrd),
        (ex.check_adam_update, ex.solution_adam_update),
        (ex.check_gelu_tanh, ex.solution_gelu_tanh),
        (ex.check_conv1d_to_linear, ex.solution_conv1d_to_linear),
        (ex.check_previous_token_share, previous_token_share),
        (ex.check_attention_entropy, ex.solution_attention_entropy),
        (ex.check_prefix_matching_score, prefix_matching_score),
        (ex.check_ablate_head, ex.solution_ablate_head),
        (ex.check_pre_norm_forward, ex.solution_pre_norm_forward),
        (ex.check_train_step, ex.solution_train_step),
    ],
    ids=lambda f: f.__name__,
)
def test_each_checker_passes_its_solution_and_waits_for_an_attempt(capsys, checker, solution):
    passed, out = verdict(capsys, checker, solution)
    assert passed and out.startswith("exercise passed:"), out
    passed, out = verdict(capsys, checker, not_written)
    assert not passed and out.startswith("exercise not attempted yet:"), out


def scores(q, k, scale=True):
    s = q @ k.transpose(-2, -1)
    return s / math.sqrt(q.size(-1)) if scale else s


def unscaled(q, k, v, allowed):
    return scores(q, k, scale=False).masked_fill(~allowed, float("-inf")).softmax(-1) @ v


def unmasked(q, k, v, allowed):
    return scores(q, k).softmax(-1) @ v


def inverted(q, k, v, allowed):
    return scores(q, k).masked_fill(allowed, -1e9).softmax(-1) @ v


def wrong_dim(q, k, v, allowed):
    return scores(q, k).masked_fill(~allowed, -1e9).softmax(dim=-2) @ v


def mask_after_softmax(q, k, v, allowed):
    return scores(q, k).softmax(-1).masked_fill(~allowed, 0.0) @ v


def causal_only(q, k, v, allowed):  # builds its own causal mask and forgets the padding
    T, S = q.size(-2), k.size(-2)
    causal = torch.ones(T, S, dtype=torch.bool).tril()
    return scores(q, k).masked_fill(~causal, float("-inf")).softmax(-1) @ v


def with_minus_1e9(q, k, v, allowed):  # a finite fill instead of -inf is right too
    return scores(q, k).masked_fill(~allowed, -1e9).softmax(-1) @ v


def divided_by_sqrt_embed(q, k, v, allowed):  # √(nh·hs) = √E: the whole embedding, not one head
    s = q @ k.transpose(-2, -1) / math.sqrt(q.size(1) * q.size(-1))
    return s.masked_fill(~allowed, float("-inf")).softmax(-1) @ v


def mask_multiplied_in(q, k, v, allowed):
    return (scores(q, k) * allowed).softmax(-1) @ v


def filled_with_zero(q, k, v, allowed):
    return scores(q, k).masked_fill(~allowed, 0.0).softmax(-1) @ v


def transposed_mask(q, k, v, allowed):
    return scores(q, k).masked_fill(~allowed.transpose(-2, -1), float("-inf")).softmax(-1) @ v


def test_attention_checker_accepts_a_finite_fill(capsys):
    passed, out = verdict(capsys, ex.check_attention, with_minus_1e9)
    assert passed, out


@pytest.mark.parametrize(
    "answer, message",
    [
        (unscaled, "not divided by sqrt"),
        (unmasked, "mask is not applied"),
        (inverted, "mask is inverted"),
        (wrong_dim, "softmax runs over the queries"),
        (mask_after_softmax, "applied after the softmax"),
        (causal_only, "padding is ignored"),
        (divided_by_sqrt_embed, "divided by sqrt(nh·hs) = sqrt(E)"),
        (mask_multiplied_in, "forbidden scores are set to 0"),
        (filled_with_zero, "forbidden scores are set to 0"),
        (transposed_mask, "the mask is transposed"),
    ],
    ids=lambda x: getattr(x, "__name__", ""),
)
def test_attention_checker_names_the_mistake(capsys, answer, message):
    passed, out = verdict(capsys, ex.check_attention, answer)
    assert not passed and out.startswith("exercise not passed:") and message in out, out


@pytest.mark.parametrize(
    "answer, message",
    [
        (
            lambda x, w, b, eps: (
                (x - x.mean(-1, keepdim=True)) / (x.var(-1, keepdim=True) + eps).sqrt() * w + b
            ),
            "unbiased variance",
        ),
        (
            lambda x, w, b, eps: (
                (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True, unbiased=False) + eps) * w + b
            ),
            "inside the square root",
        ),
        (lambda x, w, b, eps: F.layer_norm(x, x.shape[-1:], eps=eps), "weight (scale) and bias (shift)"),
        (lambda x, w, b, eps: F.layer_norm(x, x.shape[-1:], w, None, eps), "bias (shift) is not added"),
        (
            lambda x, w, b, eps: (
                (x - x.mean(-2, keepdim=True)) / (x.var(-2, keepdim=True, unbiased=False) + eps).sqrt() * w
                + b
            ),
            "over the tokens",
        ),
        (
            lambda x, w, b, eps: x / (x.var(-1, keepdim=True, unbiased=False) + eps).sqrt() * w + b,
            "mean is not",
        ),
        (lambda x, w, b, eps: F.layer_norm(x, x.shape[-1:], w, b, 1e-5), "values differ"),
    ],
)
def test_layer_norm_checker_names_the_mistake(capsys, answer, message):
    passed, out = verdict(capsys, ex.check_layer_norm, answer)
    assert not passed and message in out, out


def all_masked(ids, mask_id, vocab_size, generator):
    selected = torch.rand(ids.shape, generator=generator) < 0.15
    return ids.masked_fill(selected, mask_id), ids.masked_fill(~selected, -100)


def labels_of_corrupted(ids, mask_id, vocab_size, generator):
    inputs, labels = ex.solution_mask_tokens(ids, mask_id, vocab_size, generator)
    return inputs, inputs.masked_fill(labels == -100, -100)


def corrupt_with(random_ids, random_share=0.5):
    """An 80/10/10 answer whose random share is `random_ids(ids, vocab_size, generator)` and is taken with
    probability `random_share` of the 20 % left."""

    def answer(ids, mask_id, vocab_size, generator):
        selected = torch.rand(ids.shape, generator=generator) < 0.15
        to_mask = selected & (torch.rand(ids.shape, generator=generator) < 0.8)
        to_random = selected & ~to_mask & (torch.rand(ids.shape, generator=generator) < random_share)
        inputs = ids.masked_fill(to_mask, mask_id)
        inputs = torch.where(to_random, random_ids(ids, vocab_size, generator), inputs)
        return inputs, ids.masked_fill(~selected, -100)

    return answer


def from_the_text(ids, vocab_size, generator):  # a random token of the input, not of the vocabulary
    flat = ids.flatten()
    return flat[torch.randint(flat.numel(), ids.shape, generator=generator)]


def uniform(ids, vocab_size, generator):
    return torch.randint(vocab_size, ids.shape, generator=generator)


@pytest.mark.parametrize(
    "answer, message",
    [
        (all_masked, "became [MASK]; expected 80 %"),
        (labels_of_corrupted, "label must be its original id"),
        (corrupt_with(from_the_text), "not from the input"),
        (corrupt_with(lambda ids, v, g: torch.full_like(ids, 7)), "distinct ids"),
        (corrupt_with(lambda ids, v, g: (ids + 1) % v), "not from the input"),
        (
            corrupt_with(lambda ids, v, g: torch.randint(v, 2 * v, ids.shape, generator=g)),
            "outside the vocabulary",
        ),
        (corrupt_with(lambda ids, v, g: torch.randint(v // 2, ids.shape, generator=g)), "average"),
        (corrupt_with(uniform, random_share=0.1), "became another id; expected 10 %"),
        (corrupt_with(uniform, random_share=1.0), "became another id; expected 10 %"),
    ],
    ids=range(9),
)
def test_mask_tokens_checker_names_the_mistake(capsys, answer, message):
    passed, out = verdict(capsys, ex.check_mask_tokens, answer)
    assert not passed and message in out, out


def test_mask_tokens_checker_selects_with_the_right_share(capsys):
    def twenty_percent(ids, mask_id, vocab_size, generator):
        selected = torch.rand(ids.shape, generator=generator) < 0.2
        return ids.masked_fill(selected, mask_id), ids.masked_fill(~selected, -100)

    passed, out = verdict(capsys, ex.check_mask_tokens, twenty_percent)
    assert not passed and "expected 15 %" in out, out


@pytest.mark.parametrize(
    "answer, message",
    [
        (
            lambda lo, la: (
                (F.cross_entropy(lo.flatten(0, 1), la.flatten(), ignore_index=-100, reduction="sum"))
                / la.numel()
            ),
            "averaged over every position",
        ),
        (
            lambda lo, la: F.cross_entropy(lo.flatten(0, 1), la.flatten().clamp(min=0)),
            "ignored positions (-100)",
        ),
        (lambda lo, la: F.nll_loss(lo.flatten(0, 1), la.flatten()), "log-softmax is missing"),
        (
            lambda lo, la: F.cross_entropy(lo.flatten(0, 1), la.flatten(), reduction="sum"),
            "the sum, not the mean",
        ),
        (
            lambda lo, la: F.cross_entropy(lo[:, :-1].flatten(0, 1), la[:, 1:].flatten()),
            "shifted the labels",
        ),
        (lambda lo, la: F.cross_entropy(lo.flatten(0, 1), la.flatten(), reduction="none"), "one number"),
    ],
)
def test_masked_lm_loss_checker_names_the_mistake(capsys, answer, message):
    passed, out = verdict(capsys, ex.check_masked_lm_loss, answer)
    assert not passed and message in out, out


@pytest.mark.parametrize(
    "pick, message",
    [
        (lambda h, clf, pad: h[:, 0], "first position"),
        (lambda h, clf, pad: h.mean(dim=1), "averaged over the tokens"),
        (
            lambda h, clf, pad: (h * ~pad[..., None]).sum(1) / (~pad).sum(1, keepdim=True),
            "averaged over the tokens",
        ),
        (lambda h, clf, pad: h[clf] * 2, "the logits differ"),
    ],
)
def test_classify_checker_names_the_mistake(capsys, pick, message):
    def answer(model, x, clf_tokens_mask, padding_mask):
        h = model.transformer(x, padding_mask=padding_mask).last_hidden_state
        return model.classification_head(pick(h, clf_tokens_mask, padding_mask))

    passed, out = verdict(capsys, ex.check_classify, answer)
    assert not passed and message in out, out


def test_classify_checker_catches_a_missing_padding_mask(capsys):
    """Right padding cannot show it in a causal model ([CLS] comes before the padding); the checker's
    left-padded row does."""

    def without_mask(model, x, clf_tokens_mask, padding_mask):
        h = model.transformer(x).last_hidden_state
        return model.classification_head(h[clf_tokens_mask])

    passed, out = verdict(capsys, ex.check_classify, without_mask)
    assert not passed and "the padding mask is not used" in out, out


def test_classify_checker_catches_the_last_position(capsys):
    def last_position(model, x, clf_tokens_mask, padding_mask):
        h = model.transformer(x, padding_mask=padding_mask).last_hidden_state
        return model.classification_head(h[:, -1])

    passed, out = verdict(capsys, ex.check_classify, last_position)
    assert not passed and "you took the last position" in out, out


@pytest.mark.parametrize(
    "answer, message",
    [
        (lambda lr, g, n: list(reversed(ex.solution_llrd(lr, g, n))), "order is reversed"),
        (lambda lr, g, n: [lr * g ** (d + 1) for d in range(n + 2)], "head should get the base rate"),
        (lambda lr, g, n: ex.solution_llrd(lr, g, n)[:-1], "4 rates for 5 blocks"),
    ],
)
def test_llrd_checker_names_the_mistake(capsys, answer, message):
    passed, out = verdict(capsys, ex.check_llrd, answer)
    assert not passed and message in out, out


@pytest.mark.parametrize(
    "answer, message",
    [
        (lambda lengths, T: torch.arange(T)[None, :] < lengths[:, None], "inverted"),
        (lambda lengths, T: torch.arange(T)[None, :] > lengths[:, None], "padding starts at length"),
        (lambda lengths, T: torch.arange(T)[None, :] >= lengths[:, None] - 1, "last real token"),
        (lambda lengths, T: (torch.arange(T)[None, :] >= lengths[:, None]).long(), "should be bool"),
        (lambda lengths, T: torch.arange(T) >= lengths[0], "should be (B, T)"),
    ],
)
def test_padding_mask_checker_names_the_mistake(capsys, answer, message):
    passed, out = verdict(capsys, ex.check_padding_mask, answer)
    assert not passed and message in out, out


def adam_variant(correct=True, eps_inside=False, square=True):
    def update(grad, m, v, step, lr, betas, eps):
        b1, b2 = betas
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * (grad**2 if square else grad)
        m_hat, v_hat = (m / (1 - b1**step), v / (1 - b2**step)) if correct else (m, v)
        denominator = (v_hat + eps).sqrt() if eps_inside else v_hat.abs().sqrt() + eps
        return lr * m_hat / denominator, m, v

    return update


@pytest.mark.parametrize(
    "answer, message",
    [
        (adam_variant(correct=False), "early steps come out too large"),
        (adam_variant(eps_inside=True), "eps is inside the square root"),
        (adam_variant(square=False), "not its square"),
        (lambda grad, m, v, step, lr, betas, eps: (lr * grad, m, v), "torch.optim.Adam gives"),
    ],
)
def test_adam_checker_names_the_mistake(capsys, answer, message):
    passed, out = verdict(capsys, ex.check_adam_update, answer)
    assert not passed and message in out, out


SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


def tanh_gelu(c=SQRT_2_OVER_PI, a=0.044715, power=3, half=0.5):
    return lambda x: half * x * (1 + torch.tanh(c * (x + a * x**power)))


@pytest.mark.parametrize(
    "answer, message",
    [
        (F.gelu, "exact GELU"),
        (lambda x: x * torch.sigmoid(1.702 * x), "sigmoid approximation"),
        (tanh_gelu(c=math.sqrt(2 * math.pi)), "not √(2π)"),
        (tanh_gelu(c=2 / math.pi), "square root is missing"),
        (tanh_gelu(power=2), "x³, not x²"),
        (tanh_gelu(half=1.0), "0.5 in front"),
        (tanh_gelu(a=0.04715), "the constant 0.044715 is off: your answer uses 0.04715,"),
        (tanh_gelu(a=0.0447), "the constant 0.044715 is off: your answer uses 0.0447,"),
        (tanh_gelu(c=0.7979), "the constant √(2/π) is off: your answer uses 0.7979,"),
        (
            lambda x: 0.5 * x * (1 + torch.tanh(SQRT_2_OVER_PI * x + 0.044715 * x**3)),
            "√(2/π) multiplies the whole sum",
        ),
        (
            lambda x: 0.5 * x * (1 + torch.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x) ** 3)),
            "only x is cubed",
        ),
        (
            lambda x: 0.5 * x + torch.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x**3)),
            "0.5·x multiplies (1 + tanh(…)) as a whole",
        ),
        (lambda x: torch.relu(x), "values differ"),
    ],
)
def test_gelu_checker_names_the_mistake(capsys, answer, message):
    passed, out = verdict(capsys, ex.check_gelu_tanh, answer)
    assert not passed and message in out, out


def test_gelu_checker_accepts_a_constant_held_in_float32(capsys):
    """torch.tensor(2 / math.pi) is float32: √ of it is 1e-8 off, rounding, not a mistyped constant."""

    def float32_constant(x):
        return 0.5 * x * (1 + torch.tanh(torch.tensor(2 / math.pi).sqrt() * (x + 0.044715 * x**3)))

    passed, out = verdict(capsys, ex.check_gelu_tanh, float32_constant)
    assert passed, out


@pytest.mark.parametrize(
    "answer, message",
    [
        (lambda w: tuple(w.split(w.size(0), dim=-1)), "not transposed"),
        (lambda w: tuple(reversed(w.t().chunk(3, dim=0))), "wrong order"),
        (lambda w: tuple(w.chunk(3, dim=0)), "should be (E, E)"),
        (lambda w: w.t(), "three weights"),
    ],
)
def test_conv1d_checker_names_the_mistake(capsys, answer, message):
    passed, out = verdict(capsys, ex.check_conv1d_to_linear, answer)
    assert not passed and message in out, out


def diagonal(offset):
    return lambda a: a.diagonal(offset=offset, dim1=-2, dim2=-1).mean(dim=(0, -1))


@pytest.mark.parametrize(
    "answer, message",
    [
        (diagonal(1), "diagonal above"),
        (diagonal(0), "main diagonal"),
        (diagonal(-2), "two tokens back"),
        (lambda a: a.diagonal(offset=-1, dim1=-2, dim2=-1).sum(-1).mean(0) / a.size(-1), "divided by T"),
        (lambda a: a[0].diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1), "average over the batch"),
        (
            lambda a: a[0, :, 1:, :].diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1),
            "two tokens back",
        ),  # the slip
        (lambda a: a.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1), "one number per head"),
    ],
)
def test_previous_token_checker_names_the_mistake(capsys, answer, message):
    passed, out = verdict(capsys, ex.check_previous_token_share, answer)
    assert not passed and message in out, out


@pytest.mark.parametrize(
    "answer, message",
    [
        (lambda a: -(a * a.log()).sum(-1).mean(dim=(0, -1)), "0·log 0"),
        (lambda a: -(a * a.clamp(min=1e-12).log2()).sum(-1).mean(dim=(0, -1)), "bits"),
        (lambda a: (a * a.clamp(min=1e-12).log()).sum(-1).mean(dim=(0, -1)), "the sign"),
        (lambda a: -(a * a.clamp(min=1e-12).log()).mean(-1).mean(dim=(0, -1)), "averaged over the keys"),
        (lambda a: -(a * a.clamp(min=1e-12).log()).sum(-1).mean(-1), "one number per head"),
    ],
)
def test_attention_entropy_checker_names_the_mistake(capsys, answer, message):
    passed, out = verdict(capsys, ex.check_attention_entropy, answer)
    assert not passed and message in out, out


def prefix_matching_by_loops(shift=1, all_positions=False, rows=None):
    """A learner's loops: the weight on key j + shift for each earlier occurrence j of token i (shift 1 is
    right), averaged over the repeated tokens (or over all positions), over `rows` of the batch."""

    def score(attention, tokens):
        B, nh, T, _ = attention.shape
        total, count = torch.zeros(nh, dtype=attention.dtype), 0
        for b in range(B) if rows is None else rows:
            for i in range(T):
                earlier = [j for j in range(i) if tokens[b, j] == tokens[b, i]]
                count += bool(earlier) or all_positions
                for j in earlier:
                    total += attention[b, :, i, j + shift]
        return total / count

    return score


def half_repeated(attention, tokens):  # assumes the text is one half repeated: key i − T/2 + 1
    T = tokens.shape[1]
    return attention[..., T // 2 :, :].diagonal(offset=1 - T // 2, dim1=-2, dim2=-1).mean(dim=(0, -1))


def test_prefix_matching_checker_passes_loops_that_do_it_right(capsys):
    passed, out = verdict(capsys, ex.check_prefix_matching_score, prefix_matching_by_loops())
    assert passed, out


@pytest.mark.parametrize(
    "answer, message",
    [
        (prefix_matching_by_loops(shift=0), "off by one"),
        (prefix_matching_by_loops(all_positions=True), "averaged over all T positions"),
        (half_repeated, "one half repeated"),
        (prefix_matching_by_loops(rows=[0]), "average over the batch"),
        (lambda a, t: (a * 0).sum(-1).mean(dim=(0, 1)), "one number per head"),
    ],
)
def test_prefix_matching_checker_names_the_mistake(capsys, answer, message):
    passed, out = verdict(capsys, ex.check_prefix_matching_score, answer)
    assert not passed and message in out, out


def zero_slice(where):
    """A learner's ablation that zeroes head h's slice [h·hs, (h + 1)·hs) of `where`: "input" (right),
    "output" (after out_proj), "positions" (dim 1 of the input)."""

    def ablate(heads, out_proj, head, num_heads):
        hs = heads.shape[-1] // num_heads
        part = slice(head * hs, (head + 1) * hs)
        if where == "output":
            y = out_proj(heads)
            y[..., part] = 0.0
            return y
        heads = heads.clone()
        heads[(..., part) if where == "input" else (slice(None), part)] = 0.0
        return out_proj(heads)

    return ablate


def test_ablate_head_checker_passes_a_subtraction_of_the_heads_contribution(capsys):
    def subtract(heads, out_proj, head, num_heads):  # out_proj is linear: remove what the head adds
        hs = heads.shape[-1] // num_heads
        part = slice(head * hs, (head + 1) * hs)
        return out_proj(heads) - heads[..., part] @ out_proj.weight[:, part].T

    for answer in (subtract, zero_slice("input")):
        passed, out = verdict(capsys, ex.check_ablate_head, answer)
        assert passed, out


@pytest.mark.parametrize(
    "answer, message",
    [
        (lambda heads, out_proj, h, nh: zero_slice("input")(heads, out_proj, h + 1, nh), "head 2's columns"),
        (lambda heads, out_proj, h, nh: zero_slice("input")(heads, out_proj, h - 1, nh), "head 0's columns"),
        (zero_slice("output"), "OUTPUT"),
        (zero_slice("positions"), "zeroed positions"),
        (lambda heads, out_proj, h, nh: torch.zeros_like(heads), "whole attention output"),
        (lambda heads, out_proj, h, nh: out_proj(torch.zeros_like(heads)), "every head's columns"),
        (lambda heads, out_proj, h, nh: heads[..., :3], "(B, T, E)"),
    ],
)
def test_ablate_head_checker_names_the_mistake(capsys, answer, message):
    passed, out = verdict(capsys, ex.check_ablate_head, answer)
    assert not passed and message in out, out


def test_a_failing_answer_is_reported_in_one_line(capsys):
    def broken(q, k, v, allowed):
        return q @ v  # (.., T, hs) @ (.., S, hs): the shapes do not fit

    passed, out = verdict(capsys, ex.check_attention, broken)
    assert not passed and "your function raised RuntimeError" in out, out


def pre_norm(block="pre", final_norm=True, is_causal=True, positions=True, same_layer=False):
    """A learner's pre-norm forward pass, written out, with one slip switched on."""

    def forward(backbone, x):
        h = backbone.tokens_embeddings(x)
        if positions:
            h = h + backbone.position_embeddings(torch.arange(x.size(1)))
        for i in range(backbone.config.num_layers):
            parts = backbone.blocks[0 if same_layer else i]
            ln_1, ln_2 = parts.layer_norm_1, parts.layer_norm_2
            attn = lambda z, a=parts.attention: a(z, None, is_causal)[0]  # noqa: E731
            ff = parts.feed_forward
            if block == "pre":
                h = h + attn(ln_1(h))
                h = h + ff(ln_2(h))
            elif block == "normed residual":
                h = ln_1(h)
                h = h + attn(h)
                h = ln_2(h)
                h = h + ff(h)
            elif block == "post":
                h = ln_1(h + attn(h))
                h = ln_2(h + ff(h))
            elif block == "no residual":
                h = ff(ln_2(attn(ln_1(h))))
            elif block == "swapped norms":
                h = h + attn(ln_2(h))
                h = h + ff(ln_1(h))
        return backbone.final_layer_norm(h) if final_norm else h

    return forward


@pytest.mark.parametrize(
    "answer, message",
    [
        (pre_norm(block="normed residual"), "the residual adds to the normed value"),
        (pre_norm(block="post", final_norm=False), "that is post-norm"),
        (pre_norm(block="no residual"), "the residual connections are missing"),
        (pre_norm(block="swapped norms"), "the norms are swapped"),
        (pre_norm(final_norm=False), "the final layer norm is missing"),
        (pre_norm(is_causal=False), "the attention is not causal"),
        (pre_norm(positions=False), "the position embeddings are missing"),
        (pre_norm(same_layer=True), "every block uses layer 0's weights"),
        (lambda backbone, x: backbone(x).last_hidden_state[:, :-1], "should be (B, T, E)"),
    ],
    ids=range(9),
)
def test_pre_norm_forward_checker_names_the_mistake(capsys, answer, message):
    passed, out = verdict(capsys, ex.check_pre_norm_forward, answer)
    assert not passed and message in out, out


def training_step(shift=1, zero_grad=True, step=True, reduction="mean", zero_grad_last=False):
    """A learner's training step, written out, with one slip switched on."""

    def train_step(model, optimizer, batch):
        logits = model(batch)
        if shift == 1:
            logits, targets = logits[:, :-1], batch[:, 1:]
        elif shift == 0:
            targets = batch
        else:
            logits, targets = logits[:, 1:], batch[:, :-1]
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction=reduction)
        if zero_grad:
            optimizer.zero_grad()
        loss.backward()
        if zero_grad_last:
            optimizer.zero_grad()
        if step:
            optimizer.step()
        return loss.item()

    return train_step


def test_train_step_checker_accepts_the_library_loss(capsys):
    def with_labels(model, optimizer, batch):
        _, loss = model(batch, labels=batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    passed, out = verdict(capsys, ex.check_train_step, with_labels)
    assert passed, out


@pytest.mark.parametrize(
    "answer, message",
    [
        (training_step(shift=0), "the loss is not shifted"),
        (training_step(shift=-1), "the shift goes the wrong way"),
        (training_step(zero_grad=False), "optimizer.zero_grad() is missing"),
        (training_step(step=False), "the weights did not change"),
        (training_step(zero_grad_last=True), "the weights did not change"),
        (training_step(reduction="sum"), "the loss is summed"),
        (lambda model, optimizer, batch: model(batch), "return the loss as a number"),
    ],
    ids=range(7),
)
def test_train_step_checker_names_the_mistake(capsys, answer, message):
    passed, out = verdict(capsys, ex.check_train_step, answer)
    assert not passed and message in out, out
