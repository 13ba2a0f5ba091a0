"""Hugging Face interop: GPT-2, GPT-NeoX and BERT checkpoints in and out of our Transformer.

    from_hf(path, task="lm")          a local HF checkpoint directory → our model (reads the files directly)
    to_hf(model, directory)           our causal LM → a GPT-2 (GPT-NeoX with rotary positions) directory
    export(run, out_dir)              a model folder of ours → a folder transformers' Auto classes load, tokenizer too
    compare_with_transformers(path)   per-layer max |ours − transformers|
    convert(path, out_dir)            from_hf + save_pretrained + the tokenizer files + minitransformer_meta.json

Its command line, `main` at the end (`python -m minitransformer hf compare PATH`, `... convert PATH OUT`,
`... export RUN OUT`), compares with `transformers` (which compare needs), converts and exports;
the hands-on's own `model_checkpoint.pth` (not a Hugging Face format) loads with `hands_on.py`.

How the architectures map onto `TransformerConfig`:
- GPT-2: norm_placement="pre" with a final norm, learned positions, gelu_new → activation="gelu_tanh",
  causal. Its Conv1D weights are stored [in, out], the transpose of `nn.Linear`; `c_attn` is already the
  fused q;k;v projection.
- BERT: norm_placement="post", token types, embedding LayerNorm, bidirectional (mlm=True). Separate
  query/key/value projections are concatenated into our `in_proj_weight`.
- Megatron-BERT: BERT with norm_placement="pre": a norm before each sub-block, a final norm, none on the
  embeddings. Export writes our pre-norm masked LMs as it (see `export`).
- GPT-NeoX: GPT-2's block with rotary positions (rotary=True) and a per-head q/k/v row order; its own
  module, `neox.py`, holds the mapping and what it refuses (Pythia's parallel residual, partial rotary).
  Export writes our causal models with rotary positions as it.
The pieces every mapping is built from (key maps read both ways, refusals) are in `mapping.py`.

Decisions worth knowing:
- task="lm" (default) needs an LM head: always true for GPT-2 and GPT-NeoX (tied to the embeddings), true
  for BERT only with the masked-LM head (BertForMaskedLM / BertForPreTraining). A bare `BertModel` has
  none, so task="lm" refuses rather than inventing one; load it with task="classification" (its pooler
  comes along, the classifier is new) or task="backbone" (returns the `Transformer` alone). The config
  records what the checkpoint has: `lm_head_transform`/`lm_head_bias` are True only with the MLM head.
- Classification token position: BERT classifies on `[CLS]` at the *start*, GPT-2, GPT-NeoX and the
  hands-on on a token at the *end*. `TransformerConfig` has no field for it, so `clf_position(path)`
  answers "start" or "end", and `convert` writes it into `minitransformer_meta.json` beside the model.
- Refused with an error naming the feature (never a silent load that computes something else):
  cross-attention, decoders, relative position embeddings, `scale_attn_by_inverse_layer_idx`,
  `scale_attn_weights=false`, activations we lack, untied output embeddings, unknown architectures/keys,
  and GPT-NeoX's features listed in `neox.py`.
- Accepted: GPT-2 `reorder_and_upcast_attn` (it only changes mixed-precision numerics; in fp32 the
  result is the same). We have one dropout rate: GPT-2's `resid_pdrop`, BERT's `hidden_dropout_prob`.
  BERT's next-sentence head (`cls.seq_relationship`) and, for task="lm", the pooler are discarded
  (listed in the loading info).

`transformers` is needed only by `compare_with_transformers` (and the tests); importing this module
does not import it.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from ..checkpoint import load_checkpoint_state, read_weights
from ..config import FineTuningConfig, TransformerConfig
from ..model import Transformer, TransformerWithClfHead, TransformerWithLMHead
from ..runs.errors import USER_ERRORS, mask_urls
from ..runs.io import atomic_path, read_json_object, write_json_atomic
from ..runs.outputs import check_output_dir, refuse_reading_output
from ..tokenization import Tokenizer
from .mapping import (
    CAUSAL_LM_SWITCHES,
    HF_ACTIVATION_NAMES,
    KeyMap,
    activation_from_hf,
    check_switches,
    check_tied,
    give,
    linear_keys,
    read_fields,
    refuse,
    take,
    write_fields,
)
from .neox import NEOX_ARCHITECTURES, NEOX_BUFFERS, config_from_neox, neox_checkpoint, state_from_neox

TASKS = ("lm", "classification", "backbone")
DAMAGED = "the checkpoint is damaged; download or save it again"
META_NAME = "minitransformer_meta.json"
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "merges.txt", "tokenizer_config.json")
# The architectures we import, by the role of their head.
GPT2_ARCHITECTURES = ("GPT2Model", "GPT2LMHeadModel")
BERT_ARCHITECTURES = ("BertModel", "BertForMaskedLM", "BertForPreTraining", "BertForSequenceClassification")
MEGATRON_ARCHITECTURES = ("MegatronBertModel", "MegatronBertForMaskedLM")
BERT_TYPES = ("bert", "megatron-bert")  # the model types read with BERT's keys
CAUSAL_TYPES = ("gpt2", "gpt_neox")  # causal LMs, whose output layer is the tied token embeddings
GPT2_ACTIVATION_NAMES = {**HF_ACTIVATION_NAMES, "gelu_tanh": "gelu_new"}  # ours → GPT-2's names


# ----------------------------------------------------------------------------------------------
# Reading a checkpoint directory
# ----------------------------------------------------------------------------------------------


def read_hf_checkpoint(path: str | os.PathLike) -> tuple[dict, dict[str, Tensor]]:
    """(config.json as a dict, every tensor) of a HF checkpoint directory, without `transformers`.

    Reads model.safetensors, a sharded model.safetensors.index.json, or pytorch_model.bin (with
    `weights_only=True`: a .bin is a pickle, and only tensors are allowed out of it).
    """
    path = Path(path)
    config_path = path / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{config_path} not found: a Hugging Face checkpoint directory holds config.json"
        )
    config = read_json_object(config_path, DAMAGED)
    if (path / "model.safetensors").is_file():
        return config, read_weights(path / "model.safetensors")
    index = path / "model.safetensors.index.json"
    if index.is_file():
        weight_map = read_json_object(index, DAMAGED).get("weight_map")
        if not isinstance(weight_map, dict):
            raise ValueError(f"{index} has no weight_map: {DAMAGED}")
        shards = sorted(set(weight_map.values()))
        state: dict[str, Tensor] = {}
        for shard in shards:
            state.update(read_weights(path / shard))
        return config, state
    if (path / "pytorch_model.bin").is_file():
        try:
            return config, torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
        except Exception as e:  # a damaged file or one holding more than tensors
            raise ValueError(
                f"{path / 'pytorch_model.bin'} could not be read with weights_only=True ({e})"
            ) from None
    raise FileNotFoundError(f"no weights in {path}: expected model.safetensors or pytorch_model.bin")


def _unsupported_model_type(hf_config: dict) -> ValueError:
    return ValueError(
        f"model_type={hf_config.get('model_type')!r} is not supported: minitransformer imports "
        "'gpt2', 'gpt_neox', 'bert' and 'megatron-bert' checkpoints"
    )


def architecture(hf_config: dict, keys) -> str:
    """The checkpoint's architecture, checked against the ones we import (from config.json, else the keys)."""
    model_type = hf_config.get("model_type")
    if model_type not in (*CAUSAL_TYPES, *BERT_TYPES):
        raise _unsupported_model_type(hf_config)
    names = hf_config.get("architectures") or []
    if names:
        name = names[0]
    elif model_type == "gpt2":
        name = "GPT2LMHeadModel"
    elif model_type == "gpt_neox":
        name = NEOX_ARCHITECTURES[0]
    elif any(k.startswith("classifier.") for k in keys):
        name = "BertForSequenceClassification"
    else:
        name = "BertForMaskedLM" if any(k.startswith("cls.predictions.") for k in keys) else "BertModel"
        name = name.replace("Bert", "MegatronBert") if model_type == "megatron-bert" else name
    supported = {"gpt2": GPT2_ARCHITECTURES, "gpt_neox": NEOX_ARCHITECTURES, "bert": BERT_ARCHITECTURES}.get(
        model_type, MEGATRON_ARCHITECTURES
    )
    if name not in supported:
        raise ValueError(
            f"architecture {name} is not supported for model_type={model_type!r}; supported: {supported}"
        )
    return name


