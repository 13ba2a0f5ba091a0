"""GPT-NeoX checkpoints in and out of our Transformer: the Hugging Face class for rotary causal LMs.

`hf` dispatches here by model type ("gpt_neox"): `from_hf` imports a GPTNeoXForCausalLM, `to_hf` and
`export` write our causal pre-norm models with rotary positions as one.

How GPT-NeoX maps onto `TransformerConfig`: rotary=True (no position table), norm_placement="pre" with a
final norm, causal, biases, the output layer tied to the token embeddings. transformers' rotary is ours:
rotate-half pairs (x_i, x_{i+hs/2}) turned by p · base^(-2i/hs), scores scaled by 1/√hs. Two things differ:
- The fused `query_key_value` projection (3E, E) groups its rows by head, [nh, 3, hs] (head 0's q, k, v,
  then head 1's, ...); our `in_proj_weight` groups them by role, [3, nh, hs] (every head's q, then k,
  then v). `regroup_qkv` reorders the rows both ways; everything else maps one to one (`nn.Linear`s).
- Refused by name (the import would compute something else): `use_parallel_residual=true` (attention and
  feed-forward side by side on the same input, Pythia's block; ours are sequential), rotary on part of
  each head (`rotary_pct` < 1, Pythia's 0.25), a rotary base other than ours (10000), scaled rotary
  positions (`rope_type` other than "default"), `attention_bias=false`, untied output embeddings.
"""

from __future__ import annotations

from torch import Tensor

from ..config import TransformerConfig
from ..model import ROTARY_BASE, TransformerWithLMHead
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

NEOX_ARCHITECTURES = ("GPTNeoXForCausalLM",)
NEOX_SWITCHES = {**CAUSAL_LM_SWITCHES, "rotary": True}  # what GPT-NeoX's sequential block fixes
# The untied output matrix: "embed_out" in checkpoints written before transformers 5, "lm_head" after.
HEAD_KEYS = ("embed_out.weight", "lm_head.weight")
# Buffers older checkpoints store beside the weights (causal mask, rotary frequencies): we rebuild them.
NEOX_BUFFERS = ("attention.bias", "attention.masked_bias", "rotary_emb.inv_freq")

# Our config field ← (GPT-NeoX's config.json key, its value when the key is absent: transformers' default).
NEOX_CONFIG_KEYS = {
    "embed_dim": ("hidden_size", 6144),
    "hidden_dim": ("intermediate_size", 24576),
    "num_max_positions": ("max_position_embeddings", 2048),
    "vocab_size": ("vocab_size", 50432),
    "num_heads": ("num_attention_heads", 64),
    "num_layers": ("num_hidden_layers", 44),
    "dropout": ("hidden_dropout", 0.0),
    "initializer_range": ("initializer_range", 0.02),
    "layer_norm_eps": ("layer_norm_eps", 1e-5),
}


def config_from_neox(c: dict) -> TransformerConfig:
    """Translate a GPT-NeoX config.json into a `TransformerConfig`, refusing features we lack.

    The rotary settings are read where each transformers version writes them: `rope_parameters` (5.x),
    `rope_scaling`, else `rotary_pct` / `rotary_emb_base` (4.x), with transformers' defaults (0.25, 10000).
    """
    rope = c.get("rope_parameters") or c.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    fraction = rope.get("partial_rotary_factor", c.get("rotary_pct", 0.25))
    base = rope.get("rope_theta", c.get("rope_theta", c.get("rotary_emb_base", ROTARY_BASE)))
    refuse(
        c.get("use_parallel_residual", True),
        "use_parallel_residual=true (attention and feed-forward side by side, Pythia's block)",
        "; minitransformer's blocks are sequential (use_parallel_residual=false)",
    )
    refuse(fraction != 1, f"rotary_pct={fraction} (rotary positions on part of each head)", " (needs 1.0)")
    refuse(
        base != ROTARY_BASE, f"rotary_emb_base={base}", f" (minitransformer's rotary base is {ROTARY_BASE})"
    )
    refuse(rope_type != "default", f"rope_type={rope_type!r} (scaled rotary positions)")
    refuse(c.get("attention_bias") is False, "attention_bias=false (attention without biases)")
    return TransformerConfig(
        **read_fields(c, NEOX_CONFIG_KEYS),
        activation=activation_from_hf(c.get("hidden_act", "gelu")),
        rotary=True,
        norm_placement="pre",
        final_layer_norm=True,
    )


