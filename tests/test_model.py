"""Behaviour of the Transformer backbone and its heads: masks, paths, tying, init, bad input."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO
from torch import nn

from minitransformer import (
    FineTuningConfig,
    TransformerConfig,
    TransformerWithClfHead,
    TransformerWithLMHead,
)
from minitransformer.checkpoint import read_config
from minitransformer.checks import check_token_ids


def hidden(model, x, **kw):
    return model.transformer(x, **kw).last_hidden_state


@pytest.mark.parametrize("placement", ["hands_on", "pre", "post"])
def test_causal_future_tokens_do_not_change_the_past(tiny_config, placement):
    config = dataclasses.replace(tiny_config, norm_placement=placement, final_layer_norm=placement == "pre")
    model = TransformerWithLMHead(config).eval()
    x = torch.randint(0, 50, (2, 12))
    changed = x.clone()
    changed[:, 7:] = torch.randint(0, 50, (2, 5))
    a, b = hidden(model, x), hidden(model, changed)
    torch.testing.assert_close(a[:, :7], b[:, :7], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, 7:], b[:, 7:])  # the changed positions do change


def test_mlm_model_is_bidirectional(tiny_config):
    model = TransformerWithLMHead(dataclasses.replace(tiny_config, mlm=True)).eval()
    x = torch.randint(0, 50, (1, 10))
    changed = x.clone()
    changed[0, 9] = (x[0, 9] + 1) % 50
    assert not torch.allclose(hidden(model, x)[:, 0], hidden(model, changed)[:, 0])


@pytest.mark.parametrize("mlm", [False, True])
def test_padding_tokens_do_not_change_real_tokens(tiny_config, mlm):
    model = TransformerWithLMHead(dataclasses.replace(tiny_config, mlm=mlm)).eval()
    x = torch.randint(0, 50, (3, 10))
    padding = torch.zeros(3, 10, dtype=torch.bool)
    padding[0, 6:] = True
    padding[2, 3:] = True
    other = torch.where(padding, torch.randint(0, 50, (3, 10)), x)
    a = hidden(model, x, padding_mask=padding)
    b = hidden(model, other, padding_mask=padding)
    real = ~padding
    torch.testing.assert_close(a[real], b[real], rtol=0, atol=1e-6)
    if mlm:  # without the mask, padding would leak into real tokens of a bidirectional model
        assert not torch.allclose(hidden(model, x)[real], hidden(model, other)[real])


@pytest.mark.parametrize("mlm", [False, True])
def test_all_padding_row_is_finite(tiny_config, mlm):
    model = TransformerWithLMHead(dataclasses.replace(tiny_config, mlm=mlm)).eval()
    x = torch.randint(0, 50, (2, 8))
    padding = torch.zeros(2, 8, dtype=torch.bool)
    padding[1] = True  # every key of row 1 is padding
    for impl in ("sdpa", "explicit"):
        for block in model.transformer.blocks:
            block.attention.impl = impl
        logits = model(x, padding_mask=padding)
        assert torch.isfinite(logits).all()


@pytest.mark.parametrize("mlm", [False, True])
@pytest.mark.parametrize("with_padding", [False, True])
def test_sdpa_and_explicit_attention_agree(tiny_config, mlm, with_padding):
    config = dataclasses.replace(tiny_config, mlm=mlm)
    model = TransformerWithLMHead(config).eval()
    x = torch.randint(0, 50, (3, 11))
    padding = None
    if with_padding:
        padding = torch.zeros(3, 11, dtype=torch.bool)
        padding[1, 5:] = True
    fast = hidden(model, x, padding_mask=padding)
    out = model.transformer(x, padding_mask=padding, output_attentions=True)  # forces the explicit path
    torch.testing.assert_close(fast, out.last_hidden_state, rtol=0, atol=1e-5)
    probs = out.attentions[0]  # (B, nh, T, S)
    assert probs.shape == (3, 3, 11, 11)
    torch.testing.assert_close(probs.sum(-1), torch.ones(3, 3, 11))
    if not mlm:
        assert probs.triu(diagonal=1).abs().max() == 0  # nothing attends to the future


def test_attention_mask_built_from_the_cached_causal_mask(tiny_config):
    model = TransformerWithLMHead(tiny_config)
    mask, is_causal = model.transformer.attention_mask(None, 5, 5)
    assert mask is None and is_causal  # the fused kernel applies it, no tensor is built
    padding = torch.tensor([[False, False, False, True, True]])
    mask, is_causal = model.transformer.attention_mask(padding, 5, 5)
    expected = torch.ones(5, 5, dtype=torch.bool).tril() & ~padding[0]
    expected |= torch.eye(5, dtype=torch.bool)
    assert not is_causal and torch.equal(mask[0, 0], expected)


def test_lm_head_is_tied_before_and_after_save_load_and_to(tiny_config, tmp_path):
    model = TransformerWithLMHead(tiny_config)
    emb = model.transformer.tokens_embeddings.weight
    assert model.lm_head.decoder.weight is emb
    model.to(torch.float64)
    assert model.lm_head.decoder.weight.data_ptr() == model.transformer.tokens_embeddings.weight.data_ptr()
    model.to(torch.float32)
    model.save_pretrained(tmp_path)
    loaded = TransformerWithLMHead.from_pretrained(tmp_path)
    assert loaded.lm_head.decoder.weight is loaded.transformer.tokens_embeddings.weight
    params = dict(model.named_parameters())
    assert "lm_head.decoder.weight" not in params  # one tensor, counted once
    with torch.no_grad():
        loaded.transformer.tokens_embeddings.weight[0, 0] += 1.0
    assert loaded.lm_head.decoder.weight[0, 0] == loaded.transformer.tokens_embeddings.weight[0, 0]


@pytest.mark.parametrize("cls", ["lm", "clf"])
def test_save_load_gives_identical_logits(tiny_config, tmp_path, cls):
    if cls == "lm":
        model = TransformerWithLMHead(tiny_config).eval()
        run = lambda m, x: m(x)  # noqa: E731
    else:
        model = TransformerWithClfHead(tiny_config, FineTuningConfig(num_classes=4, adapters_dim=5)).eval()
        mask = torch.zeros(2, 9, dtype=torch.bool)
        mask[:, -1] = True
        run = lambda m, x: m(x, mask)  # noqa: E731
    x = torch.randint(0, 50, (2, 9))
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = type(model).from_pretrained(tmp_path).eval()
    assert torch.equal(run(model, x), run(loaded, x))


class TutorialTransformer(nn.Module):
    """The hands-on's model, as its code builds it: seq-first, nn.MultiheadAttention, ReLU FFN."""

    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.tokens_embeddings = nn.Embedding(c.vocab_size, c.embed_dim)
        self.position_embeddings = nn.Embedding(c.num_max_positions, c.embed_dim)
        self.dropout = nn.Dropout(c.dropout)
        self.attentions, self.feed_forwards = nn.ModuleList(), nn.ModuleList()
        self.layer_norms_1, self.layer_norms_2 = nn.ModuleList(), nn.ModuleList()
        for _ in range(c.num_layers):
            self.attentions.append(nn.MultiheadAttention(c.embed_dim, c.num_heads, dropout=c.dropout))
            self.feed_forwards.append(
                nn.Sequential(
                    nn.Linear(c.embed_dim, c.hidden_dim), nn.ReLU(), nn.Linear(c.hidden_dim, c.embed_dim)
                )
            )
            self.layer_norms_1.append(nn.LayerNorm(c.embed_dim, eps=1e-12))
            self.layer_norms_2.append(nn.LayerNorm(c.embed_dim, eps=1e-12))

    def forward(self, x, padding_mask=None):  # x: [seq, batch]
        positions = torch.arange(len(x)).unsqueeze(-1)
        h = self.tokens_embeddings(x) + self.position_embeddings(positions).expand_as(
            self.tokens_embeddings(x)
        )
        h = self.dropout(h)
        attn_mask = torch.ones(len(x), len(x), dtype=torch.bool).triu(diagonal=1)  # True = blocked
        for ln1, attn, ln2, ff in zip(
            self.layer_norms_1, self.attentions, self.layer_norms_2, self.feed_forwards
        ):
            h = ln1(h)
            a, _ = attn(h, h, h, attn_mask=attn_mask, need_weights=False, key_padding_mask=padding_mask)
            h = self.dropout(a) + h
            h = ln2(h)
            h = self.dropout(ff(h)) + h
        return h


class TutorialLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.transformer = TutorialTransformer(c)
        self.lm_head = nn.Linear(c.embed_dim, c.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.tokens_embeddings.weight

    def forward(self, x, padding_mask=None):
        return self.lm_head(self.transformer(x, padding_mask))


def test_hands_on_layout_state_dict_loads_and_matches(tiny_config):
    from minitransformer import from_hands_on_state_dict, load_checkpoint_state

    reference = TutorialLM(tiny_config).eval()
    for p in reference.parameters():  # random everything, LayerNorms included
        nn.init.normal_(p, std=0.3)
    state = reference.state_dict()
    assert "transformer.attentions.0.in_proj_weight" in state and "lm_head.weight" in state
    model = TransformerWithLMHead(TransformerConfig(**{**dataclasses.asdict(tiny_config)})).eval()
    load_checkpoint_state(model, from_hands_on_state_dict(state), strict=True)
    x = torch.randint(0, 50, (3, 10))  # [batch, seq] for us, [seq, batch] for the hands-on
    padding = torch.zeros(3, 10, dtype=torch.bool)
    padding[2, 7:] = True
    ours = model(x, padding_mask=padding)
    theirs = reference(x.t(), padding_mask=padding).transpose(0, 1)
    real = ~padding
    torch.testing.assert_close(ours[real], theirs[real], rtol=0, atol=1e-5)


def test_default_config_is_the_hands_on():
    c = TransformerConfig()
    assert (c.embed_dim, c.hidden_dim, c.num_max_positions, c.num_heads, c.num_layers) == (
        410,
        2100,
        256,
        10,
        16,
    )
    assert (c.dropout, c.initializer_range, c.mlm, c.sinusoidal_embeddings) == (0.1, 0.02, False, False)
    assert (c.activation, c.layer_norm_eps, c.norm_placement) == ("relu", 1e-12, "hands_on")


def test_an_old_config_json_with_the_tutorial_placement_loads(tmp_path, tiny_config, capsys, monkeypatch):
    """Before the rename, the hands-on's placement was saved as "tutorial": such a directory still loads,
    as "hands_on", with the same outputs, and the old name is noted on stderr."""
    import minitransformer.config

    monkeypatch.setattr(minitransformer.config, "_noted", set())  # the note is said once per process
    model = TransformerWithLMHead(dataclasses.replace(tiny_config, norm_placement="hands_on")).eval()
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    saved["norm_placement"] = "tutorial"
    (tmp_path / "config.json").write_text(json.dumps(saved))
    loaded = TransformerWithLMHead.from_pretrained(tmp_path).eval()
    assert loaded.config.norm_placement == "hands_on"
    x = torch.randint(0, 50, (2, 9))
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert capsys.readouterr().err.count("norm_placement 'tutorial' is now called 'hands_on'") == 1


@pytest.mark.parametrize("cls", ["lm", "clf"])
def test_every_parameter_receives_a_gradient(tiny_config, cls):
    x = torch.randint(0, 50, (2, 8))
    if cls == "lm":
        model = TransformerWithLMHead(tiny_config)
        _, loss = model(x, labels=x)
    else:
        config = dataclasses.replace(tiny_config, final_layer_norm=True, norm_placement="pre")
        ft = FineTuningConfig(
            num_classes=3, adapters_dim=4, pooling="weighted", pooler=True, lm_loss_coef=0.5
        )
        model = TransformerWithClfHead(config, ft)
        mask = torch.zeros(2, 8, dtype=torch.bool)
        mask[:, -1] = True
        _, loss = model(x, mask, clf_labels=torch.tensor([0, 2]), lm_labels=x)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_same_seed_same_loss_in_training_mode(tiny_config):
    def run(seed):
        torch.manual_seed(seed)
        model = TransformerWithLMHead(tiny_config).train()
        x = torch.randint(0, 50, (2, 8))
        return model(x, labels=x)[1].item()

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_initialisation_follows_the_hands_on(tiny_config):
    model = TransformerWithLMHead(dataclasses.replace(tiny_config, embed_dim=96, hidden_dim=384, num_heads=4))
    attn = model.transformer.blocks[0].attention
    assert abs(attn.in_proj_weight.std().item() - 0.02) < 0.002
    assert attn.in_proj_bias.abs().max() == 0 and attn.out_proj.bias.abs().max() == 0
    ln = model.transformer.blocks[0].layer_norm_1
    assert torch.all(ln.weight == 1) and torch.all(ln.bias == 0)
    assert abs(model.transformer.blocks[0].feed_forward[0].weight.std().item() - 0.02) < 0.002


def test_sinusoidal_positions_are_fixed(tiny_config):
    from minitransformer.model import sinusoidal_table

    model = TransformerWithLMHead(dataclasses.replace(tiny_config, sinusoidal_embeddings=True))
    table = model.transformer.position_embeddings.weight
    assert not table.requires_grad
    torch.testing.assert_close(table, sinusoidal_table(16, 24))
    assert table[0, 1] == 1.0 and table[0, 0] == 0.0  # cos(0), sin(0)


def test_rotary_scores_depend_on_how_far_apart_query_and_key_are():
    from minitransformer.model import rotary_angles, rotate

    q, k = torch.randn(2, 1, 1, 1, 8)  # (B, nh, T, hs) each

    def score(query_position: int, key_position: int) -> float:
        rq = rotate(q, *rotary_angles(torch.tensor([query_position]), 8))
        rk = rotate(k, *rotary_angles(torch.tensor([key_position]), 8))
        return (rq * rk).sum().item()

    assert score(5, 2) == pytest.approx(score(12, 9), abs=1e-5)  # 3 apart both times
    assert score(5, 2) != pytest.approx(score(5, 4), abs=1e-3)
    assert score(3, 3) == pytest.approx((q * k).sum().item(), abs=1e-5)  # no turn at distance 0


def test_a_rotary_model_has_no_position_table_and_stays_causal(tiny_config, tmp_path):
    model = TransformerWithLMHead(dataclasses.replace(tiny_config, rotary=True, dropout=0.0)).eval()
    assert model.transformer.position_embeddings is None
    assert not any("position" in name for name in model.state_dict())
    x = torch.randint(0, 50, (2, 10))
    changed = x.clone()
    changed[:, 6:] = torch.randint(0, 50, (2, 4))
    torch.testing.assert_close(model(x)[:, :6], model(changed)[:, :6])
    model.save_pretrained(tmp_path)
    loaded = TransformerWithLMHead.from_pretrained(tmp_path).eval()
    assert loaded.config.rotary
    torch.testing.assert_close(loaded(x), model(x))


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(rotary=True, sinusoidal_embeddings=True), "choose one"),
        (dict(rotary=True, embed_dim=18, num_heads=2), "even head size"),
    ],
)
def test_rotary_config_is_checked(tiny_config, changes, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(tiny_config, **changes)


@pytest.mark.parametrize("placement", ["pre", "post"])
def test_norm_placements_compute_their_formula(tiny_config, placement):
    config = dataclasses.replace(tiny_config, num_layers=1, norm_placement=placement, dropout=0.0)
    model = TransformerWithLMHead(config).eval()
    t = model.transformer
    x = torch.randint(0, 50, (1, 6))
    h = t.tokens_embeddings(x) + t.position_embeddings(torch.arange(6))
    block = t.blocks[0]
    attn = lambda z: block.attention(z, None, True)[0]  # noqa: E731
    ln1, ln2, ff = block.layer_norm_1, block.layer_norm_2, block.feed_forward
    if placement == "pre":
        h = h + attn(ln1(h))
        h = h + ff(ln2(h))
    else:
        h = ln1(h + attn(h))
        h = ln2(h + ff(h))
    torch.testing.assert_close(hidden(model, x), h)


@pytest.mark.parametrize("placement", ["hands_on", "pre", "post"])
def test_an_attention_only_block_adds_the_attention_and_nothing_else(tiny_config, placement):
    config = dataclasses.replace(tiny_config, num_layers=1, norm_placement=placement, dropout=0.0)
    model = TransformerWithLMHead(dataclasses.replace(config, attention_only=True)).eval()
    block = model.transformer.blocks[0]
    assert block.feed_forward is None and block.layer_norm_2 is None
    assert not any("feed_forward" in name or "layer_norm_2" in name for name in model.state_dict())
    x = torch.randint(0, 50, (1, 6))
    h = model.transformer.tokens_embeddings(x) + model.transformer.position_embeddings(torch.arange(6))
    ln1, attn = block.layer_norm_1, lambda z: block.attention(z, None, True)[0]  # noqa: E731
    expected = {"hands_on": ln1(h) + attn(ln1(h)), "pre": h + attn(ln1(h)), "post": ln1(h + attn(h))}
    torch.testing.assert_close(hidden(model, x), expected[placement])


def test_hidden_states_of_every_layer(tiny_config):
    model = TransformerWithLMHead(tiny_config).eval()
    out = model.transformer(torch.randint(0, 50, (2, 5)), output_hidden_states=True)
    assert len(out.hidden_states) == tiny_config.num_layers + 1
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)  # no final norm in this config


