"""Masked-LM masking: proportions on a large batch, specials and padding untouched, seeded."""

import pytest
import torch

from minitransformer.data.masking import mask_tokens

VOCAB, SPECIAL, MASK = 1000, [0, 1, 2, 3, 4], 4


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, VOCAB, (64, 512), generator=g)  # (B, T)
    ids[:, 0], ids[:, -1] = 2, 3  # [CLS] ... [SEP]
    padding = torch.zeros_like(ids, dtype=torch.bool)
    padding[::2, 400:] = True  # half of the rows padded from position 400
    ids[padding] = 0
    return ids, padding


def run(batch, seed=0, probability=0.15):
    ids, padding = batch
    g = torch.Generator().manual_seed(seed)
    return mask_tokens(ids, VOCAB, SPECIAL, MASK, probability, generator=g, padding_mask=padding)


def test_proportions(batch):
    ids, padding = batch
    inputs, labels = run(batch)
    eligible = (ids > 4) & ~padding
    selected = labels != -100
    n = int(eligible.sum())  # ~29,000 positions: a 4-sigma band is well under 1 percentage point
    assert abs(selected.sum().item() / n - 0.15) < 0.01
    s = int(selected.sum())
    masked = (inputs == MASK) & selected
    unchanged = (inputs == ids) & selected
    randomised = selected & ~masked & ~unchanged
    assert abs(masked.sum().item() / s - 0.8) < 0.025
    # a random draw equal to the original counts as unchanged: expected 0.1 + 0.1 / 995
    assert abs(unchanged.sum().item() / s - 0.1) < 0.02
    assert abs(randomised.sum().item() / s - 0.1) < 0.02
    assert torch.equal(labels[selected], ids[selected])


def test_never_touches_specials_or_padding(batch):
    ids, padding = batch
    inputs, labels = run(batch, probability=1.0)
    protected = (ids <= 4) | padding
    assert torch.equal(inputs[protected], ids[protected])
    assert (labels[protected] == -100).all() and (labels[~protected] != -100).all()
    randomised = (inputs != ids) & (inputs != MASK)
    assert randomised.any() and (inputs[randomised] > 4).all()  # random tokens are never special


def test_seeded_and_input_untouched(batch):
    ids, _ = batch
    before = ids.clone()
    first, second, other = run(batch, seed=5), run(batch, seed=5), run(batch, seed=6)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[1], other[1])
    assert torch.equal(ids, before)


def test_rejects_bad_probability(batch):
    with pytest.raises(ValueError, match="mlm_probability"):
        run(batch, probability=0.0)
