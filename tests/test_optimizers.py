"""`minitransformer.training.optimizers`: Muon for the hidden matrices with AdamW for the rest."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from minitransformer import FineTuningConfig, TransformerWithClfHead, TransformerWithLMHead
from minitransformer.training.optimizers import MuonWithAdamW


def model_and_batch(tiny_config):
    torch.manual_seed(0)
    model = TransformerWithLMHead(dataclasses.replace(tiny_config, dropout=0.0, init_scheme="gpt2"))
    x = torch.randint(0, tiny_config.vocab_size, (4, 12))
    return model, x


def steps(model, optimizer, x, n):
    for _ in range(n):
        optimizer.zero_grad()
        model(x, labels=x)[1].backward()
        optimizer.step()


def test_muon_takes_the_hidden_matrices_and_adamw_the_rest(tiny_config):
    model, _ = model_and_batch(tiny_config)
    optimizer = MuonWithAdamW(model, lr=1e-3, weight_decay=0.01)
    muon = {id(p) for p in optimizer.param_groups[0]["params"]}
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[i] for i in muon) == sorted(
        n for n, p in model.named_parameters() if p.dim() == 2 and "embeddings" not in n
    )  # in_proj, out_proj and both feed-forward weights of every layer; never the tied embeddings
    E, L = tiny_config.embed_dim, tiny_config.num_layers
    shapes = [tuple(v.shape) for g in optimizer.muon.param_groups for v in g["params"]]
    assert shapes.count((E, E)) == 4 * L  # q, k, v apart (3 per layer) and out_proj: one matrix each
    assert [g["name"] for g in optimizer.param_groups] == ["muon", "decay", "no_decay"]
    covered = [p for g in optimizer.param_groups for p in g["params"]]
    assert len(covered) == len({id(p) for p in covered}) == len(list(model.parameters()))


def test_one_learning_rate_drives_both_and_the_loss_falls(tiny_config):
    model, x = model_and_batch(tiny_config)
    optimizer = MuonWithAdamW(model, lr=3e-3, weight_decay=0.0)
    for group in optimizer.param_groups:  # what Ignite's schedulers do
        group["lr"] = 1e-2
    before = model(x, labels=x)[1].item()
    steps(model, optimizer, x, 30)
    assert optimizer.muon.param_groups[0]["lr"] == optimizer.adamw.param_groups[1]["lr"] == 1e-2
    assert model(x, labels=x)[1].item() < 0.5 * before  # it memorises the batch


def test_a_resumed_optimizer_continues_exactly(tiny_config):
    """Saved after 3 steps and loaded into a fresh optimizer, 3 more steps give the weights of 6 in a row."""
    model, x = model_and_batch(tiny_config)
    resumed_model = copy.deepcopy(model)
    optimizer = MuonWithAdamW(model, lr=3e-3, weight_decay=0.01)
    steps(model, optimizer, x, 3)
    saved_weights, saved_state = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())
    steps(model, optimizer, x, 3)

    resumed_model.load_state_dict(saved_weights)
    resumed = MuonWithAdamW(resumed_model, lr=3e-3, weight_decay=0.01)
    resumed.load_state_dict(saved_state)
    steps(resumed_model, resumed, x, 3)
    for (name, a), b in zip(model.state_dict().items(), resumed_model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_query_and_key_learn_as_fast_as_value(tiny_config):
    """Orthogonalised apart, the q, k and v blocks of in_proj_weight each move by Muon's step size; as one
    (3E, E) matrix, the largest gradient block (v, while attention is uniform) would take nearly all of it."""
    model, x = model_and_batch(tiny_config)
    before = model.transformer.blocks[0].attention.in_proj_weight.detach().clone()
    optimizer = MuonWithAdamW(model, lr=1e-3, weight_decay=0.0)
    steps(model, optimizer, x, 1)
    moved = (model.transformer.blocks[0].attention.in_proj_weight.detach() - before).chunk(3)  # q, k, v
    norms = [m.norm().item() for m in moved]
    assert min(norms) > 0.5 * max(norms), norms


def test_gradients_are_zeroed_for_every_parameter(tiny_config):
    model, x = model_and_batch(tiny_config)
    optimizer = MuonWithAdamW(model, lr=1e-3, weight_decay=0.0)
    steps(model, optimizer, x, 1)
    optimizer.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    assert all(view.grad is None for view, _, _ in optimizer.matrices)


def test_a_state_saved_with_fused_qkv_is_refused_by_name(tiny_config):
    """Before q, k and v were split, Muon held one (3E, E) matrix per layer: fewer matrices than now."""
    model, _ = model_and_batch(tiny_config)
    optimizer = MuonWithAdamW(model, lr=1e-3, weight_decay=0.0)
    state = optimizer.state_dict()
    fused = len(optimizer.matrices) - 2 * tiny_config.num_layers  # q, k, v counted once per layer
    state["muon"]["param_groups"][0]["params"] = list(range(fused))
    with pytest.raises(ValueError, match="saved before q, k and v were orthogonalised apart"):
        optimizer.load_state_dict(state)


def test_parameters_are_listed_in_the_order_before_block(tiny_config):
    """Saved optimizer states match parameters by position: the blocks' parameters come by part (every
    layer's attention, then every layer's feed-forward, ...), as the per-kind lists had them."""
    from minitransformer.training.optimizers import in_state_order

    model = TransformerWithClfHead(tiny_config, FineTuningConfig(num_classes=3, adapters_dim=4))
    names = [name for name, _ in in_state_order(model)]
    assert sorted(names) == sorted(name for name, _ in model.named_parameters())
    blocks = [name.split(".")[2:4] for name in names if name.startswith("transformer.blocks.")]
    parts = ["attention", "feed_forward", "layer_norm_1", "layer_norm_2", "adapter_1", "adapter_2"]
    expected = [[layer, part] for part in parts for layer in ("0", "1")]
    assert [b for i, b in enumerate(blocks) if i == 0 or b != blocks[i - 1]] == expected
    assert names[0] == "transformer.tokens_embeddings.weight" and names[-1] == "classification_head.bias"