def test_one_block_per_layer_holds_its_parts(tiny_config):
    from minitransformer.model import Block

    blocks = TransformerWithLMHead(tiny_config).transformer.blocks
    assert isinstance(blocks, nn.ModuleList) and len(blocks) == tiny_config.num_layers
    assert all(type(block) is Block for block in blocks)
    assert [name for name, _ in blocks[1].named_children()] == [
        "layer_norm_1", "attention", "layer_norm_2", "feed_forward", "dropout"
    ]  # fmt: skip


def test_lm_losses(tiny_config):
    model = TransformerWithLMHead(tiny_config).eval()
    x = torch.randint(0, 50, (2, 6))
    logits, loss = model(x, labels=x)
    expected = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 50), x[:, 1:].reshape(-1))
    torch.testing.assert_close(loss, expected)
    mlm = TransformerWithLMHead(dataclasses.replace(tiny_config, mlm=True)).eval()
    labels = torch.full_like(x, -100)
    labels[0, 2] = x[0, 2]
    logits, loss = mlm(x, labels=labels)  # the scored positions only: (1, V)
    assert logits.shape == (1, 50)
    torch.testing.assert_close(loss, nn.functional.cross_entropy(mlm(x)[0, 2:3], x[0, 2:3]))


# --- bad input -------------------------------------------------------------------------------


