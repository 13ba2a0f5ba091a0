"""Which parameters get weight decay: nanoGPT's rule, spelled out.

Matrices of linear maps decay; biases and LayerNorm weights (1-D tensors) do not, and neither do
embeddings unless asked (decaying rare tokens' rows toward zero only hurts them). Every trainable
parameter lands in exactly one group, which `check_groups_cover` asserts.
"""

from __future__ import annotations

from torch import nn


def decays(name: str, param: nn.Parameter, decay_embeddings: bool = False) -> bool:
    """True if `param` (named `name` in the model) should receive weight decay."""
    if param.dim() < 2:  # biases, LayerNorm weights, per-layer pooling weights
        return False
    return decay_embeddings or "embeddings" not in name


def parameter_groups(model: nn.Module, weight_decay: float, decay_embeddings: bool = False) -> list[dict]:
    """Two optimizer groups, "decay" and "no_decay", over the trainable parameters of `model`."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (decay if decays(name, param, decay_embeddings) else no_decay).append(param)
    groups = [
        {"name": "decay", "params": decay, "weight_decay": weight_decay},
        {"name": "no_decay", "params": no_decay, "weight_decay": 0.0},
    ]
    check_groups_cover(model, groups)
    return groups


def check_groups_cover(model: nn.Module, groups: list[dict]) -> None:
    """Raise if a trainable parameter is in no group or in two (e.g. a forgotten final LayerNorm)."""
    seen: dict[int, int] = {}
    for group in groups:
        for p in group["params"]:
            seen[id(p)] = seen.get(id(p), 0) + 1
    problems = [
        f"{name} ({'missing' if id(p) not in seen else 'in several groups'})"
        for name, p in model.named_parameters()
        if p.requires_grad and seen.get(id(p)) != 1
    ]
    if problems:
        raise ValueError(f"optimizer groups must hold every trainable parameter exactly once: {problems}")
