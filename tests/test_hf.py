"""Hugging Face interop: parity with `transformers` on random-weight GPT-2/BERT, export, the hands-on's checkpoint.

Every checkpoint is built here from a small config (no download); weights are randomised (biases and
LayerNorms included) so that a wrong mapping of any tensor shows up as a difference.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from minitransformer import TransformerConfig, TransformerWithClfHead, TransformerWithLMHead
from minitransformer.interop import hands_on, hf, hf_cli

transformers = pytest.importorskip("transformers", reason="the parity tests need transformers (extra 'hf')")
transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()

TOL = 1e-4


def randomize(model: nn.Module, std: float = 0.2) -> nn.Module:
    """Every parameter ~ N(0, std): zero biases and unit LayerNorms would hide mapping mistakes."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, std)
    return model.eval()


def save_gpt2(directory: Path, model_class=None, **config) -> Path:
    config = {"vocab_size": 50, "n_positions": 16, "bos_token_id": None, "eos_token_id": None, **config}
    model_class = model_class or transformers.GPT2LMHeadModel
    randomize(model_class(transformers.GPT2Config(**config))).save_pretrained(directory)
    return directory


def save_bert(directory: Path, model_class=None, **config) -> Path:
    config = {"vocab_size": 40, "max_position_embeddings": 16, "intermediate_size": 28, **config}
    model_class = model_class or transformers.BertForMaskedLM
    randomize(model_class(transformers.BertConfig(**config))).save_pretrained(directory)
    return directory


def padded_batch(vocab: int, lengths=(10, 6, 3)) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids, right-padded with 0; attention_mask 1 = real token (HF's convention)."""
    T = max(lengths)
    ids = torch.randint(1, vocab, (len(lengths), T))
    mask = (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]).long()
    return ids * mask, mask


# ----------------------------------------------------------------------------------------------
# Parity with transformers, layer by layer
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model_class, config",
    [
        ("GPT2LMHeadModel", dict(n_embd=15, n_head=3, n_layer=2)),
        ("GPT2LMHeadModel", dict(n_embd=20, n_head=5, n_layer=3, n_inner=28, activation_function="gelu_new")),
        (
            "GPT2Model",
            dict(n_embd=16, n_head=4, n_layer=1, activation_function="relu"),
        ),  # keys without prefix
    ],
)
def test_gpt2_matches_transformers_per_layer(tmp_path, model_class, config):
    path = save_gpt2(tmp_path, getattr(transformers, model_class), **config)
    ids, mask = padded_batch(50)
    rows = hf.compare_with_transformers(path, ids, mask)
    assert [name for name, _ in rows] == ["embeddings"] + [
        f"layer {i}" for i in range(1, config["n_layer"] + 1)
    ] + ["lm logits"]
    assert max(value for _, value in rows) <= TOL, hf.format_table(rows)


@pytest.mark.parametrize(
    "model_class, config",
    [
        ("BertForMaskedLM", dict(hidden_size=20, num_attention_heads=5, num_hidden_layers=2)),
        (
            "BertModel",
            dict(hidden_size=12, num_attention_heads=3, num_hidden_layers=3, hidden_act="gelu_new"),
        ),
        (
            "BertForSequenceClassification",
            dict(hidden_size=15, num_attention_heads=3, num_hidden_layers=2, num_labels=4),
        ),
    ],
)
def test_bert_matches_transformers_per_layer(tmp_path, model_class, config):
    path = save_bert(tmp_path, getattr(transformers, model_class), **config)
    ids, mask = padded_batch(40)
    token_types = torch.zeros_like(ids)
    token_types[:, 4:] = 1  # a second segment
    rows = hf.compare_with_transformers(path, ids, mask, token_types)
    assert len(rows) == config["num_hidden_layers"] + 1 + (model_class != "BertModel")
    assert max(value for _, value in rows) <= TOL, hf.format_table(rows)


def test_compare_locates_a_wrong_mapping(tmp_path, monkeypatch):
    """The comparison is not vacuous: forgetting one Conv1D transpose shows up from layer 1 on."""
    path = save_gpt2(tmp_path, n_embd=12, n_head=3, n_layer=2)
    right = hf.gpt2_key_map

    def forgot_transpose(num_layers, prefix="transformer."):
        return [
            (ours, theirs, t and "h.0.attn.c_proj" not in theirs[0])
            for ours, theirs, t in right(num_layers, prefix)
        ]

    monkeypatch.setattr(hf, "gpt2_key_map", forgot_transpose)
    rows = dict(hf.compare_with_transformers(path, *padded_batch(50)))
    assert rows["embeddings"] <= TOL
    assert rows["layer 1"] > 1e-2