def test_config_validation_names_values():
    with pytest.raises(ValueError, match="embed_dim=410.*num_heads=7"):
        TransformerConfig(num_heads=7)
    with pytest.raises(ValueError, match="activation='swish'"):
        TransformerConfig(activation="swish")
    with pytest.raises(ValueError, match="unknown field"):
        TransformerConfig.from_dict({"embed_dim": 8, "nope": 1})


def test_config_json_round_trip(tiny_config):
    assert TransformerConfig.from_json(tiny_config.to_json()) == tiny_config
    ft = FineTuningConfig(num_classes=50, pooling="weighted", pooling_layer_start=1)
    assert FineTuningConfig.from_json(ft.to_json()) == ft


def test_a_config_file_with_the_old_num_embeddings_key_loads_as_vocab_size(tiny_config):
    """Files saved before the rename hold `num_embeddings` (e.g. tests/data/f41324a/*/config.json)."""
    old = {**tiny_config.to_dict(), "num_embeddings": tiny_config.vocab_size}
    del old["vocab_size"]
    assert TransformerConfig.from_dict(old) == tiny_config
    fixture = REPO / "tests" / "data" / "f41324a" / "pre" / "config.json"
    assert "num_embeddings" in fixture.read_text() and read_config(fixture.parent)[1].vocab_size == 20
    with pytest.raises(ValueError, match="'num_embeddings' is the old name of 'vocab_size'"):
        TransformerConfig.from_dict({**old, "vocab_size": 7})
    assert "vocab_size" in tiny_config.to_json() and "num_embeddings" not in tiny_config.to_json()


