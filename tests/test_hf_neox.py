"""GPT-NeoX interop (minitransformer/interop/neox.py through `hf`): parity with `transformers` on
random-weight checkpoints, export of our rotary models, and the features refused by name.

Every checkpoint is built here from a small config (no download); weights are randomised (biases and
LayerNorms included) so that a wrong mapping of any tensor shows up as a difference.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import edited_copy, padded_batch, randomize, saved_folder
from safetensors.torch import load_file, save_file

from minitransformer import TransformerConfig, TransformerWithLMHead
from minitransformer.interop import hf, neox

transformers = pytest.importorskip("transformers", reason="the parity tests need transformers (extra 'hf')")
transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()

TOL = 1e-4


def save_neox(directory: Path, **config) -> Path:
    """A random GPTNeoXForCausalLM with GPT-2's sequential block and full rotary, as our model computes."""
    config = {
        "vocab_size": 50, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 48, "max_position_embeddings": 16, "use_parallel_residual": False,
        "rotary_pct": 1.0, "tie_word_embeddings": True, "bos_token_id": None, "eos_token_id": None, **config,
    }  # fmt: skip
    randomize(transformers.GPTNeoXForCausalLM(transformers.GPTNeoXConfig(**config))).save_pretrained(
        directory
    )
    return directory


def rotary_lm(**changes) -> TransformerConfig:
    """Our causal pre-norm LM with rotary positions: what exports as GPT-NeoX."""
    values = dict(embed_dim=32, hidden_dim=48, num_heads=4, num_layers=2, vocab_size=50, num_max_positions=16)
    values.update(norm_placement="pre", final_layer_norm=True, rotary=True, activation="gelu_tanh")
    return TransformerConfig(**{**values, "layer_norm_eps": 1e-5, **changes})


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_neox(tmp_path_factory.mktemp("neox") / "neox")


def logits_difference(model: TransformerWithLMHead, reference) -> float:
    """Max |ours − transformers| of the LM logits over the real tokens of a right-padded batch."""
    ids, mask = padded_batch(model.config.vocab_size)
    with torch.no_grad():
        ours = model(ids, padding_mask=~mask.bool())
        theirs = reference(input_ids=ids, attention_mask=mask).logits
    return float((ours - theirs).abs()[mask.bool()].max())


# ----------------------------------------------------------------------------------------------
# Import: parity with transformers, layer by layer
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        dict(),  # hidden 32, 4 heads of 8, 2 layers, gelu
        dict(hidden_size=48, num_attention_heads=3, num_hidden_layers=1, hidden_act="relu"),
        dict(hidden_size=64, num_attention_heads=2, num_hidden_layers=3, hidden_act="gelu_new"),
    ],
)
def test_neox_matches_transformers_per_layer(tmp_path, config):
    path = save_neox(tmp_path, **config)
    rows = hf.compare_with_transformers(path, *padded_batch(50))
    layers = config.get("num_hidden_layers", 2)
    assert [name for name, _ in rows] == [
        "embeddings",
        *[f"layer {i}" for i in range(1, layers + 1)],
        "lm logits",
    ]
    assert max(value for _, value in rows) <= TOL, hf.format_table(rows)
    model = hf.from_hf(path)
    assert model.config.rotary and model.config.causal and model.transformer.position_embeddings is None


def test_the_fused_qkv_rows_must_be_regrouped_per_head(checkpoint, monkeypatch):
    """The comparison is not vacuous: reading NeoX's [nh, 3, hs] rows as our [3, nh, hs] breaks layer 1."""
    monkeypatch.setattr(neox, "regroup_qkv", lambda w, groups, per_group: w)
    rows = dict(hf.compare_with_transformers(checkpoint, *padded_batch(50)))
    assert rows["embeddings"] <= TOL
    assert rows["layer 1"] > 1e-2


def test_regroup_qkv_reads_heads_by_role_and_back():
    rows = torch.arange(12)  # 2 heads × (q, k, v) × 2 dims, as GPT-NeoX stores them
    ours = neox.regroup_qkv(rows, 2, 3)
    assert ours.tolist() == [0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11]  # q of heads 0, 1; k of 0, 1; v ...
    assert torch.equal(neox.regroup_qkv(ours, 3, 2), rows)


def test_older_checkpoints_with_embed_out_and_buffers_load(checkpoint, tmp_path):
    """transformers 4 wrote the untied name `embed_out` and stored the mask and rotary buffers."""
    state = load_file(checkpoint / "model.safetensors")
    old = edited_copy(checkpoint, tmp_path / "old", tie_word_embeddings=False)
    buffers = {
        "gpt_neox.layers.0.attention.bias": torch.ones(16, 16, dtype=torch.bool).tril()[None, None],
        "gpt_neox.layers.0.attention.rotary_emb.inv_freq": torch.ones(4),
    }
    save_file(
        {**state, **buffers, "embed_out.weight": state["gpt_neox.embed_in.weight"].clone()},
        old / "model.safetensors",
    )
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert torch.equal(hf.from_hf(old)(ids), hf.from_hf(checkpoint)(ids))