def neox_key_map(num_layers: int, prefix: str = "gpt_neox.") -> KeyMap:
    """Our keys ↔ GPT-NeoX's; all `nn.Linear`, none transposed. The fused q/k/v rows need `regroup_qkv`."""
    keys: KeyMap = [("transformer.tokens_embeddings.weight", (prefix + "embed_in.weight",), False)]
    for i in range(num_layers):
        layer, block = f"{prefix}layers.{i}.", f"transformer.blocks.{i}."
        keys += linear_keys(block + "layer_norm_1", layer + "input_layernorm")
        keys += [
            (block + "attention.in_proj_weight", (layer + "attention.query_key_value.weight",), False),
            (block + "attention.in_proj_bias", (layer + "attention.query_key_value.bias",), False),
        ]
        keys += linear_keys(block + "attention.out_proj", layer + "attention.dense")
        keys += linear_keys(block + "layer_norm_2", layer + "post_attention_layernorm")
        keys += linear_keys(block + "feed_forward.0", layer + "mlp.dense_h_to_4h")
        keys += linear_keys(block + "feed_forward.2", layer + "mlp.dense_4h_to_h")
    return keys + linear_keys("transformer.final_layer_norm", prefix + "final_layer_norm")


def regroup_qkv(w: Tensor, groups: int, per_group: int) -> Tensor:
    """The rows of a fused q/k/v projection, (3E, E) or its bias (3E,), from [groups, per_group, hs]
    order to [per_group, groups, hs].

    GPT-NeoX's → ours: regroup_qkv(w, nh, 3) ([nh, 3, hs] → [3, nh, hs]); ours → GPT-NeoX's:
    regroup_qkv(w, 3, nh).
    """
    return w.unflatten(0, (groups, per_group, -1)).transpose(0, 1).flatten(0, 2)


def _fused_qkv_keys(num_layers: int) -> list[str]:
    """Our keys of every layer's fused q/k/v projection (weight and bias)."""
    return [
        f"transformer.blocks.{i}.attention.in_proj_{p}" for i in range(num_layers) for p in ("weight", "bias")
    ]


def state_from_neox(hf_config: dict, state: dict[str, Tensor], source: object) -> dict[str, Tensor]:
    """Move a GPTNeoXForCausalLM's weights out of `state` into our keys and row order.

    The output matrix, when stored, must equal the token embeddings (our head is tied to them); a config
    that says it is untied must store it.
    """
    shape = read_fields(hf_config, NEOX_CONFIG_KEYS)
    ours = take(state, neox_key_map(shape["num_layers"]), source)
    for key in _fused_qkv_keys(shape["num_layers"]):
        ours[key] = regroup_qkv(ours[key], shape["num_heads"], 3)
    heads = [key for key in HEAD_KEYS if key in state]
    if not heads and not hf_config.get("tie_word_embeddings", False):
        raise ValueError(
            f"{source}: tie_word_embeddings=false but the weights hold no output matrix "
            f"({' or '.join(HEAD_KEYS)}); the checkpoint does not match its config.json"
        )
    for key in heads:
        check_tied(state, key, ours["transformer.tokens_embeddings.weight"], source)
    return ours


def neox_checkpoint(model: TransformerWithLMHead) -> tuple[dict, dict[str, Tensor]]:
    """(config.json, weights) of our rotary causal LM as GPTNeoXForCausalLM, for transformers to load.

    Refuses, naming the switch, a model GPT-NeoX's block does not compute (`NEOX_SWITCHES`). The output
    layer is tied (`tie_word_embeddings`), so only the token embeddings are written.
    """
    config = model.config
    check_switches(config, NEOX_SWITCHES, "GPT-NeoX")
    ours = dict(model.state_dict())
    for key in _fused_qkv_keys(config.num_layers):
        ours[key] = regroup_qkv(ours[key], 3, config.num_heads)
    hf_config = {
        "model_type": "gpt_neox",
        "architectures": list(NEOX_ARCHITECTURES),
        **write_fields(config, NEOX_CONFIG_KEYS),
        "hidden_act": HF_ACTIVATION_NAMES[config.activation],
        "attention_dropout": config.dropout,
        "use_parallel_residual": False,  # GPT-2's sequential block: attention, then feed-forward
        "rotary_pct": 1.0,
        "rotary_emb_base": ROTARY_BASE,
        "attention_bias": True,
        "tie_word_embeddings": True,
        "bos_token_id": None,  # transformers' defaults (0 and 2) are tokens of our vocabulary
        "eos_token_id": None,
    }
    return hf_config, give(ours, neox_key_map(config.num_layers))