# Our config field ← (the HF config.json key, its value when the key is absent: transformers' default).
GPT2_CONFIG_KEYS = {
    "embed_dim": ("n_embd", 768),
    "num_max_positions": ("n_positions", 1024),
    "vocab_size": ("vocab_size", 50257),
    "num_heads": ("n_head", 12),
    "num_layers": ("n_layer", 12),
    "dropout": ("resid_pdrop", 0.1),
    "initializer_range": ("initializer_range", 0.02),
    "layer_norm_eps": ("layer_norm_epsilon", 1e-5),
}
BERT_CONFIG_KEYS = {
    "embed_dim": ("hidden_size", 768),
    "hidden_dim": ("intermediate_size", 3072),
    "num_max_positions": ("max_position_embeddings", 512),
    "vocab_size": ("vocab_size", 30522),
    "num_heads": ("num_attention_heads", 12),
    "num_layers": ("num_hidden_layers", 12),
    "dropout": ("hidden_dropout_prob", 0.1),
    "initializer_range": ("initializer_range", 0.02),
    "layer_norm_eps": ("layer_norm_eps", 1e-12),
    "token_type_vocab_size": ("type_vocab_size", 2),
}


def config_from_hf(hf_config: dict, has_mlm_head: bool = False) -> TransformerConfig:
    """Translate a GPT-2, GPT-NeoX or BERT config.json into a `TransformerConfig`, refusing features we lack.

    has_mlm_head: the BERT weights include the masked-LM head (sets lm_head_transform/lm_head_bias).
    """
    c = hf_config
    if c.get("model_type") == "gpt2":
        refuse(bool(c.get("add_cross_attention")), "add_cross_attention (cross-attention)")
        refuse(bool(c.get("scale_attn_by_inverse_layer_idx")), "scale_attn_by_inverse_layer_idx")
        refuse(c.get("scale_attn_weights") is False, "scale_attn_weights=false (attention without 1/√d)")
        values = read_fields(c, GPT2_CONFIG_KEYS)
        return TransformerConfig(
            **values,
            hidden_dim=c.get("n_inner") or 4 * values["embed_dim"],
            activation=activation_from_hf(c.get("activation_function", "gelu_new")),
            norm_placement="pre",
            final_layer_norm=True,
        )
    if c.get("model_type") == "gpt_neox":
        return config_from_neox(c)
    if c.get("model_type") in BERT_TYPES:
        refuse(bool(c.get("is_decoder")), "is_decoder (a causal BERT decoder)")
        refuse(bool(c.get("add_cross_attention")), "add_cross_attention (cross-attention)")
        position_type = c.get("position_embedding_type", "absolute")
        refuse(position_type != "absolute", f"position_embedding_type={position_type!r}")
        pre_norm = c["model_type"] == "megatron-bert"
        return TransformerConfig(
            **read_fields(c, BERT_CONFIG_KEYS),
            mlm=True,
            activation=activation_from_hf(c.get("hidden_act", "gelu")),
            norm_placement="pre" if pre_norm else "post",
            final_layer_norm=pre_norm,
            embedding_layer_norm=not pre_norm,
            lm_head_transform=has_mlm_head,
            lm_head_bias=has_mlm_head,
        )
    raise _unsupported_model_type(c)


