"""What every architecture's translation (GPT-2 and BERT in `hf`, GPT-NeoX in `neox`) is built from.

- Key maps: one list of (our key, the HF key(s), transposed) per architecture, read forwards to import
  (`take`) and backwards to export (`give`), so the two directions cannot drift apart.
- Config fields: one table per architecture, our `TransformerConfig` field ↔ its config.json key, read
  by `read_fields` (import) and `write_fields` (export).
- Refusals: `refuse` and `activation_from_hf` for a checkpoint whose features we lack (import),
  `check_switches` for a model of ours that an architecture cannot compute (export). Both name the feature.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..config import TransformerConfig

# One entry of a key map: (our key, the HF key(s) concatenated along dim 0, HF stores it transposed).
KeyMap = list[tuple[str, tuple[str, ...], bool]]
# HF activation name → ours. GPT-2's "gelu_new" and "gelu_pytorch_tanh" are the tanh approximation.
HF_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}
# Ours → the name transformers' activation table (ACT2FN) knows it by (GPT-2 writes "gelu_new" instead).
HF_ACTIVATION_NAMES = {"gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh", "relu": "relu"}
# What GPT-2's and GPT-NeoX's architectures both fix (they differ in positions): a causal pre-norm LM with
# a final norm, biases, feed-forward sub-blocks and a plain output layer tied to the token embeddings.
CAUSAL_LM_SWITCHES = {
    "norm_placement": "pre",
    "final_layer_norm": True,
    "mlm": False,
    "attention_only": False,
    "embedding_layer_norm": False,
    "token_type_vocab_size": 0,
    "bias": True,
    "lm_head_transform": False,
    "lm_head_bias": False,
}


def read_fields(hf_config: dict, keys: dict[str, tuple[str, object]]) -> dict:
    """Our config fields from config.json by {our field: (HF key, transformers' default when absent)}."""
    return {ours: hf_config.get(theirs, default) for ours, (theirs, default) in keys.items()}


def write_fields(config: TransformerConfig, keys: dict[str, tuple[str, object]]) -> dict:
    """The same table read backwards: config.json entries {HF key: our value}."""
    return {theirs: getattr(config, ours) for ours, (theirs, _) in keys.items()}


def refuse(condition: bool, feature: str, fix: str = "") -> None:
    """Refuse the import of a checkpoint that uses `feature` (when `condition`), naming it."""
    if condition:
        raise ValueError(
            f"{feature} is not implemented by minitransformer; this checkpoint cannot be imported{fix}"
        )


def activation_from_hf(name: str) -> str:
    """Our name for a HF activation, or a refusal listing the ones we have."""
    refuse(name not in HF_ACTIVATIONS, f"activation {name!r}", f" (supported: {sorted(HF_ACTIVATIONS)})")
    return HF_ACTIVATIONS[name]


def check_switches(config: TransformerConfig, switches: dict, target: str) -> None:
    """Refuse an export to `target` naming every config switch that differs from what `target` fixes."""
    differing = [
        f"{name}={getattr(config, name)!r} ({target} has {value!r})"
        for name, value in switches.items()
        if getattr(config, name) != value
    ]
    if differing:
        raise ValueError(f"this model cannot be exported as {target}: {', '.join(differing)}")


def linear_keys(ours: str, theirs: str, transposed: bool = False) -> KeyMap:
    """weight + bias of one layer (LayerNorm and Linear alike)."""
    return [(f"{ours}.{p}", (f"{theirs}.{p}",), transposed and p == "weight") for p in ("weight", "bias")]


def take(state: dict[str, Tensor], key_map: KeyMap, source: object) -> dict[str, Tensor]:
    """Move the mapped tensors out of `state` (HF keys) into a new dict (our keys)."""
    missing = sorted({k for _, theirs, _ in key_map for k in theirs} - set(state))
    if missing:
        raise ValueError(
            f"{source}: the weights lack {missing[:6]}{' ...' if len(missing) > 6 else ''}; "
            "the checkpoint does not match its config.json"
        )
    ours = {}
    for key, theirs, transposed in key_map:
        value = torch.cat([state.pop(k) for k in theirs], dim=0)
        ours[key] = value.t().contiguous() if transposed else value
    return ours


def give(ours: dict[str, Tensor], key_map: KeyMap) -> dict[str, Tensor]:
    """The key map read backwards: our tensors under the HF keys (split, transposed back), on the CPU."""
    tensors = {}
    for key, theirs, transposed in key_map:
        value = ours[key].detach().cpu()
        for name, part in zip(theirs, value.chunk(len(theirs), dim=0)):
            tensors[name] = (part.t() if transposed else part).contiguous()
    return tensors


def check_tied(state: dict[str, Tensor], key: str, embeddings: Tensor, source: object) -> None:
    """Our LM decoder is the embedding matrix itself: a stored, different output matrix is refused."""
    if key in state and not torch.equal(state.pop(key), embeddings):
        raise ValueError(
            f"{source}: '{key}' differs from the token embeddings (tie_word_embeddings=false); "
            "untied output embeddings are not implemented by minitransformer"
        )
