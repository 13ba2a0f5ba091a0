"""`checkpoint`: model directories; weights the config does not describe are an error."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import REPO

from minitransformer import TransformerConfig, TransformerWithClfHead, TransformerWithLMHead


def test_weights_the_config_does_not_describe_are_an_error(tiny_config, tmp_path):
    deeper = TransformerConfig.from_dict({**tiny_config.to_dict(), "num_layers": 4})
    TransformerWithLMHead(deeper).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "num_layers": 2}))
    for cls in (TransformerWithLMHead, TransformerWithClfHead):  # adapt loads with the classifier class
        with pytest.raises(ValueError, match="backbone parameters its config does not describe"):
            cls.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "architecture": "GPT5"}))
    with pytest.raises(ValueError, match="unknown architecture 'GPT5'"):
        TransformerWithLMHead.from_pretrained(tmp_path)


def test_a_tokenizer_with_another_vocabulary_of_the_same_size_is_refused(tiny_config, tmp_path):
    """Issue 27 item 11: only the tokenizer's size was compared."""
    from minitransformer.checkpoint import check_tokenizer_matches
    from minitransformer.tokenization import Tokenizer

    texts = ["the cat sat on the mat", "a dog ran in the park", "birds fly over the sea"] * 20
    ours = Tokenizer.train(texts, vocab_size=60, min_frequency=1)
    theirs = Tokenizer.train([t.upper() for t in texts], vocab_size=60, min_frequency=1, lowercase=False)
    assert ours.vocab_size == theirs.vocab_size and ours.vocab_fingerprint() != theirs.vocab_fingerprint()
    TransformerWithLMHead(tiny_config).save_pretrained(tmp_path, tokenizer=ours)
    check_tokenizer_matches(tmp_path, Tokenizer.from_pretrained(tmp_path))  # its own: fine
    theirs.save_pretrained(tmp_path)  # copied over from another run
    with pytest.raises(ValueError, match=r"tokenizer.json is not the tokenizer .*model was trained with"):
        check_tokenizer_matches(tmp_path, Tokenizer.from_pretrained(tmp_path))


def test_a_config_json_that_is_not_a_mapping_is_one_clear_error(tmp_path):
    """Issue 27 item 21: a model config.json of `[]` gave AttributeError."""
    from minitransformer.checkpoint import read_config

    (tmp_path / "config.json").write_text("[]")
    with pytest.raises(ValueError, match=r"config.json is damaged \(not a mapping of config fields\)"):
        read_config(tmp_path)


def test_a_hugging_face_folder_read_without_hf_suggests_it(tmp_path):
    """Issue 27 item 29: an HF folder without `hf:` listed "unknown field(s)" and never suggested hf:DIR."""
    from minitransformer.checkpoint import read_config

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    with pytest.raises(
        ValueError, match=rf"is a Hugging Face config \(bert\): read the folder as hf:{tmp_path}"
    ):
        read_config(tmp_path)


@pytest.mark.parametrize("name", ["pre", "post", "hands_on", "masked"])
def test_folders_saved_before_block_load_with_the_same_outputs(name):
    """tests/data/f41324a/: tiny folders saved by commit f41324a (one ModuleList per kind of module,
    `transformer.attentions.0...`), with the logits that code computed (make_fixtures.py wrote them)."""
    from safetensors.torch import load_file

    from minitransformer.checkpoint import read_config

    folder = REPO / "tests" / "data" / "f41324a" / name
    architecture = read_config(folder)[0]
    model = {"TransformerWithClfHead": TransformerWithClfHead}.get(architecture, TransformerWithLMHead)
    model = model.from_pretrained(folder).eval()
    expected = load_file(str(folder / "expected.safetensors"))
    x = expected["x"]
    with torch.no_grad():
        if (
            name == "hands_on"
        ):  # a classifier with adapters; its classification tokens as the old run had them
            clf = torch.zeros_like(x, dtype=torch.bool)
            clf[0, 5] = clf[1, 3] = True
            logits = model(x, clf, padding_mask=x == 0)
        else:
            logits = model(x)
    torch.testing.assert_close(logits, expected["logits"], rtol=0, atol=1e-6)
    assert "transformer.blocks.1.attention.in_proj_weight" in model.state_dict()


def test_the_legacy_rename_map_moves_every_per_kind_list_into_its_block():
    from minitransformer.checkpoint import rename_legacy_keys

    old = ["transformer.attentions.10.out_proj.weight", "transformer.feed_forwards.0.2.bias",
           "transformer.layer_norms_2.3.weight", "transformer.adapters_1.1.0.weight", "lm_head.decoder.bias"]  # fmt: skip
    assert list(rename_legacy_keys(dict.fromkeys(old))) == [
        "transformer.blocks.10.attention.out_proj.weight", "transformer.blocks.0.feed_forward.2.bias",
        "transformer.blocks.3.layer_norm_2.weight", "transformer.blocks.1.adapter_1.0.weight", "lm_head.decoder.bias",
    ]  # fmt: skip
