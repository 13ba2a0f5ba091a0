"""`checkpoint`: model directories; weights the config does not describe are an error."""

from __future__ import annotations

import json

import pytest

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