# ----------------------------------------------------------------------------------------------
# Key maps: one list per architecture, read forwards to import and backwards to export
# ----------------------------------------------------------------------------------------------


def gpt2_key_map(num_layers: int, prefix: str = "transformer.") -> KeyMap:
    """Our keys ↔ GPT-2's. Conv1D weights (c_attn, c_proj, c_fc) are stored [in, out]: transposed."""
    keys: KeyMap = [
        ("transformer.tokens_embeddings.weight", (prefix + "wte.weight",), False),
        ("transformer.position_embeddings.weight", (prefix + "wpe.weight",), False),
    ]
    for i in range(num_layers):
        h = f"{prefix}h.{i}."
        keys += linear_keys(f"transformer.blocks.{i}.layer_norm_1", h + "ln_1")
        keys += [
            (f"transformer.blocks.{i}.attention.in_proj_weight", (h + "attn.c_attn.weight",), True),
            (f"transformer.blocks.{i}.attention.in_proj_bias", (h + "attn.c_attn.bias",), False),
        ]
        keys += linear_keys(f"transformer.blocks.{i}.attention.out_proj", h + "attn.c_proj", transposed=True)
        keys += linear_keys(f"transformer.blocks.{i}.layer_norm_2", h + "ln_2")
        keys += linear_keys(f"transformer.blocks.{i}.feed_forward.0", h + "mlp.c_fc", transposed=True)
        keys += linear_keys(f"transformer.blocks.{i}.feed_forward.2", h + "mlp.c_proj", transposed=True)
    return keys + linear_keys("transformer.final_layer_norm", prefix + "ln_f")


def bert_key_map(num_layers: int, prefix: str = "bert.", pre_norm: bool = False) -> KeyMap:
    """Our backbone keys ↔ BERT's; query, key and value are concatenated into `in_proj_*`.

    pre_norm: Megatron-BERT's names for the norms (before each sub-block, a final one, none on the embeddings).
    """
    e = prefix + "embeddings."
    keys: KeyMap = [
        ("transformer.tokens_embeddings.weight", (e + "word_embeddings.weight",), False),
        ("transformer.position_embeddings.weight", (e + "position_embeddings.weight",), False),
        ("transformer.token_type_embeddings.weight", (e + "token_type_embeddings.weight",), False),
    ]
    if not pre_norm:
        keys += linear_keys("transformer.embeddings_layer_norm", e + "LayerNorm")
    norm_1, norm_2 = (
        ("attention.ln", "ln") if pre_norm else ("attention.output.LayerNorm", "output.LayerNorm")
    )
    for i in range(num_layers):
        layer, block = f"{prefix}encoder.layer.{i}.", f"transformer.blocks.{i}."
        qkv = [layer + f"attention.self.{name}" for name in ("query", "key", "value")]
        keys += [
            (block + "attention.in_proj_weight", tuple(k + ".weight" for k in qkv), False),
            (block + "attention.in_proj_bias", tuple(k + ".bias" for k in qkv), False),
        ]
        keys += linear_keys(block + "attention.out_proj", layer + "attention.output.dense")
        keys += linear_keys(block + "layer_norm_1", layer + norm_1)
        keys += linear_keys(block + "feed_forward.0", layer + "intermediate.dense")
        keys += linear_keys(block + "feed_forward.2", layer + "output.dense")
        keys += linear_keys(block + "layer_norm_2", layer + norm_2)
    return keys + (linear_keys("transformer.final_layer_norm", prefix + "encoder.ln") if pre_norm else [])