# ----------------------------------------------------------------------------------------------
# What the import accepts, refuses and reports
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """One small GPT-2 and one BERT MLM checkpoint, shared by the tests that edit a copy."""
    root = tmp_path_factory.mktemp("hf")
    return {
        "gpt2": save_gpt2(root / "gpt2", n_embd=12, n_head=3, n_layer=1),
        "bert": save_bert(root / "bert", hidden_size=12, num_attention_heads=3, num_hidden_layers=1),
    }


def edited_copy(source: Path, target: Path, **config_changes) -> Path:
    target.mkdir()
    config = json.loads((source / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**config, **config_changes}))
    (target / "model.safetensors").write_bytes((source / "model.safetensors").read_bytes())
    return target


@pytest.mark.parametrize(
    "kind, changes, feature",
    [
        ("gpt2", {"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx"),
        ("gpt2", {"add_cross_attention": True}, "cross-attention"),
        ("gpt2", {"scale_attn_weights": False}, "scale_attn_weights"),
        ("gpt2", {"activation_function": "silu"}, "'silu'"),
        ("bert", {"position_embedding_type": "relative_key"}, "relative_key"),
        ("bert", {"is_decoder": True}, "is_decoder"),
        ("bert", {"model_type": "llama"}, "llama"),
        ("bert", {"architectures": ["BertForTokenClassification"]}, "BertForTokenClassification"),
    ],
)
def test_unsupported_features_are_refused_by_name(checkpoints, tmp_path, kind, changes, feature):
    path = edited_copy(checkpoints[kind], tmp_path / "edited", **changes)
    with pytest.raises(ValueError, match=feature):
        hf.from_hf(path)


def test_reorder_and_upcast_attn_is_accepted_same_numbers_in_fp32(checkpoints, tmp_path):
    path = edited_copy(checkpoints["gpt2"], tmp_path / "edited", reorder_and_upcast_attn=True)
    rows = hf.compare_with_transformers(path, *padded_batch(50))
    assert max(value for _, value in rows) <= TOL


def test_untied_output_embeddings_and_unknown_weights_are_refused(checkpoints, tmp_path):
    state = load_file(checkpoints["gpt2"] / "model.safetensors")
    untied = edited_copy(checkpoints["gpt2"], tmp_path / "untied")
    save_file(
        {**state, "lm_head.weight": torch.randn_like(state["transformer.wte.weight"])},
        untied / "model.safetensors",
    )
    with pytest.raises(ValueError, match="untied"):
        hf.from_hf(untied)
    extra = edited_copy(checkpoints["gpt2"], tmp_path / "extra")
    save_file({**state, "transformer.h.0.attn.rotary.weight": torch.ones(3)}, extra / "model.safetensors")
    with pytest.raises(ValueError, match="rotary"):
        hf.from_hf(extra)


def test_bert_without_mlm_head_loads_for_classification_not_lm(tmp_path):
    path = save_bert(
        tmp_path, transformers.BertModel, hidden_size=12, num_attention_heads=3, num_hidden_layers=1
    )
    with pytest.raises(ValueError, match="task='classification'"):
        hf.from_hf(path)
    model, info = hf.from_hf(path, task="classification", num_classes=6, output_loading_info=True)
    assert model.fine_tuning_config.pooler and info["added"] == [
        "classification_head.bias",
        "classification_head.weight",
    ]
    reference = transformers.BertModel.from_pretrained(path)
    assert torch.equal(model.pooler.dense.weight, reference.pooler.dense.weight)  # the pooler came along
    assert isinstance(hf.from_hf(path, task="backbone"), nn.Module)


def test_pretraining_checkpoint_discards_next_sentence_head_visibly(tmp_path):
    path = save_bert(
        tmp_path, transformers.BertForPreTraining, hidden_size=15, num_attention_heads=5, num_hidden_layers=2
    )
    model, info = hf.from_hf(path, output_loading_info=True)
    assert info == {
        "added": [],
        "discarded": sorted(
            [
                "cls.seq_relationship.weight",
                "cls.seq_relationship.bias",
                "pooler.dense.bias",
                "pooler.dense.weight",
            ]
        ),
    }
    rows = hf.compare_with_transformers(path, *padded_batch(40))
    assert rows[-1][0] == "lm logits" and max(value for _, value in rows) <= TOL


def test_mlm_checkpoint_as_classifier_keeps_mlm_head_and_adds_pooler(checkpoints):
    model, info = hf.from_hf(
        checkpoints["bert"], task="classification", num_classes=3, output_loading_info=True
    )
    assert model.config.lm_head_transform and model.config.mlm
    assert sorted(info["added"]) == sorted(
        k for k in model.state_dict() if k.startswith(("pooler.", "classification_"))
    )
    with pytest.raises(ValueError, match="num_classes"):
        hf.from_hf(checkpoints["bert"], task="classification")


# ----------------------------------------------------------------------------------------------
# Export to GPT-2
# ----------------------------------------------------------------------------------------------


def gpt2_shaped(**changes) -> TransformerConfig:
    values = dict(
        embed_dim=15, hidden_dim=22, num_heads=5, num_layers=2, num_embeddings=50, num_max_positions=16
    )
    values.update(norm_placement="pre", final_layer_norm=True, activation="gelu_tanh", layer_norm_eps=1e-5)
    return TransformerConfig(**{**values, **changes})


def test_export_loads_in_transformers_with_the_same_logits(tmp_path):
    model = randomize(TransformerWithLMHead(gpt2_shaped()))
    hf.to_hf(model, tmp_path)
    reference = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    ids, mask = padded_batch(50)
    with torch.no_grad():
        ours = model(ids, padding_mask=~mask.bool())
        theirs = reference(input_ids=ids, attention_mask=mask).logits
    assert float((ours - theirs).abs()[mask.bool()].max()) <= TOL


@pytest.mark.parametrize(
    "changes, switch",
    [
        ({"norm_placement": "hands_on", "final_layer_norm": False}, "norm_placement='hands_on'"),
        ({"mlm": True}, "mlm=True"),
        ({"token_type_vocab_size": 2, "embedding_layer_norm": True}, "embedding_layer_norm=True"),
        ({"sinusoidal_embeddings": True, "embed_dim": 16, "num_heads": 4}, "sinusoidal_embeddings=True"),
    ],
)
def test_export_refuses_other_architectures_naming_the_switch(tmp_path, changes, switch):
    with pytest.raises(ValueError, match=switch):
        hf.to_hf(TransformerWithLMHead(gpt2_shaped(**changes)), tmp_path)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_export_refuses_a_classifier(tmp_path):
    with pytest.raises(ValueError, match="TransformerWithClfHead"):
        hf.to_hf(TransformerWithClfHead(gpt2_shaped()), tmp_path)


def test_import_export_import_is_exact(checkpoints, tmp_path):
    first = hf.from_hf(checkpoints["gpt2"])
    hf.to_hf(first, tmp_path)
    original, exported = (
        load_file(checkpoints["gpt2"] / "model.safetensors"),
        load_file(tmp_path / "model.safetensors"),
    )
    assert original.keys() == exported.keys()
    assert all(torch.equal(original[k], exported[k]) for k in original)
    second = hf.from_hf(tmp_path)
    assert first.config == second.config
    assert all(torch.equal(v, second.state_dict()[k]) for k, v in first.state_dict().items())


# ----------------------------------------------------------------------------------------------
# convert, the tokenizer, the classification-token position, the CLI
# ----------------------------------------------------------------------------------------------


def test_convert_writes_our_format_with_tokenizer_and_clf_position(checkpoints, tmp_path):
    source = edited_copy(checkpoints["bert"], tmp_path / "bert")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "what", "is", "a", "cat", "?"]
    (source / "vocab.txt").write_text("\n".join(words + [f"w{i}" for i in range(40 - len(words))]) + "\n")
    out = hf.convert(source, tmp_path / "ours")
    loaded = TransformerWithLMHead.from_pretrained(out).eval()
    ids = torch.tensor([[2, 5, 6, 7, 8, 9, 3]])
    with torch.no_grad():
        assert torch.equal(loaded(ids), hf.from_hf(source)(ids))
    assert hf.load_tokenizer(out).encode("What is a cat?") == [5, 6, 7, 8, 9]
    assert hf.clf_position(out) == hf.clf_position(source) == "start"
    assert hf.clf_position(checkpoints["gpt2"]) == "end"


