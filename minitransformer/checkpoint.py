"""Saving and loading model directories: `config.json` + `model.safetensors` (+ `tokenizer.json`).

The format is Hugging Face's directory layout without its class hierarchy. Weights are stored with
safetensors (no pickle); the tied LM decoder is stored once, as the token embeddings. Every file is
written atomically, and every way a directory can be wrong (missing file, corrupt weights, a config
that does not match the weights) raises an error naming the file or the keys.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import FineTuningConfig, TransformerConfig
from .runs.io import atomic_path, write_json_atomic

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TIED_KEY = "lm_head.decoder.weight"  # = transformer.tokens_embeddings.weight, never stored twice
ARCHITECTURES = ("TransformerWithLMHead", "TransformerWithClfHead")  # the model classes of model.py
VOCAB_KEY = "tokenizer_vocab_sha256"  # in config.json: `Tokenizer.vocab_fingerprint()` of the saved tokenizer
# The hands-on's layout (and ours before `model.Block`): one list per kind of module, indexed by layer
# (`transformer.attentions.0.in_proj_weight`); each list's part of a Block now (`transformer.blocks.0.attention...`).
LEGACY_LAYER_LISTS = {
    "attentions": "attention",
    "feed_forwards": "feed_forward",
    "layer_norms_1": "layer_norm_1",
    "layer_norms_2": "layer_norm_2",
    "adapters_1": "adapter_1",
    "adapters_2": "adapter_2",
}
_LEGACY_KEY = re.compile(rf"^transformer\.({'|'.join(LEGACY_LAYER_LISTS)})\.(\d+)\.")
# Parameters a classifier adds on top of a language model (absent from an LM checkpoint).
_NEW_HEAD_KEY = re.compile(r"^(classification_head|pooler)\.|^transformer\.blocks\.\d+\.adapter_[12]\.")


def rename_legacy_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The one key-rename map from the per-kind lists to Blocks: `transformer.attentions.3.x` →
    `transformer.blocks.3.attention.x`; other keys pass unchanged. Checkpoint loading, the hands-on import
    and the Hugging Face key maps all go through it."""
    return {
        _LEGACY_KEY.sub(lambda m: f"transformer.blocks.{m[2]}.{LEGACY_LAYER_LISTS[m[1]]}.", k): v
        for k, v in state.items()
    }


def is_new_head_key(key: str) -> bool:
    """A parameter a classifier adds on top of a language model: classifier, pooler, adapters."""
    return _NEW_HEAD_KEY.match(key) is not None


def read_config(directory: str | os.PathLike) -> tuple[str, TransformerConfig, FineTuningConfig | None]:
    """Read `config.json` of a model directory: (architecture name, backbone config, fine-tuning config)."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: a model directory holds {CONFIG_NAME} and {WEIGHTS_NAME} "
            "(write one with model.save_pretrained(dir))"
        )
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); the directory is damaged, re-save it") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path} is damaged (not a mapping of config fields); re-save the model")
    if "architecture" not in values and ("model_type" in values or "architectures" in values):  # HF's keys
        raise ValueError(
            f"{path} is a Hugging Face config ({values.get('model_type', 'architectures')}): read the folder "
            f"as hf:{Path(directory)} (e.g. --pretrained hf:{Path(directory)})"
        )
    values.pop(VOCAB_KEY, None)
    architecture = values.pop("architecture", "TransformerWithLMHead")
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"{path}: unknown architecture {architecture!r}; expected one of {list(ARCHITECTURES)} "
            "(a Hugging Face checkpoint is read with hf:DIR or minitransformer.interop.hf.from_hf)"
        )
    ft = values.pop("fine_tuning", None)
    return architecture, TransformerConfig.from_dict(values), FineTuningConfig.from_dict(ft) if ft else None


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a safetensors file, turning library errors into one message that names the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path} is corrupt or truncated ({e}); re-save or re-download it") from None


def check_tokenizer_matches(directory: str | os.PathLike, tokenizer) -> None:
    """Refuse a tokenizer whose vocabulary is not the one `directory`'s model was saved with (a hash kept in
    config.json; a model saved without one, or by another program, is not checked). A tokenizer of the same
    size but another vocabulary would map every word to another embedding."""
    path = Path(directory) / CONFIG_NAME
    try:
        saved = json.loads(path.read_text(encoding="utf-8")).get(VOCAB_KEY)
    except (OSError, ValueError, AttributeError):
        return  # read_config names a missing or damaged file
    if saved and saved != tokenizer.vocab_fingerprint():
        raise ValueError(
            f"{Path(directory) / 'tokenizer.json'} is not the tokenizer {Path(directory)}'s model was trained with "
            f"(another vocabulary of {tokenizer.vocab_size} tokens): put the model's own tokenizer.json back"
        )


class PretrainedMixin:
    """`save_pretrained` / `from_pretrained` for the model classes in `model.py`."""

    def save_pretrained(self, directory: str | os.PathLike, tokenizer=None) -> Path:
        """Write config.json and model.safetensors (and tokenizer.json if a tokenizer is given)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items() if k != TIED_KEY}
        with atomic_path(directory / WEIGHTS_NAME) as tmp:
            save_file(tensors, str(tmp), metadata={"format": "pt"})
        config = {"architecture": type(self).__name__, **self.config.to_dict()}
        if tokenizer is not None:  # the vocabulary the embeddings are indexed by, checked on load
            config[VOCAB_KEY] = tokenizer.vocab_fingerprint()
        if getattr(self, "fine_tuning_config", None) is not None:
            config["fine_tuning"] = self.fine_tuning_config.to_dict()
        write_json_atomic(directory / CONFIG_NAME, config)
        if tokenizer is not None:
            tokenizer.save_pretrained(directory)
        return directory

    @classmethod
    def from_pretrained(
        cls,
        directory: str | os.PathLike,
        fine_tuning_config: FineTuningConfig | None = None,
        output_loading_info: bool = False,
        **config_overrides,
    ):
        """Build the model from a directory written by `save_pretrained`.

        Loading a language model into a classifier is how adaptation starts: the classifier's new
        parameters are reported as "added", checkpoint parameters the model has no use for as
        "discarded" (returned with output_loading_info=True). Within the same class every key must
        match exactly. `config_overrides` change non-shape fields (e.g. dropout=0.0).
        """
        architecture, config, saved_ft = read_config(directory)
        if config_overrides:
            config = TransformerConfig.from_dict({**config.to_dict(), **config_overrides})
        if cls.__name__ == "TransformerWithClfHead":
            model = cls(config, fine_tuning_config or saved_ft)
        else:
            model = cls(config)
        state = read_weights(Path(directory) / WEIGHTS_NAME)
        info = load_checkpoint_state(model, state, strict=architecture == cls.__name__, source=directory)
        return (model, info) if output_loading_info else model


