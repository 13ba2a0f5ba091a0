"""The circuit tools on attention patterns and models whose answer is known by construction, and on
imported Hugging Face models."""

from __future__ import annotations

import pytest
import torch
from conftest import one_hot_rows, randomize

from minitransformer import TransformerConfig, TransformerWithLMHead
from minitransformer.teaching.circuits import (
    ablate_head,
    attention_of,
    attention_patterns,
    copied_token_loss,
    copying_score,
    hand_built_induction_model,
    head_output,
    head_scores,
    induction_batch,
    induction_targets,
    next_token_losses,
    patch_head,
    prefix_matching_score,
    previous_token_share,
    repeated_random_tokens,
    uniform_attention,
)


def tiny_model(**overrides) -> TransformerWithLMHead:
    """2 layers, 3 heads of 8 dims, 50 tokens; random weights, eval mode."""
    values = dict(embed_dim=24, hidden_dim=40, num_heads=3, num_layers=2, vocab_size=50,
                  num_max_positions=16, dropout=0.0, norm_placement="pre", final_layer_norm=True)  # fmt: skip
    torch.manual_seed(0)
    return TransformerWithLMHead(TransformerConfig(**{**values, **overrides})).eval()


# ----------------------------------------------------------------------------------------------
# Scores on attention patterns, and their uniform baselines
# ----------------------------------------------------------------------------------------------


def test_uniform_attention_spreads_each_row_over_what_it_may_see():
    causal = uniform_attention(4)[0, 0]
    assert causal[2].tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0.0])
    assert uniform_attention(4, causal=False)[0, 0].eq(0.25).all()
    # previous-token share of a uniform causal head: mean over t = 1..T-1 of 1/(t + 1)
    T = 7
    expected = sum(1 / (t + 1) for t in range(1, T)) / (T - 1)
    assert previous_token_share(uniform_attention(T)).item() == pytest.approx(expected)


def test_induction_targets_are_the_tokens_after_each_earlier_occurrence():
    a, b, c = 5, 6, 7
    targets = induction_targets(torch.tensor([[a, b, a, c, a]]))[0]
    assert [row.nonzero().flatten().tolist() for row in targets] == [[], [], [1], [], [1, 3]]
    # a token right after itself: its earlier occurrence is the token before, so it looks at itself
    assert induction_targets(torch.tensor([[a, a]]))[0, 1].nonzero().flatten().tolist() == [1]


def test_prefix_matching_score_on_a_repeated_sequence_minds_the_off_by_one():
    n = 6
    tokens = torch.cat([torch.randperm(20)[:n]] * 2)[None]  # (1, 2n): n distinct tokens, twice
    T = 2 * n
    first_half = list(range(n))  # rows of the first copy look at themselves: they have nothing to match
    induction = one_hot_rows(first_half + [i - n + 1 for i in range(n, T)], T)
    occurrence = one_hot_rows(first_half + [i - n for i in range(n, T)], T)  # the off-by-one
    previous = one_hot_rows([0] + list(range(T - 1)), T)
    heads = torch.stack([induction, occurrence, previous])[None]  # (1, 3, T, T)
    assert prefix_matching_score(heads, tokens).tolist() == [1.0, 0.0, 0.0]

    uniform = prefix_matching_score(uniform_attention(T), tokens).item()
    assert uniform == pytest.approx(sum(1 / (i + 1) for i in range(n, T)) / n)  # one target in i + 1 keys

    with pytest.raises(ValueError, match="no token occurs twice"):
        prefix_matching_score(heads, torch.arange(T)[None])


def test_repeated_random_tokens_repeat_their_first_half():
    x = repeated_random_tokens(vocab_size=30, length=5, batch_size=3, seed=1, low=4)
    assert x.shape == (3, 10) and torch.equal(x[:, :5], x[:, 5:]) and x.min() >= 4 and x.max() < 30
    assert torch.equal(x, repeated_random_tokens(30, 5, 3, seed=1, low=4))


# ----------------------------------------------------------------------------------------------
# Hand-built models
# ----------------------------------------------------------------------------------------------


