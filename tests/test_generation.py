"""Sampling with and without the key/value cache."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from minitransformer import TransformerWithLMHead
from minitransformer.generation import filter_logits


@pytest.mark.parametrize("rotary", [False, True])
def test_cache_and_full_recompute_give_identical_greedy_output(tiny_config, rotary):
    model = TransformerWithLMHead(dataclasses.replace(tiny_config, rotary=rotary))
    prompt = torch.randint(0, 50, (2, 4))
    with_cache = model.generate(prompt, 8, temperature=0)
    without = model.generate(prompt, 8, temperature=0, use_cache=False)
    assert with_cache.shape == (2, 12)
    assert torch.equal(with_cache, without)
    assert torch.equal(with_cache[:, :4], prompt)
    assert model.training  # the mode is restored


def test_sampling_is_seeded(tiny_config):
    model = TransformerWithLMHead(tiny_config)
    prompt = torch.randint(0, 50, (1, 3))
    a = model.generate(prompt, 6, top_k=10, seed=1)
    assert torch.equal(a, model.generate(prompt, 6, top_k=10, seed=1))
    outputs = {tuple(model.generate(prompt, 6, seed=s)[0].tolist()) for s in range(5)}
    assert len(outputs) > 1


def test_generation_stops_at_the_context_length(tiny_config):
    model = TransformerWithLMHead(tiny_config)
    with pytest.warns(UserWarning, match="stopping after 6 new tokens"):
        out = model.generate(torch.zeros(1, 10, dtype=torch.long), 20)
    assert out.shape == (1, 16)
    with pytest.raises(ValueError, match="num_max_positions=16"):
        model.generate(torch.zeros(1, 16, dtype=torch.long), 1)


def test_mlm_model_refuses_to_generate(tiny_config):
    model = TransformerWithLMHead(dataclasses.replace(tiny_config, mlm=True))
    with pytest.raises(ValueError, match="masked LM"):
        model.generate(torch.zeros(1, 3, dtype=torch.long), 2)


def test_top_k_and_top_p_filtering():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, False, True, True]]
    # nucleus 0.7: 0.5 alone is not enough, 0.5 + 0.3 reaches it; the rest is dropped
    assert torch.isinf(filter_logits(logits, top_p=0.7)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.4)).tolist() == [[False, True, True, True]]


@pytest.mark.parametrize(
    "prompt_shape, max_new_tokens, top_p, message",
    [
        ((1, 3), 2, 0.0, r"top_p=0.0: must be in \(0, 1\]"),
        ((1, 3), 2, -0.5, r"top_p=-0.5: must be in \(0, 1\]"),
        ((1, 3), 2, 1.5, r"top_p=1.5: must be in \(0, 1\]"),
        ((1, 3), -1, None, "max_new_tokens=-1: must be a whole number, 0 or more"),
        ((1, 3), 2.5, None, "max_new_tokens=2.5: must be a whole number"),
        ((1, 0), 2, None, r"shape \(1, 0\)"),
        ((0, 3), 2, None, r"shape \(0, 3\)"),
        ((0,), 2, None, r"shape \(1, 0\)"),
    ],
)
def test_bad_sampling_arguments_name_the_value_and_its_range(
    tiny_config, prompt_shape, max_new_tokens, top_p, message
):
    model = TransformerWithLMHead(tiny_config)
    with pytest.raises(ValueError, match=message):
        model.generate(torch.zeros(prompt_shape, dtype=torch.long), max_new_tokens, top_p=top_p)


def test_sampling_argument_bounds_are_accepted(tiny_config):
    model = TransformerWithLMHead(tiny_config)
    prompt = torch.zeros(1, 3, dtype=torch.long)
    assert torch.equal(model.generate(prompt, 0), prompt)  # nothing to add
    assert model.generate(prompt, 2, top_p=1.0, seed=0).shape == (1, 5)
    greedy = model.generate(prompt, 4, temperature=0)
    assert torch.equal(model.generate(prompt, 4, top_p=1e-9, seed=0), greedy)  # the most likely token only


def test_suppressed_ids_are_never_generated(tiny_config):
    torch.manual_seed(0)
    config = dataclasses.replace(tiny_config, norm_placement="pre", final_layer_norm=True)
    model = TransformerWithLMHead(config).eval()
    with torch.no_grad():  # make token 3 the overwhelming favourite everywhere
        model.lm_head.decoder.weight[3] *= 50
    prompt = torch.tensor([[1, 2]])
    assert (model.generate(prompt, 12, temperature=0)[0, 2:] == 3).any()
    for kwargs in ({"temperature": 0}, {"top_p": 0.9, "seed": 0}, {"temperature": 2.0, "seed": 1}):
        out = model.generate(prompt, 12, suppress_ids=[3], **kwargs)[0, 2:]
        assert not (out == 3).any(), kwargs


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"temperature": -1}, "temperature=-1: must be a finite number >= 0"),
        ({"temperature": float("nan")}, "temperature=nan"),
        ({"temperature": float("inf")}, "temperature=inf"),
        ({"top_k": -5}, "top_k=-5: must be a whole number >= 1"),
        ({"top_k": 0}, "top_k=0"),
        ({"top_k": 1.5}, "top_k=1.5"),
        ({"top_p": float("nan")}, "top_p=nan"),
    ],
)
def test_temperature_and_top_k_out_of_range_are_refused(tiny_config, kwargs, message):
    """Issue 27 items 10, 23: temperature=-1 sampled the inverted distribution, top_k=-5 turned top-k off,
    nan/1.5/2.5 raised raw torch errors."""
    model = TransformerWithLMHead(tiny_config)
    with pytest.raises(ValueError, match=message):
        model.generate(torch.zeros(1, 3, dtype=torch.long), 2, **kwargs)