BERT_MLM_KEYS: KeyMap = [
    *linear_keys("lm_head.transform.0", "cls.predictions.transform.dense"),
    *linear_keys("lm_head.transform.2", "cls.predictions.transform.LayerNorm"),
    ("lm_head.decoder.bias", ("cls.predictions.bias",), False),
]
BERT_CLASSIFIER_KEYS = linear_keys("classification_head", "classifier")


def _hf_state_to_ours(
    hf_config: dict, state: dict[str, Tensor], arch: str, source: object
) -> tuple[dict[str, Tensor], list[str]]:
    """Our state dict (backbone + whichever heads the checkpoint has) and the HF weights we discard."""
    state = dict(state)
    if hf_config["model_type"] == "gpt2":
        prefix = "transformer." if any(k.startswith("transformer.") for k in state) else ""
        ours = take(state, gpt2_key_map(hf_config.get("n_layer", 12), prefix), source)
        check_tied(state, "lm_head.weight", ours["transformer.tokens_embeddings.weight"], source)
        # Old checkpoints store the causal-mask buffers: not weights, we build the mask ourselves.
        buffers = [k for k in state if k.endswith(("attn.bias", "attn.masked_bias"))]
        discarded = []
    elif hf_config["model_type"] == "gpt_neox":
        ours = state_from_neox(hf_config, state, source)
        buffers = [k for k in state if k.endswith(NEOX_BUFFERS)]
        discarded = []
    else:
        prefix = "bert." if any(k.startswith("bert.") for k in state) else ""
        pre_norm = hf_config["model_type"] == "megatron-bert"
        ours = take(state, bert_key_map(hf_config.get("num_hidden_layers", 12), prefix, pre_norm), source)
        if "cls.predictions.bias" not in state and "cls.predictions.decoder.bias" in state:
            state["cls.predictions.bias"] = state.pop("cls.predictions.decoder.bias")
        if "cls.predictions.transform.dense.weight" in state:
            ours.update(take(state, BERT_MLM_KEYS, source))
            check_tied(
                state, "cls.predictions.decoder.weight", ours["transformer.tokens_embeddings.weight"], source
            )
            state.pop("cls.predictions.decoder.bias", None)  # the same tensor as cls.predictions.bias
        if prefix + "pooler.dense.weight" in state:
            ours.update(take(state, linear_keys("pooler.dense", prefix + "pooler.dense"), source))
        if "classifier.weight" in state:
            ours.update(take(state, BERT_CLASSIFIER_KEYS, source))
        buffers = [k for k in state if k.endswith(("position_ids", "token_type_ids"))]  # index tables
        discarded = [k for k in state if k.startswith("cls.seq_relationship.")]  # next-sentence head
    for key in buffers + discarded:
        del state[key]
    if state:
        raise ValueError(
            f"{source}: unexpected weights {sorted(state)[:6]} for {arch}; refusing to drop them silently "
            "(the checkpoint may use a feature minitransformer does not implement)"
        )
    return ours, discarded


# ----------------------------------------------------------------------------------------------
# Import
# ----------------------------------------------------------------------------------------------


def from_hf(
    path: str | os.PathLike,
    task: str = "lm",
    num_classes: int | None = None,
    fine_tuning_config: FineTuningConfig | None = None,
    output_loading_info: bool = False,
    **config_overrides,
) -> TransformerWithLMHead | TransformerWithClfHead | Transformer | tuple[torch.nn.Module, dict]:
    """Load a local GPT-2, GPT-NeoX or BERT checkpoint directory into our model classes.

    task="lm": `TransformerWithLMHead` (causal for GPT-2 and GPT-NeoX, masked LM for BERT; needs the MLM head).
    task="classification": `TransformerWithClfHead`; for BERT with `pooler=True` and the checkpoint's
    pooler and classifier when it has them (otherwise they start fresh, as in adaptation). The classes
    come from `num_classes`, else the checkpoint's classifier, or a full `fine_tuning_config`.
    task="backbone": the `Transformer` alone (any checkpoint, e.g. a bare `BertModel`).
    `config_overrides` change non-shape fields (dropout=0.0, attention_impl="explicit").
    The model comes back in eval mode, as transformers' `from_pretrained` does. With
    output_loading_info=True returns (model, {"added": [...], "discarded": [...]}).
    """
    if task not in TASKS:
        raise ValueError(f"task={task!r} is not one of {TASKS}")
    hf_config, hf_state = read_hf_checkpoint(path)
    arch = architecture(hf_config, hf_state)
    has_mlm_head = "cls.predictions.transform.dense.weight" in hf_state
    config = config_from_hf(hf_config, has_mlm_head=has_mlm_head)  # refuses unsupported features first
    state, discarded = _hf_state_to_ours(hf_config, hf_state, arch, path)
    has_lm_head = hf_config["model_type"] in CAUSAL_TYPES or has_mlm_head
    if config_overrides:
        config = TransformerConfig.from_dict({**config.to_dict(), **config_overrides})

    if task == "classification":
        ft = _fine_tuning_config(hf_config, state, num_classes, fine_tuning_config)
        stored = state.get("classification_head.weight")
        if stored is not None and stored.shape[0] != ft.num_classes:  # another label set: start fresh
            del state["classification_head.weight"], state["classification_head.bias"]
            discarded += ["classifier.weight", "classifier.bias"]
        model = TransformerWithClfHead(config, ft)
    elif task == "lm" and not has_lm_head:
        raise ValueError(
            f"{path} is a {arch} without a masked-LM head, so task='lm' has no trained output layer: "
            "load it with task='classification' or task='backbone'"
        )
    else:
        model = TransformerWithLMHead(config)
    info = load_checkpoint_state(model, state, strict=False, source=path)  # discards unused heads
    info["discarded"] = sorted(info["discarded"] + discarded)
    model.eval()
    result = model.transformer if task == "backbone" else model
    return (result, info) if output_loading_info else result