def test_bad_forward_input_raises(tiny_config):
    model = TransformerWithLMHead(tiny_config)
    with pytest.raises(ValueError, match="token id 50 .*\\[0, 50\\)"):
        model(torch.tensor([[1, 50]]))
    with pytest.raises(ValueError, match="token id -1"):
        model(torch.tensor([[-1, 2]]))
    with pytest.raises(ValueError, match="length 17 exceeds num_max_positions=16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="padding_mask"):
        model(torch.zeros(2, 5, dtype=torch.long), padding_mask=torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="padding_mask"):
        model(torch.zeros(2, 5, dtype=torch.long), padding_mask=torch.zeros(2, 5))


def test_classification_token_must_be_unique(tiny_config):
    model = TransformerWithClfHead(tiny_config, FineTuningConfig(num_classes=2))
    x = torch.randint(0, 50, (2, 5))
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[0, -1] = True
    with pytest.raises(ValueError, match="row 1 has 0"):
        model(x, mask)
    mask[1, 1:3] = True
    with pytest.raises(ValueError, match="row 1 has 2"):
        model(x, mask)


def test_clf_pooling_modes(tiny_config):
    x = torch.randint(0, 50, (2, 6))
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[:, -1] = True
    padding = torch.zeros(2, 6, dtype=torch.bool)
    padding[0, :2] = True
    for pooling in ("clf", "mean", "max", "weighted"):
        model = TransformerWithClfHead(tiny_config, FineTuningConfig(num_classes=3, pooling=pooling)).eval()
        logits = model(x, mask, padding_mask=padding)
        assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    weighted = TransformerWithClfHead(tiny_config, FineTuningConfig(num_classes=3, pooling="weighted"))
    assert "pooler.layer_weights" in dict(weighted.named_parameters())


def test_checkpoint_errors_name_the_problem(tiny_config, tmp_path):
    model = TransformerWithLMHead(tiny_config)
    with pytest.raises(FileNotFoundError, match="config.json"):
        TransformerWithLMHead.from_pretrained(tmp_path)
    model.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="model.safetensors is corrupt or truncated"):
        TransformerWithLMHead.from_pretrained(tmp_path)
    weights.write_bytes(good)
    other = dataclasses.replace(tiny_config, embed_dim=30)
    (tmp_path / "config.json").write_text(
        '{"architecture": "TransformerWithLMHead", ' + other.to_json()[1:], encoding="utf-8"
    )
    with pytest.raises(ValueError, match="has shape"):
        TransformerWithLMHead.from_pretrained(tmp_path)
    deeper = dataclasses.replace(tiny_config, num_layers=3)
    (tmp_path / "config.json").write_text(
        '{"architecture": "TransformerWithLMHead", ' + deeper.to_json()[1:], encoding="utf-8"
    )
    with pytest.raises(ValueError, match="missing keys .*blocks.2.attention"):
        TransformerWithLMHead.from_pretrained(tmp_path)