# ----------------------------------------------------------------------------------------------
# Import: what is refused, by name, in one line
# ----------------------------------------------------------------------------------------------

ROPE = {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 1.0}


@pytest.mark.parametrize(
    "changes, feature",
    [
        ({"use_parallel_residual": True}, "use_parallel_residual=true"),
        ({"rope_parameters": {**ROPE, "partial_rotary_factor": 0.25}}, "rotary_pct=0.25"),
        ({"rope_parameters": None, "rotary_pct": 0.5}, "rotary_pct=0.5"),  # transformers 4's keys
        ({"rope_parameters": {**ROPE, "rope_theta": 500.0}}, "rotary_emb_base=500.0"),
        ({"rope_parameters": {**ROPE, "rope_type": "linear", "factor": 2.0}}, "rope_type='linear'"),
        ({"attention_bias": False}, "attention_bias=false"),
        ({"hidden_act": "silu"}, "activation 'silu'"),
        ({"architectures": ["GPTNeoXForSequenceClassification"]}, "GPTNeoXForSequenceClassification"),
    ],
)
def test_unsupported_features_are_refused_by_name(checkpoint, tmp_path, changes, feature):
    path = edited_copy(checkpoint, tmp_path / "edited", **changes)
    with pytest.raises(ValueError, match=feature):
        hf.from_hf(path)


def test_a_pythia_config_is_refused_in_one_line_naming_the_parallel_residual(checkpoint, tmp_path, capsys):
    """Pythia's config.json: parallel residual, rotary on a quarter of each head (transformers' defaults)."""
    pythia = edited_copy(
        checkpoint, tmp_path / "pythia", rope_parameters=None, use_parallel_residual=True, rotary_pct=0.25
    )
    assert hf.main(["convert", str(pythia), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "use_parallel_residual=true" in err and err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_untied_output_embeddings_are_refused(checkpoint, tmp_path):
    state = load_file(checkpoint / "model.safetensors")
    untied = edited_copy(checkpoint, tmp_path / "untied", tie_word_embeddings=False)
    save_file({**state, "lm_head.weight": torch.randn(50, 32)}, untied / "model.safetensors")
    with pytest.raises(ValueError, match="untied output embeddings"):
        hf.from_hf(untied)
    headless = edited_copy(checkpoint, tmp_path / "headless", tie_word_embeddings=False)
    with pytest.raises(ValueError, match="no output matrix"):
        hf.from_hf(headless)


# ----------------------------------------------------------------------------------------------
# Export: our rotary models as GPTNeoXForCausalLM
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["gelu_tanh", "relu"])
def test_a_rotary_model_exports_as_gpt_neox_with_the_same_logits(tmp_path, activation):
    model = randomize(TransformerWithLMHead(rotary_lm(activation=activation)))
    hf.to_hf(model, tmp_path)
    reference = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(reference).__name__ == "GPTNeoXForCausalLM"
    assert reference.lm_head.weight is reference.gpt_neox.embed_in.weight  # tied, as ours
    assert logits_difference(model, reference) <= TOL


def test_import_export_import_is_exact(checkpoint, tmp_path):
    first = hf.from_hf(checkpoint)
    hf.to_hf(first, tmp_path)
    original, exported = (
        load_file(checkpoint / "model.safetensors"),
        load_file(tmp_path / "model.safetensors"),
    )
    assert original.keys() == exported.keys()
    assert all(torch.equal(original[k], exported[k]) for k in original)
    second = hf.from_hf(tmp_path)
    assert first.config == second.config
    assert all(torch.equal(v, second.state_dict()[k]) for k, v in first.state_dict().items())


@pytest.mark.parametrize(
    "changes, switch",
    [
        (
            {"norm_placement": "hands_on", "final_layer_norm": False},
            "norm_placement='hands_on' (GPT-NeoX has 'pre')",
        ),
        ({"final_layer_norm": False}, "final_layer_norm=False"),
        ({"attention_only": True}, "attention_only=True"),
        ({"bias": False}, "bias=False"),
        ({"lm_head_transform": True}, "lm_head_transform=True"),
    ],
)
def test_export_refuses_other_rotary_architectures_naming_the_switch(tmp_path, changes, switch):
    with pytest.raises(ValueError, match=switch.replace("(", r"\(").replace(")", r"\)")):
        hf.to_hf(TransformerWithLMHead(rotary_lm(**changes)), tmp_path)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_export_of_a_rotary_model_folder_loads_with_the_auto_classes(tmp_path):
    run, model = saved_folder(tmp_path / "run", rotary_lm())
    assert hf.main(["export", str(run), str(tmp_path / "out")]) == 0
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "out")
    reference = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    text = "The tower is 324 metres tall ."
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == hf.load_tokenizer(run).encode(text)
    assert type(reference).__name__ == "GPTNeoXForCausalLM"
    assert logits_difference(model, reference) <= TOL