def test_cli_compare_prints_the_table_and_convert_writes(checkpoints, tmp_path, capsys):
    assert hf_cli.main(["compare", str(checkpoints["gpt2"])]) == 0
    printed = capsys.readouterr().out
    assert "layer 1" in printed and "lm logits" in printed and "OK" in printed
    assert hf_cli.main(["convert", str(checkpoints["bert"]), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / hf.META_NAME).is_file()
    assert hf_cli.main(["compare", str(tmp_path / "missing")]) == 2
    assert "config.json" in capsys.readouterr().err


def test_module_imports_and_cli_helps_without_transformers():
    code = (
        "import sys; sys.modules['transformers'] = None; sys.argv = ['hf', '--help']\n"
        "import runpy; runpy.run_module('minitransformer.interop.hf', run_name='__main__')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "compare" in result.stdout


# ----------------------------------------------------------------------------------------------
# The hands-on's own checkpoint
# ----------------------------------------------------------------------------------------------


class HandsOnTransformer(nn.Module):
    """The hands-on's model as it was written: sequence-first, nn.MultiheadAttention, ReLU MLP."""

    def __init__(
        self, embed_dim, hidden_dim, num_embeddings, num_max_positions, num_heads, num_layers, causal
    ):
        super().__init__()
        self.causal = causal
        self.tokens_embeddings = nn.Embedding(num_embeddings, embed_dim)
        self.position_embeddings = nn.Embedding(num_max_positions, embed_dim)
        self.attentions = nn.ModuleList(
            nn.MultiheadAttention(embed_dim, num_heads) for _ in range(num_layers)
        )
        self.feed_forwards = nn.ModuleList(
            nn.Sequential(nn.Linear(embed_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, embed_dim))
            for _ in range(num_layers)
        )
        self.layer_norms_1 = nn.ModuleList(nn.LayerNorm(embed_dim, eps=1e-12) for _ in range(num_layers))
        self.layer_norms_2 = nn.ModuleList(nn.LayerNorm(embed_dim, eps=1e-12) for _ in range(num_layers))

    def forward(self, x, padding_mask=None):  # x: (T, B)
        positions = torch.arange(len(x)).unsqueeze(-1)  # (T, 1)
        h = self.tokens_embeddings(x) + self.position_embeddings(positions)  # (T, B, E)
        attn_mask = torch.full((len(x), len(x)), float("-inf")).triu(diagonal=1) if self.causal else None
        for ln_1, attention, ln_2, feed_forward in zip(
            self.layer_norms_1, self.attentions, self.layer_norms_2, self.feed_forwards
        ):
            h = ln_1(h)
            a, _ = attention(h, h, h, attn_mask=attn_mask, need_weights=False, key_padding_mask=padding_mask)
            h = a + h
            h = ln_2(h)
            h = feed_forward(h) + h
        return h


class HandsOnLM(nn.Module):
    def __init__(self, **config):
        super().__init__()
        self.transformer = HandsOnTransformer(**config)
        self.lm_head = nn.Linear(config["embed_dim"], config["num_embeddings"], bias=False)
        self.lm_head.weight = self.transformer.tokens_embeddings.weight

    def forward(self, x, padding_mask=None):
        return self.lm_head(self.transformer(x, padding_mask))


HANDS_ON = dict(
    embed_dim=20, hidden_dim=36, num_embeddings=45, num_max_positions=12, num_heads=5, num_layers=2
)


@pytest.mark.parametrize("mlm", [False, True])
def test_hands_on_checkpoint_gives_the_same_outputs(tmp_path, mlm):
    reference = randomize(HandsOnLM(**HANDS_ON, causal=not mlm), std=0.3)
    torch.save(reference.state_dict(), tmp_path / "model_checkpoint.pth")
    model = hands_on.from_hands_on_checkpoint(tmp_path / "model_checkpoint.pth", num_heads=5, mlm=mlm)
    ids, mask = padded_batch(45) if mlm else (torch.randint(45, (2, 12)), torch.ones(2, 12, dtype=torch.long))
    real = mask.bool()
    with torch.no_grad():
        expected = reference(ids.t(), padding_mask=~real if mlm else None).transpose(0, 1)  # (B, T, V)
        got = model(ids, padding_mask=~real if mlm else None)
    assert float((got - expected).abs()[real].max()) <= 1e-5


def test_hands_on_args_file_needs_trust_pickle(tmp_path):
    torch.save(randomize(HandsOnLM(**HANDS_ON, causal=True)).state_dict(), tmp_path / "model_checkpoint.pth")
    args = argparse.Namespace(**HANDS_ON, mlm=False, dropout=0.15, lr=2.5e-4)
    torch.save(args, tmp_path / "model_training_args.bin")
    pth, args_file = tmp_path / "model_checkpoint.pth", tmp_path / "model_training_args.bin"
    with pytest.raises(ValueError, match="trust_pickle=True"):
        hands_on.from_hands_on_checkpoint(pth, args_file)
    with pytest.raises(ValueError, match="num_heads"):
        hands_on.from_hands_on_checkpoint(pth)
    with pytest.raises(ValueError, match="num_layers=3 contradicts"):
        hands_on.from_hands_on_checkpoint(pth, num_heads=5, mlm=False, num_layers=3)
    model = hands_on.from_hands_on_checkpoint(pth, args_file, trust_pickle=True)
    assert (model.config.num_heads, model.config.dropout, model.config.causal) == (5, 0.15, True)