def test_a_hand_built_induction_circuit_scores_one_where_it_was_built():
    model, x = hand_built_induction_model(), induction_batch()
    scores = head_scores(model, x)
    uniform = previous_token_share(uniform_attention(x.shape[1])).item()
    assert scores["previous_token"][0, 0].item() == pytest.approx(1.0, abs=1e-4)  # layer 0, head 0
    assert scores["prefix_matching"][1, 0].item() == pytest.approx(1.0, abs=1e-4)  # layer 1, head 0
    assert scores["copying"][1, 0].item() == pytest.approx(1.0, abs=1e-5)
    assert scores["prefix_matching"][0, 0].item() < 0.01  # the previous-token head is no induction head
    # the flat heads 1 score what a uniform head scores
    assert scores["previous_token"][:, 1].tolist() == pytest.approx([uniform, uniform], abs=1e-6)
    assert scores["previous_token_uniform"].item() == pytest.approx(uniform, abs=1e-6)
    assert scores["prefix_matching"][:, 1].tolist() == pytest.approx(
        [scores["prefix_matching_uniform"].item()] * 2
    )
    assert "prefix_matching" not in head_scores(model, torch.arange(10)[None])  # nothing repeats
    # position 7 holds the token of position 2 (n = 5): the induction head looks at 3, what came after it
    induction = attention_patterns(model, x)[1][:, 0]  # (B, T, T)
    assert induction[:, 7, 3].min().item() > 0.99


def test_ablating_either_head_of_the_circuit_breaks_copying_and_patching_brings_it_back():
    model, x = hand_built_induction_model(), induction_batch()
    copied = copied_token_loss(model, x, x, n=5)
    assert copied < 0.1
    for layer in (0, 1):  # both heads of the circuit are needed; the flat heads are not
        with ablate_head(model, layer, 0):
            assert copied_token_loss(model, x, x, n=5) > copied + 1, layer
        with ablate_head(model, layer, 0, mean_over=x):
            assert copied_token_loss(model, x, x, n=5) > copied + 1, layer
        with ablate_head(model, layer, 1):
            assert copied_token_loss(model, x, x, n=5) == pytest.approx(copied, abs=1e-6)
    # another first half: nothing to copy from; the induction head's clean output restores the answer
    corrupted = x.clone()
    corrupted[:, 1:6] = induction_batch(seed=1)[:, 1:6]
    assert copied_token_loss(model, corrupted, x, n=5) > copied + 1
    with patch_head(model, 1, 0, source=x):
        assert copied_token_loss(model, corrupted, x, n=5) == pytest.approx(copied, abs=1e-4)


def test_next_token_losses_average_to_the_models_own_loss():
    model, x = tiny_model(), torch.randint(0, 50, (2, 9))
    with torch.no_grad():
        _, loss = model(x, labels=x)
    losses = next_token_losses(model, x)
    assert losses.shape == (2, 8) and losses.mean().item() == pytest.approx(loss.item(), abs=1e-5)


def test_copying_score_is_plus_one_for_a_copying_head_and_minus_one_for_a_suppressing_one():
    model = tiny_model()
    attention, E, hs = attention_of(model, 1), 24, 8
    with torch.no_grad():
        # head 0's value reads dims 0..7 and its output writes them back: W_E W_V W_O W_U = (W_E P)(W_E P)ᵀ,
        # positive semi-definite with the tied unembedding; head 1 writes them back negated
        attention.in_proj_weight[2 * E : 2 * E + 2 * hs] = torch.eye(hs, E).repeat(2, 1)
        attention.out_proj.weight[:, :hs] = torch.eye(E, hs)
        attention.out_proj.weight[:, hs : 2 * hs] = -torch.eye(E, hs)
    scores = copying_score(model)[1]
    assert scores[:2].tolist() == pytest.approx([1.0, -1.0], abs=1e-5)

    # head 2 (random): the small (hs, hs) circuit has the eigenvalues of the whole (V, V) one
    embed = model.transformer.tokens_embeddings.weight.double()  # (V, E)
    part = slice(2 * hs, 3 * hs)
    value = attention.in_proj_weight[2 * E :][part].double()  # (hs, E)
    full = embed @ value.T @ attention.out_proj.weight[:, part].T.double() @ embed.T  # (V, V)
    eigenvalues = torch.linalg.eigvals(full)
    expected = (eigenvalues.real.sum() / eigenvalues.abs().sum()).item()
    assert scores[2].item() == pytest.approx(expected, abs=1e-4) and abs(expected) < 1


# ----------------------------------------------------------------------------------------------
# Ablation and patching
# ----------------------------------------------------------------------------------------------


