"""The NAACL 2019 hands-on's own checkpoint (`model_checkpoint.pth`) loaded into our model.

The hands-on saved a plain state dict whose module names are ours, kept in one list per kind of module
(`attentions.0...`, `feed_forwards.0...`): `checkpoint.rename_legacy_keys` puts each layer's into its Block.
What the tensors do not record (heads, objective) comes from the caller or from its pickled args file,
read only when trusted.
"""

from __future__ import annotations

import dataclasses
import os

import torch
from torch import Tensor

from ..checkpoint import from_hands_on_state_dict, load_checkpoint_state
from ..config import FineTuningConfig, TransformerConfig
from ..model import TransformerWithClfHead, TransformerWithLMHead


def from_hands_on_checkpoint(
    pth: str | os.PathLike,
    args_file: str | os.PathLike | None = None,
    trust_pickle: bool = False,
    fine_tuning_config: FineTuningConfig | None = None,
    **config_values,
) -> TransformerWithLMHead | TransformerWithClfHead:
    """Load the NAACL hands-on's `model_checkpoint.pth` (its state dict) into our model.

    Shapes (vocabulary, sizes, layers, positions, adapters, classes) are read from the weights; what
    they do not record (num_heads, mlm, dropout...) comes from `config_values` or from the hands-on's
    args file (`model_training_args.bin`). That file is a pickle, which can run code when read: it is
    opened only with trust_pickle=True. A state dict with a `classification_head` gives a classifier.
    """
    try:
        raw = torch.load(pth, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"hands-on checkpoint not found: {pth}") from None
    state = from_hands_on_state_dict({k.removeprefix("module."): v for k, v in raw.items()})
    if "transformer.tokens_embeddings.weight" not in state:
        raise ValueError(f"{pth} is not a hands-on state dict: it has no tokens_embeddings.weight")

    values = {}
    if args_file is not None:
        if not trust_pickle:
            raise ValueError(
                f"{args_file} is a pickle and reading it can run arbitrary code: pass trust_pickle=True "
                "to from_hands_on_checkpoint if you trust it, or give the config values instead "
                "(e.g. num_heads=10, mlm=False)"
            )
        args = torch.load(args_file, map_location="cpu", weights_only=False)
        args = args if isinstance(args, dict) else vars(args)
        fields = {f.name for f in dataclasses.fields(TransformerConfig)}
        values = {k: v for k, v in TransformerConfig.current_names(args).items() if k in fields}
    values.update(config_values)
    missing = [name for name in ("num_heads", "mlm") if name not in values]
    if missing:
        raise ValueError(
            f"{pth}: the weights do not record {missing}; pass them, e.g. from_hands_on_checkpoint(pth, "
            "num_heads=10, mlm=False), or give the hands-on's args file with trust_pickle=True"
        )
    for name, value in _hands_on_shapes(state).items():
        if values.setdefault(name, value) != value:
            raise ValueError(f"{name}={values[name]} contradicts the weights, which have {name}={value}")
    config = TransformerConfig(**values)
    adapters_dim = (
        state["transformer.blocks.0.adapter_1.0.weight"].shape[0]
        if "transformer.blocks.0.adapter_1.0.weight" in state
        else 0
    )
    if "classification_head.weight" in state:
        ft = fine_tuning_config or FineTuningConfig(
            num_classes=state["classification_head.weight"].shape[0], adapters_dim=adapters_dim
        )
        model = TransformerWithClfHead(config, ft)
    else:
        model = TransformerWithLMHead(config)
    load_checkpoint_state(model, state, strict=True, source=pth)
    return model.eval()


def _hands_on_shapes(state: dict[str, Tensor]) -> dict[str, int]:
    """The config values a hands-on state dict records in its tensor shapes."""
    vocab, embed = state["transformer.tokens_embeddings.weight"].shape
    return {
        "vocab_size": vocab,
        "embed_dim": embed,
        "num_max_positions": state["transformer.position_embeddings.weight"].shape[0],
        "hidden_dim": state["transformer.blocks.0.feed_forward.0.weight"].shape[0],
        "num_layers": sum(k.endswith(".in_proj_weight") for k in state),
    }
