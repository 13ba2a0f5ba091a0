"""The exercise checkers: each passes its reference solution, names the usual mistakes, and says when
the learner has not written anything yet."""

import math

import pytest
import torch
import torch.nn.functional as F

from minitransformer.teaching import exercises as ex
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
        (ex.check_mask_tokens, ex.solution_mask_tokens),
        (ex.check_classify, ex.solution_classify),
        (ex.check_llrd, ex.solution_llrd),
        (ex.check_gelu_tanh, ex.solution_gelu_tanh),
        (ex.check_previous_token_share, previous_token_share),
    ],
    ids=lambda f: f.__name__,
)
def test_each_checker_passes_its_solution_and_waits_for_an_attempt(capsys, checker, solution):
    passed, out = verdict(capsys, checker, solution)
    assert passed and out.startswith("exercise passed:"), out
    passed, out = verdict(capsys, checker, not_written)
    assert not passed and out.startswith("exercise not attempted yet:"), out


def unscaled(q, k, v, allowed):
    return ex.solution_attention(q * math.sqrt(q.size(-1)), k, v, allowed)


def unmasked(q, k, v, allowed):
    return ex.solution_attention(q, k, v, torch.ones_like(allowed))


def wrong_dim(q, k, v, allowed):
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))).masked_fill(~allowed, -1e9)
    return scores.softmax(dim=-2) @ v


@pytest.mark.parametrize(
    "answer, message",
    [
        (unscaled, "not divided by sqrt"),
        (unmasked, "mask is not applied"),
        (wrong_dim, "differs from softmax"),
    ],
)
def test_attention_checker_names_the_mistake(capsys, answer, message):
    passed, out = verdict(capsys, ex.check_attention, answer)
    assert not passed and out.startswith("exercise not passed:") and message in out, out


def all_masked(ids, mask_id, vocab_size, generator):
    selected = torch.rand(ids.shape, generator=generator) < 0.15
    return ids.masked_fill(selected, mask_id), ids.masked_fill(~selected, -100)


def labels_of_corrupted(ids, mask_id, vocab_size, generator):
    inputs, labels = ex.solution_mask_tokens(ids, mask_id, vocab_size, generator)
    return inputs, inputs.masked_fill(labels == -100, -100)


@pytest.mark.parametrize(
    "answer, message",
    [(all_masked, "became [MASK]; expected 80 %"), (labels_of_corrupted, "label must be its original id")],
)
def test_mask_tokens_checker_names_the_mistake(capsys, answer, message):
    passed, out = verdict(capsys, ex.check_mask_tokens, answer)
    assert not passed and message in out, out


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


def test_gelu_checker_tells_the_exact_gelu_apart(capsys):
    passed, out = verdict(capsys, ex.check_gelu_tanh, F.gelu)
    assert not passed and "exact GELU" in out, out


def test_previous_token_checker_recognises_the_two_back_diagonal(capsys):
    def two_back(attention):  # the slip tutorial 6 once made
        return attention[0, :, 1:, :].diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1)

    passed, out = verdict(capsys, ex.check_previous_token_share, two_back)
    assert not passed and "two tokens back" in out, out


def test_a_failing_answer_is_reported_in_one_line(capsys):
    def broken(q, k, v, allowed):
        return q @ v  # (.., T, hs) @ (.., S, hs): the shapes do not fit

    passed, out = verdict(capsys, ex.check_attention, broken)
    assert not passed and "your function raised RuntimeError" in out, out