def without_head_columns(model: TransformerWithLMHead, layer: int, head: int, mean: torch.Tensor):
    """A copy of `model` whose out_proj ignores the head's slice and adds out_proj(mean) in its place."""
    import copy

    edited = copy.deepcopy(model)
    attention = attention_of(edited, layer)
    hs = attention.out_proj.weight.shape[1] // attention.num_heads
    part = slice(head * hs, (head + 1) * hs)
    out_proj = attention.out_proj
    with torch.no_grad():
        out_proj.bias += out_proj.weight[:, part] @ mean
        out_proj.weight[:, part] = 0.0
    return edited


def test_zero_and_mean_ablation_equal_removing_the_heads_columns_from_out_proj():
    model, x = tiny_model(), torch.randint(0, 50, (2, 9))
    reference = torch.randint(0, 50, (4, 9))
    with torch.no_grad():
        plain = model(x)
        with ablate_head(model, layer=1, head=2):
            zeroed = model(x)
        with ablate_head(model, layer=1, head=2, mean_over=reference):
            mean_ablated = model(x)
        mean = head_output(model, reference, 1, 2).mean(dim=(0, 1))
        torch.testing.assert_close(zeroed, without_head_columns(model, 1, 2, torch.zeros(8))(x))
        torch.testing.assert_close(mean_ablated, without_head_columns(model, 1, 2, mean)(x))
        assert not torch.allclose(zeroed, plain)
        torch.testing.assert_close(model(x), plain)  # the hook is gone
    assert not attention_of(model, 1).out_proj._forward_pre_hooks


def test_patching_a_head_brings_its_source_output_and_nothing_else():
    model = tiny_model()
    source, target = torch.randint(0, 50, (2, 7)), torch.randint(0, 50, (2, 7))
    with torch.no_grad():
        with patch_head(model, layer=0, head=1, source=source):
            patched = head_output(model, target, 0, 1)  # what the head gives the layers above
            other = head_output(model, target, 0, 0)
            logits = model(target)
        with patch_head(model, layer=0, head=1, source=target):  # from the target itself: no change
            same = model(target)
    torch.testing.assert_close(patched, head_output(model, source, 0, 1))
    torch.testing.assert_close(other, head_output(model, target, 0, 0))  # the other heads run as usual
    assert not torch.allclose(logits, model(target))
    torch.testing.assert_close(same, model(target))

    with pytest.raises(ValueError, match=r"same batch and length"), patch_head(model, 0, 1, source):
        model(target[:, :5])
    with pytest.raises(IndexError, match=r"heads 0..2"):
        head_output(model, target, 0, 3)
    with pytest.raises(IndexError, match=r"layers 0..1"):
        ablate_head(model, 2, 0).__enter__()


# ----------------------------------------------------------------------------------------------
# Imported Hugging Face models
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["gpt2", "bert"])
def test_the_tools_work_on_imported_hugging_face_models(tmp_path, kind):
    transformers = pytest.importorskip("transformers")
    from minitransformer.interop.hf import from_hf

    if kind == "gpt2":
        config = transformers.GPT2Config(vocab_size=40, n_positions=16, n_embd=12, n_head=3, n_layer=2)
        hf_model = transformers.GPT2LMHeadModel(config)
    else:
        config = transformers.BertConfig(vocab_size=40, max_position_embeddings=16, hidden_size=12,
                                         num_attention_heads=3, num_hidden_layers=2, intermediate_size=20)  # fmt: skip
        hf_model = transformers.BertForMaskedLM(config)
    torch.manual_seed(0)
    randomize(hf_model).save_pretrained(tmp_path)
    model = from_hf(tmp_path, dropout=0.0)
    x = repeated_random_tokens(40, 5, batch_size=2, low=1)  # (2, 10)
    scores = head_scores(model, x)
    for name in ("previous_token", "prefix_matching", "copying"):
        assert scores[name].shape == (2, 3), name
    assert scores["copying"].abs().max() <= 1.0
    if kind == "bert":  # a bidirectional head's uniform baseline: 1/T on every key
        assert scores["previous_token_uniform"].item() == pytest.approx(1 / 10)
    with torch.no_grad():
        with ablate_head(model, 1, 0):
            ablated = model(x)
        expected = without_head_columns(model, 1, 0, torch.zeros(4))
        torch.testing.assert_close(ablated, expected(x))