def test_lm_checkpoint_adapts_into_a_classifier(tiny_config, tmp_path):
    lm = TransformerWithLMHead(tiny_config)
    lm.save_pretrained(tmp_path)
    clf, info = TransformerWithClfHead.from_pretrained(
        tmp_path, FineTuningConfig(num_classes=6), output_loading_info=True
    )
    assert info["added"] == ["classification_head.bias", "classification_head.weight"]
    assert info["discarded"] == []
    assert torch.equal(
        clf.transformer.blocks[1].attention.in_proj_weight, lm.transformer.blocks[1].attention.in_proj_weight
    )
    assert clf.lm_head.decoder.weight is clf.transformer.tokens_embeddings.weight


@pytest.mark.parametrize("mlm", [False, True])
@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_mean_and_max_pooling_ignore_padding(tiny_config, pooling, mlm):
    """The same question gives the same logits alone or padded with arbitrary ids to a longer batch."""
    config = dataclasses.replace(tiny_config, mlm=mlm)
    model = TransformerWithClfHead(config, FineTuningConfig(num_classes=3, pooling=pooling)).eval()
    real = torch.randint(0, config.vocab_size, (1, 5))
    clf = torch.zeros(1, 5, dtype=torch.bool)
    clf[0, -1] = True
    alone = model(real, clf, padding_mask=torch.zeros(1, 5, dtype=torch.bool))
    padded = torch.cat([real, torch.randint(0, config.vocab_size, (1, 6))], dim=1)  # (1, 11)
    padding = torch.arange(11)[None, :] >= 5
    clf_padded = torch.cat([clf, torch.zeros(1, 6, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(model(padded, clf_padded, padding_mask=padding), alone, atol=1e-5, rtol=0)
    assert not torch.allclose(model(padded, clf_padded, padding_mask=torch.zeros_like(padding)), alone)


def bert_like(tiny_config):
    """A masked LM with BERT's head transform and output bias, so both go through the scored-only path."""
    return dataclasses.replace(tiny_config, mlm=True, lm_head_transform=True, lm_head_bias=True, dropout=0.0)


def test_mlm_head_on_scored_positions_gives_the_full_projection_loss_and_gradients(tiny_config):
    torch.manual_seed(0)
    model = TransformerWithLMHead(bert_like(tiny_config))
    x = torch.randint(0, 50, (3, 16))
    labels = torch.where(torch.rand(3, 16) < 0.15, x, torch.full_like(x, -100))
    labels[0, 0] = x[0, 0]  # at least one scored position

    logits, loss = model(x, labels=labels)
    assert logits.shape == (int((labels != -100).sum()), 50)  # only the scored rows were projected
    grads = torch.autograd.grad(loss, list(model.parameters()))

    full = model(x)  # (B, T, V): every position, as BertForMaskedLM computes it
    expected = F.cross_entropy(full.reshape(-1, 50), labels.reshape(-1), ignore_index=-100)
    expected_grads = torch.autograd.grad(expected, list(model.parameters()))
    torch.testing.assert_close(loss, expected, rtol=0, atol=1e-6)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_out_of_vocabulary_ids_are_refused_with_the_fix(tiny_config):
    model = TransformerWithLMHead(tiny_config)
    with pytest.raises(ValueError, match=r"token id 50 is outside the vocabulary \[0, 50\).*tokenizer"):
        model(torch.tensor([[1, 50]]))
    with pytest.raises(ValueError, match="token id -1"):
        check_token_ids(torch.tensor([[-1, 3]]), 50)
    check_token_ids(torch.tensor([[0, 49]]), 50)  # the whole range is fine


@pytest.mark.parametrize("mlm", [False, True])
def test_forward_compiles_without_graph_breaks(tiny_config, mlm):
    model = TransformerWithLMHead(dataclasses.replace(tiny_config, mlm=mlm)).eval()
    x = torch.randint(0, 50, (2, 8))
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


def test_gpt2_init_scales_only_the_residual_projections(tiny_config):
    """init_scheme="gpt2": the attention output and the feed-forward output projections get
    initializer_range / sqrt(2 * num_layers); every other weight keeps the hands-on's N(0, range)."""
    wide = dataclasses.replace(tiny_config, embed_dim=96, hidden_dim=384, num_heads=4, num_layers=8)
    torch.manual_seed(0)
    gpt2 = TransformerWithLMHead(dataclasses.replace(wide, init_scheme="gpt2")).transformer
    torch.manual_seed(0)
    hands_on = TransformerWithLMHead(wide).transformer
    scaled = 0.02 / math.sqrt(2 * 8)
    for ours, theirs in ((gpt2, scaled), (hands_on, 0.02)):
        for i in range(8):
            assert abs(ours.blocks[i].attention.out_proj.weight.std().item() - theirs) < 0.1 * theirs
            assert abs(ours.blocks[i].feed_forward[2].weight.std().item() - theirs) < 0.1 * theirs
    torch.testing.assert_close(
        gpt2.blocks[3].attention.in_proj_weight, hands_on.blocks[3].attention.in_proj_weight
    )
    torch.testing.assert_close(gpt2.tokens_embeddings.weight, hands_on.tokens_embeddings.weight)


def test_a_config_json_without_init_scheme_loads_as_the_hands_on(tmp_path, tiny_config):
    """Model directories written before the field existed keep their meaning (the hands-on's init)."""
    TransformerWithLMHead(dataclasses.replace(tiny_config, init_scheme="gpt2")).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved.pop("init_scheme") == "gpt2"
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert TransformerWithLMHead.from_pretrained(tmp_path).config.init_scheme == "hands_on"
    with pytest.raises(ValueError, match="init_scheme='xavier' is not one of"):
        dataclasses.replace(tiny_config, init_scheme="xavier")


def test_out_of_range_labels_are_refused_naming_the_argument(tiny_config):
    """Issue 27 item 23: out-of-range labels raised torch's raw IndexError / device assert."""
    lm = TransformerWithLMHead(tiny_config)
    x = torch.randint(1, tiny_config.vocab_size, (2, 5))
    with pytest.raises(ValueError, match=rf"labels holds {tiny_config.vocab_size}, outside \[0, "):
        lm(x, labels=torch.full_like(x, tiny_config.vocab_size))
    lm(x, labels=torch.full_like(x, -100))  # ignored positions are fine
    clf = TransformerWithClfHead(tiny_config, FineTuningConfig(num_classes=3))
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask[:, -1] = True
    with pytest.raises(ValueError, match=r"clf_labels holds -2, outside \[0, 3\)"):
        clf(x, mask, clf_labels=torch.tensor([0, -2]))
    with pytest.raises(ValueError, match="clf_labels has dtype torch.float32"):
        clf(x, mask, clf_labels=torch.tensor([0.0, 1.0]))