def load_checkpoint_state(
    model: torch.nn.Module, state: dict[str, torch.Tensor], strict: bool, source: object = "state dict"
) -> dict[str, list[str]]:
    """Copy `state` into `model` with clear errors; returns {"added": [...], "discarded": [...]}.

    strict: every key must match. Otherwise only a classifier's new-head keys may be missing, and
    unexpected head keys are discarded (e.g. an MLM transform when adapting to classification); backbone
    weights the config does not describe (e.g. layers beyond num_layers) are an error either way. Keys in
    the layout before `Block` are renamed first (`rename_legacy_keys`).
    """
    expected = {k: v for k, v in model.state_dict().items() if k != TIED_KEY}
    state = {k: v for k, v in rename_legacy_keys(state).items() if k != TIED_KEY}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    not_new = [k for k in missing if not is_new_head_key(k)]
    backbone = [k for k in unexpected if k.startswith("transformer.")]
    if backbone:
        raise ValueError(
            f"{source}: the weights hold backbone parameters its config does not describe ({len(backbone)}, "
            f"e.g. {backbone[0]}): config.json and model.safetensors come from different models; re-save it"
        )
    if strict and (missing or unexpected) or not_new:
        raise ValueError(
            f"{source}: the checkpoint does not match the model's config: missing keys "
            f"{not_new if not strict else missing}, unexpected keys {unexpected}. Was it saved from a "
            "different config or model class?"
        )
    for key in sorted(set(expected) & set(state)):
        if state[key].shape != expected[key].shape:
            raise ValueError(
                f"{source}: '{key}' has shape {tuple(state[key].shape)} in the checkpoint but "
                f"{tuple(expected[key].shape)} in the model; the config does not match the weights"
            )
    model.load_state_dict(state, strict=False)
    model.tie_weights()
    return {"added": missing, "discarded": unexpected}


def from_hands_on_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the NAACL hands-on's state-dict keys to ours.

    The hands-on's modules carry our names in per-kind lists (`transformer.attentions.0.in_proj_weight`),
    renamed by `rename_legacy_keys`; its LM head is a bare Linear (`lm_head.weight`), tied to the
    embeddings, so it is dropped here and re-tied on load. A bare backbone state dict (keys without the
    `transformer.` prefix) gets the prefix.
    """
    converted = {}
    for key, value in state_dict.items():
        if key == "lm_head.weight":
            continue
        if not key.startswith(("transformer.", "classification_head.")):
            key = "transformer." + key
        converted[key] = value
    return rename_legacy_keys(converted)