def _fine_tuning_config(
    hf_config: dict, state: dict[str, Tensor], num_classes: int | None, ft: FineTuningConfig | None
) -> FineTuningConfig:
    """The classifier's config: given, or BERT's (pooler on [CLS]) / GPT-2's (no pooler) defaults."""
    if ft is not None:
        if num_classes is not None and num_classes != ft.num_classes:
            raise ValueError(
                f"num_classes={num_classes} contradicts fine_tuning_config.num_classes={ft.num_classes}"
            )
        return ft
    if num_classes is None:
        if "classification_head.weight" not in state:
            raise ValueError(
                "task='classification' needs num_classes: the checkpoint has no classifier to read it from"
            )
        num_classes = state["classification_head.weight"].shape[0]
    return FineTuningConfig(num_classes=num_classes, pooler=hf_config["model_type"] in BERT_TYPES)


def clf_position(path: str | os.PathLike) -> str:
    """Where the classification token goes for this checkpoint: "start" (BERT's [CLS]) or "end" (GPT-2, ours)."""
    path = Path(path)
    if (path / META_NAME).is_file():
        position = read_json_object(path / META_NAME, DAMAGED).get("clf_position")
        if position not in ("start", "end"):
            raise ValueError(
                f"{path / META_NAME}: clf_position {position!r} is not 'start' or 'end': {DAMAGED}"
            )
        return position
    config_path = path / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: not a model directory")
    return "start" if read_json_object(config_path, DAMAGED).get("model_type") in BERT_TYPES else "end"


def load_tokenizer(path: str | os.PathLike):
    """The checkpoint's tokenizer (tokenizer.json, else vocab.txt) as a `minitransformer.tokenization.Tokenizer`."""
    return Tokenizer.from_pretrained(path)


def convert(
    path: str | os.PathLike, out_dir: str | os.PathLike, task: str = "lm", overwrite: bool = False,
    **from_hf_kwargs,
) -> Path:  # fmt: skip
    """Write a HF checkpoint in our format: config.json + model.safetensors, tokenizer files, meta.

    The tokenizer files are copied as they are (lossless: tokenizer_config.json keeps `do_lower_case`);
    `minitransformer_meta.json` records the source and the classification-token position. A folder that
    holds a run or a model is refused unless `overwrite`; `out_dir` equal to `path` always.
    """
    if task == "backbone":
        raise ValueError("convert writes a model with a head: use task='lm' or task='classification'")
    refuse_reading_output(out_dir, path, "the output folder")
    check_output_dir(
        out_dir, overwrite, "the output folder", ["model.safetensors", *TOKENIZER_FILES, META_NAME]
    )
    model = from_hf(path, task=task, **from_hf_kwargs)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    for name in TOKENIZER_FILES:
        if (Path(path) / name).is_file():
            with atomic_path(out_dir / name) as tmp:
                shutil.copyfile(Path(path) / name, tmp)
    hf_config = read_json_object(Path(path) / "config.json", DAMAGED)
    meta = {"source": str(path), "model_type": hf_config["model_type"], "clf_position": clf_position(path)}
    write_json_atomic(out_dir / META_NAME, meta)
    return out_dir


# ----------------------------------------------------------------------------------------------
# Export
# ----------------------------------------------------------------------------------------------

# What GPT-2's architecture fixes; the activation may be any GPT-2 knows (see GPT2_ACTIVATION_NAMES).
GPT2_SWITCHES = {**CAUSAL_LM_SWITCHES, "sinusoidal_embeddings": False, "rotary": False}


