"""Opening a model directory for the explorer: ours (pretrain, adapt, save_pretrained, hf convert) or a
Hugging Face GPT-2/BERT checkpoint as downloaded."""

from __future__ import annotations

import os
from pathlib import Path

from minitransformer import TransformerWithLMHead

from ..checkpoint import check_tokenizer_matches, read_config
from ..runs.io import read_json_object
from ..tokenization import Tokenizer

META_NAME = "minitransformer_meta.json"  # written by `python -m minitransformer hf convert`
DAMAGED = "the directory is damaged, re-save it"


def load_model_dir(directory: str | os.PathLike) -> tuple[TransformerWithLMHead, Tokenizer, bool]:
    """(model in eval mode, its tokenizer, whether texts get BERT's [CLS] ... [SEP]) of a directory.

    A classifier's directory opens as a language model through its tied output embeddings.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"model directory {directory} not found: give a directory written by pretrain, adapt or "
            "save_pretrained, or a Hugging Face GPT-2/BERT checkpoint"
        )
    values = _config_values(directory)
    if "model_type" in values and "architecture" not in values:  # a Hugging Face checkpoint as it comes
        from ..interop.hf import from_hf  # transformers-free, but only needed for HF folders

        model = from_hf(directory, task="lm")
        bert = values["model_type"] == "bert"
        tokenizer = Tokenizer.from_pretrained(directory)
    else:
        read_config(directory)  # our directory's checks and messages
        model = TransformerWithLMHead.from_pretrained(directory)
        bert = _meta(directory).get("model_type") == "bert"
        tokenizer = Tokenizer.from_pretrained(directory)
        check_tokenizer_matches(directory, tokenizer)  # the same vocabulary, not only the same size
    return model.eval(), tokenizer, bert


def _config_values(directory: Path) -> dict:
    path = directory / "config.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: {directory} is not a model directory (it needs config.json and model.safetensors)"
        )
    return read_json_object(path, DAMAGED)


def _meta(directory: Path) -> dict:
    path = directory / META_NAME
    return read_json_object(path, DAMAGED) if path.is_file() else {}
