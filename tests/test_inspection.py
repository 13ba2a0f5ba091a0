"""The attention read-outs on matrices whose answer is known, and the context probe on a real model."""

import pytest
import torch
from conftest import one_hot_rows

from minitransformer import TransformerConfig, TransformerWithLMHead
from minitransformer.teaching.inspection import column_share, next_token_probability, previous_token_share


def test_previous_token_share_is_one_on_a_previous_token_head_and_zero_elsewhere():
    T = 6
    previous = one_hot_rows([0] + list(range(T - 1)), T)  # row i looks at i - 1 (row 0 at itself)
    itself = torch.eye(T)
    two_back = one_hot_rows([0, 1] + list(range(T - 2)), T)  # rows 0 and 1 look at themselves
    first = one_hot_rows([0] * T, T)
    heads = torch.stack([previous, itself, two_back, first])[None]  # (1, 4, T, T)
    shares = previous_token_share(heads)
    assert shares.shape == (4,)
    assert shares[0].item() == pytest.approx(1.0)
    assert shares[1].item() == 0.0 and shares[2].item() == 0.0
    assert shares[3].item() == pytest.approx(1 / (T - 1))  # only row 1, whose previous token is the first


def test_previous_token_share_averages_over_the_batch():
    uniform = torch.tril(torch.ones(5, 5))
    uniform = uniform / uniform.sum(-1, keepdim=True)  # a causal head spreading evenly over the prefix
    batch = torch.stack([uniform[None], torch.eye(5)[None]])  # (2, 1, 5, 5)
    expected = (sum(1 / (i + 1) for i in range(1, 5)) / 4 + 0.0) / 2
    assert previous_token_share(batch).item() == pytest.approx(expected)


def test_column_share_reads_the_first_and_last_columns():
    T = 4
    heads = torch.stack([one_hot_rows([0] * T, T), one_hot_rows([T - 1] * T, T)])[None]
    assert column_share(heads, 0).tolist() == [1.0, 0.0]
    assert column_share(heads, -1).tolist() == [0.0, 1.0]


def test_next_token_probability_follows_the_model_and_checks_the_context_size():
    torch.manual_seed(0)
    config = TransformerConfig(
        embed_dim=16,
        hidden_dim=32,
        num_heads=2,
        num_layers=1,
        vocab_size=11,
        num_max_positions=8,
        dropout=0.0,
    )
    model = TransformerWithLMHead(config).eval()
    windows = torch.tensor([[3, 1, 4, 1, 5], [9, 2, 6, 5, 3]])
    probabilities = next_token_probability(model, windows, [1, 4])
    assert probabilities.shape == (2, 2)
    with torch.no_grad():
        whole = model(torch.tensor([[9, 2, 6, 5]]))[0, -1].softmax(-1)[3].item()
        last_one = model(torch.tensor([[1]]))[0, -1].softmax(-1)[5].item()
    assert probabilities[1, 1].item() == pytest.approx(whole, abs=1e-6)
    assert probabilities[0, 0].item() == pytest.approx(last_one, abs=1e-6)
    with pytest.raises(ValueError, match="context size 5 is outside 1..4"):
        next_token_probability(model, windows, [5])