def gpt2_checkpoint(model: TransformerWithLMHead) -> tuple[dict, dict[str, Tensor]]:
    """(config.json, weights) of our causal LM as GPT2LMHeadModel; refuses, naming the switch, any other."""
    config = model.config
    check_switches(config, GPT2_SWITCHES, "GPT-2")
    hf_config = {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        **write_fields(config, GPT2_CONFIG_KEYS),
        "n_inner": config.hidden_dim,
        "activation_function": GPT2_ACTIVATION_NAMES[config.activation],
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "tie_word_embeddings": True,
        "bos_token_id": None,  # transformers' defaults (50256) would not fit a smaller vocabulary
        "eos_token_id": None,
    }
    return hf_config, give(model.state_dict(), gpt2_key_map(config.num_layers))


def causal_lm_checkpoint(model: TransformerWithLMHead) -> tuple[dict, dict[str, Tensor]]:
    """(config.json, weights) of our causal LM: GPT-2, or GPT-NeoX when it uses rotary positions."""
    return neox_checkpoint(model) if model.config.rotary else gpt2_checkpoint(model)


def _write_checkpoint(directory: Path, hf_config: dict, tensors: dict[str, Tensor]) -> Path:
    """model.safetensors, then config.json, each written whole (a temporary file renamed)."""
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / "model.safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    write_json_atomic(directory / "config.json", hf_config)
    return directory


def to_hf(model: TransformerWithLMHead, directory: str | os.PathLike, overwrite: bool = False) -> Path:
    """Export our causal LM as a checkpoint transformers loads (config.json + model.safetensors).

    A GPT-2-shaped model goes out as `GPT2LMHeadModel`, one with rotary positions as `GPTNeoXForCausalLM`
    (`causal_lm_checkpoint`). Other architectures raise a ValueError naming every switch that differs.
    A folder that holds a run or a model is refused unless `overwrite`.
    """
    if type(model) is not TransformerWithLMHead:
        raise ValueError(f"to_hf exports a TransformerWithLMHead, got {type(model).__name__}")
    hf_config, tensors = causal_lm_checkpoint(model)
    check_output_dir(directory, overwrite, "to_hf's folder", ["model.safetensors"])
    return _write_checkpoint(Path(directory), hf_config, tensors)


# What BERT's and Megatron-BERT's architectures fix, for our masked LMs by norm placement.
MASKED_LM_SWITCHES = {
    "post": ("BertForMaskedLM", {"final_layer_norm": False, "embedding_layer_norm": True}),
    "pre": ("MegatronBertForMaskedLM", {"final_layer_norm": True, "embedding_layer_norm": False}),
}


def _identity_head_transform(norm: nn.LayerNorm) -> dict[str, Tensor]:
    """BERT's MLM head transform (dense → activation → LayerNorm) set to give back its input h.

    For a model without that transform (our `lm_head_transform=False`). h = γ·n + β is the output of `norm`,
    n normalised (mean 0, variance 1 per token, so |n_i| < √E); dense(h) = (h − β)/γ + c = n + c with
    c = √E + 10, where relu and gelu are the identity (to float precision); the LayerNorm removes c and
    with γ and β gives h back.
    """
    gamma, beta = norm.weight.detach().cpu(), norm.bias.detach().cpu()
    if bool((gamma == 0).any()):
        raise ValueError("this masked LM cannot be exported: a zero LayerNorm weight below the LM head")
    c = math.sqrt(gamma.numel()) + 10.0
    return {
        "cls.predictions.transform.dense.weight": torch.diag(1.0 / gamma),
        "cls.predictions.transform.dense.bias": c - beta / gamma,
        "cls.predictions.transform.LayerNorm.weight": gamma.clone(),
        "cls.predictions.transform.LayerNorm.bias": beta.clone(),
    }


def masked_lm_checkpoint(model: TransformerWithLMHead) -> tuple[dict, dict[str, Tensor]]:
    """(config.json, weights) of a masked LM as BERT (post-norm) or Megatron-BERT (pre-norm) for transformers.

    Refuses, naming the switch, a model neither architecture computes. Without token types the type
    embedding is one row of zeros; without BERT's head transform the transform is set to the identity.
    """
    config = model.config
    if config.norm_placement not in MASKED_LM_SWITCHES:
        raise ValueError(
            f"this masked LM cannot be exported: norm_placement={config.norm_placement!r} has no masked-LM class "
            "in transformers (BERT is 'post', Megatron-BERT 'pre')"
        )
    name, switches = MASKED_LM_SWITCHES[config.norm_placement]
    check_switches(
        config,
        {**switches, "sinusoidal_embeddings": False, "rotary": False, "attention_only": False, "bias": True},
        name,
    )
    pre_norm = config.norm_placement == "pre"
    ours = model.state_dict()
    if not config.token_type_vocab_size:
        ours["transformer.token_type_embeddings.weight"] = torch.zeros(1, config.embed_dim)
    tensors = give(ours, bert_key_map(config.num_layers, pre_norm=pre_norm))
    if config.lm_head_transform:
        tensors.update(give(ours, BERT_MLM_KEYS[:-1]))
    else:
        last = model.transformer.final_layer_norm if pre_norm else model.transformer.blocks[-1].layer_norm_2
        tensors.update(_identity_head_transform(last))
    bias = ours["lm_head.decoder.bias"] if config.lm_head_bias else torch.zeros(config.vocab_size)
    tensors["cls.predictions.bias"] = bias.detach().cpu().contiguous()
    hf_config = {
        "model_type": "megatron-bert" if pre_norm else "bert",
        "architectures": [name],
        **write_fields(config, BERT_CONFIG_KEYS),
        "type_vocab_size": max(config.token_type_vocab_size, 1),
        "hidden_act": HF_ACTIVATION_NAMES[config.activation],
        "attention_probs_dropout_prob": config.dropout,
        "tie_word_embeddings": True,
    }
    return hf_config, tensors


def export(run: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Write our model folder `run` as a folder transformers' Auto classes load: config.json,
    model.safetensors and the tokenizer (tokenizer.json + tokenizer_config.json).

    A causal model goes out as GPT-2, or GPT-NeoX with rotary positions (`causal_lm_checkpoint`), a
    masked LM as BERT or Megatron-BERT (`masked_lm_checkpoint`); what none matches is refused naming the switch. `out_dir` must not
    exist or be empty; everything is written into a temporary folder renamed at the end.
    """
    run, out_dir = Path(run), Path(out_dir)
    refuse_reading_output(out_dir, run, "export's output folder")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(f"export: {out_dir} exists and is not an empty folder; give a new folder")
    model = TransformerWithLMHead.from_pretrained(run).eval()
    tokenizer = Tokenizer.from_pretrained(run)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        checkpoint = causal_lm_checkpoint if model.config.causal else masked_lm_checkpoint
        _write_checkpoint(tmp, *checkpoint(model))
        _write_hf_tokenizer(tokenizer, tmp, model.config.num_max_positions)
        if out_dir.exists():
            out_dir.rmdir()
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _write_hf_tokenizer(tokenizer: Tokenizer, directory: Path, max_length: int) -> None:
    """tokenizer.json and the tokenizer_config.json that `AutoTokenizer` reads beside it."""
    tokenizer.save_pretrained(directory)
    names = {
        "pad": "pad_token",
        "unk": "unk_token",
        "cls": "cls_token",
        "sep": "sep_token",
        "mask": "mask_token",
    }
    special = {names[k]: tokenizer.id_to_token(i) for k, i in tokenizer.special_ids.items()}
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": max_length, **special}
    write_json_atomic(directory / "tokenizer_config.json", config)


# ----------------------------------------------------------------------------------------------
# Compare with transformers
# ----------------------------------------------------------------------------------------------

SAMPLE_TEXTS = [
    "What is the capital of France?",
    "How many species of birds live in the Amazon rainforest today?",
    "Who wrote Hamlet?",
]
# Our task for each architecture, and the `transformers` class that computes the same outputs.
REFERENCE = {
    "GPT2Model": ("lm", "GPT2LMHeadModel"),
    "GPT2LMHeadModel": ("lm", "GPT2LMHeadModel"),
    "GPTNeoXForCausalLM": ("lm", "GPTNeoXForCausalLM"),
    "BertModel": ("backbone", "BertModel"),
    "BertForMaskedLM": ("lm", "BertForMaskedLM"),
    "BertForPreTraining": ("lm", "BertForMaskedLM"),
    "BertForSequenceClassification": ("classification", "BertForSequenceClassification"),
    "MegatronBertModel": ("backbone", "MegatronBertModel"),
    "MegatronBertForMaskedLM": ("lm", "MegatronBertForMaskedLM"),
}


def sample_batch(path: str | os.PathLike, texts: list[str] | None = None) -> tuple[Tensor, Tensor]:
    """(input_ids, attention_mask) right-padded, for `compare_with_transformers`.

    Uses the checkpoint's tokenizer when it has one (BERT inputs get [CLS] ... [SEP]); otherwise
    random ids from a fixed seed. attention_mask is HF's convention: 1 = real token, 0 = padding.
    """
    hf_config, _ = read_hf_checkpoint(path)
    config = config_from_hf(hf_config)
    if any((Path(path) / name).is_file() for name in ("tokenizer.json", "vocab.txt")):
        tokenizer = load_tokenizer(path)
        rows = tokenizer.encode_batch(texts or SAMPLE_TEXTS)
        if hf_config["model_type"] in BERT_TYPES:
            rows = [[tokenizer.cls_id, *row, tokenizer.sep_id] for row in rows]
        pad = tokenizer.special_ids.get("pad", 0)
    else:
        generator = torch.Generator().manual_seed(0)
        lengths = [min(12, config.num_max_positions) - k for k in (0, 5, 2)]
        rows = [torch.randint(config.vocab_size, (max(n, 1),), generator=generator).tolist() for n in lengths]
        pad = 0
    rows = [row[: config.num_max_positions] for row in rows]
    width = max(len(row) for row in rows)
    input_ids = torch.tensor([row + [pad] * (width - len(row)) for row in rows])  # (B, T)
    attention_mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])  # (B, T)
    return input_ids, attention_mask


@torch.no_grad()
def compare_with_transformers(
    path: str | os.PathLike,
    input_ids: Tensor | None = None,
    attention_mask: Tensor | None = None,
    token_type_ids: Tensor | None = None,
) -> list[tuple[str, float]]:
    """Max |ours − transformers| per layer (embeddings, layer 1..N) and for the head's logits.

    Both models run in eval mode and fp32; only real (non-padded) positions are compared, since the two
    implementations treat padded queries differently (their outputs there are never used).
    """
    import transformers

    hf_config, hf_state = read_hf_checkpoint(path)
    task, reference_class = REFERENCE[architecture(hf_config, hf_state)]
    if input_ids is None:
        input_ids, attention_mask = sample_batch(path)
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    real = attention_mask.bool()  # (B, T)
    reference = (
        getattr(transformers, reference_class).from_pretrained(path, attn_implementation="eager").eval()
    )
    theirs = reference(
        input_ids=input_ids,
        attention_mask=attention_mask,
        token_type_ids=token_type_ids,
        output_hidden_states=True,
    )

    model = from_hf(path, task=task)
    backbone = model if task == "backbone" else model.transformer
    ours = backbone(input_ids, padding_mask=~real, token_type_ids=token_type_ids, output_hidden_states=True)
    states = list(ours.hidden_states)
    states[-1] = ours.last_hidden_state  # transformers reports the top layer after any final norm

    def diff(a: Tensor, b: Tensor) -> float:
        return float((a - b).abs()[real].max())

    rows = [("embeddings", diff(states[0], theirs.hidden_states[0]))]
    rows += [(f"layer {i}", diff(states[i], theirs.hidden_states[i])) for i in range(1, len(states))]
    if task == "lm":
        rows.append(("lm logits", diff(model.lm_head(ours.last_hidden_state), theirs.logits)))
    elif task == "classification":
        first = torch.zeros_like(real)
        first[:, 0] = True  # BERT classifies on [CLS], the first token
        logits = model(input_ids, first, padding_mask=~real, token_type_ids=token_type_ids)
        rows.append(("classifier logits", float((logits - theirs.logits).abs().max())))
    return rows


def format_table(rows: list[tuple[str, float]]) -> str:
    """The comparison as a two-column text table."""
    lines = [f"{'output':<20}{'max |ours - transformers|':>28}"]
    lines += [f"{name:<20}{value:>28.3e}" for name, value in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Command line: `python -m minitransformer hf compare PATH`, `... convert PATH OUT`, `... export RUN OUT`
# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """`python -m minitransformer hf compare PATH`, `... convert PATH OUT`, `... export RUN OUT`."""
    parser = argparse.ArgumentParser(
        prog="python -m minitransformer hf", description="Hugging Face interop for minitransformer."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser("compare", help="per-layer max difference with transformers (needs it)")
    compare.add_argument("path", help="a local GPT-2, GPT-NeoX or BERT checkpoint directory")
    compare.add_argument("--text", action="append", help="a sentence to run (repeatable); default: samples")
    compare.add_argument("--tol", type=float, default=1e-4, help="exit 1 if any difference exceeds this")
    conv = commands.add_parser("convert", help="write a HF checkpoint in minitransformer's format")
    conv.add_argument("path", help="a local GPT-2, GPT-NeoX or BERT checkpoint directory")
    conv.add_argument("out_dir", help="the output model directory")
    conv.add_argument("--task", choices=("lm", "classification"), default="lm")
    conv.add_argument("--num-classes", type=int, help="classes of a new classifier (task=classification)")
    conv.add_argument("--overwrite", action="store_true", help="replace a run or model already in OUT")
    exp = commands.add_parser("export", help="write a model folder of ours as a transformers checkpoint")
    exp.add_argument(
        "run", help="a model folder (a pretrain run): config.json, model.safetensors, tokenizer.json"
    )
    exp.add_argument(
        "out_dir", help="a new folder for the checkpoint (GPT-2, GPT-NeoX, BERT or Megatron-BERT)"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "export":
            print(f"wrote {export(args.run, args.out_dir)}")
            return 0
        if args.command == "convert":
            out = convert(args.path, args.out_dir, args.task, args.overwrite, num_classes=args.num_classes)
            print(f"wrote {out} (classification token: {clf_position(out)})")
            return 0
        input_ids, attention_mask = sample_batch(args.path, args.text)
        rows = compare_with_transformers(args.path, input_ids, attention_mask)
    except ImportError as e:
        print(f"error: {e}; compare needs transformers: pip install 'minitransformer[hf]'", file=sys.stderr)
        return 2
    except USER_ERRORS as e:
        print(f"error: {mask_urls(str(e))}", file=sys.stderr)
        return 2
    print(format_table(rows))
    worst = max(value for _, value in rows)
    print(
        f"max difference {worst:.3e} on {int(attention_mask.sum())} real tokens: "
        f"{'OK' if worst <= args.tol else 'MISMATCH'} (tolerance {args.tol:g})"
    )
    return 0 if worst <= args.tol else 1


if __name__ == "__main__":  # `python -m minitransformer.interop.hf ...` works too
    sys.exit(main())
