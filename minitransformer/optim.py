"""Which parameters get weight decay: nanoGPT's rule, spelled out.

Matrices of linear maps decay; biases and LayerNorm weights (1-D tensors) do not, and neither do
embeddings unless asked (decaying rare tokens' rows toward zero only hurts them). Every trainable
parameter lands in exactly one group, which `check_groups_cover` asserts.
"""

from __future__ import annotations

import torch
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


def is_hidden_matrix(name: str, param: nn.Parameter) -> bool:
    """The 2-D weights inside the blocks (attention and feed-forward), which Muon can orthogonalise.

    Embeddings (and the LM head tied to them), norms and biases are not: Muon is for hidden layers.
    """
    return param.dim() == 2 and "embeddings" not in name and "lm_head" not in name


class MuonWithAdamW(torch.optim.Optimizer):
    """Muon for the hidden matrices, AdamW for every other parameter, stepped together as one optimizer.

    The nanoGPT speedrun's split (Jordan et al., 2024): Muon orthogonalises each hidden matrix's
    momentum update with a Newton-Schulz iteration; embeddings, the tied head, norms and biases keep
    AdamW. `torch.optim.Muon(adjust_lr_fn="match_rms_adamw")` scales its step to AdamW's RMS, so one
    learning rate (and one schedule) drives both. `param_groups` lists Muon's groups, then AdamW's, so
    Ignite's per-group schedulers and checkpointing see one optimizer.
    """

    def __init__(self, model: nn.Module, lr: float, weight_decay: float, decay_embeddings: bool = False):
        hidden = [p for n, p in model.named_parameters() if p.requires_grad and is_hidden_matrix(n, p)]
        hidden_ids = {id(p) for p in hidden}
        rest = [(n, p) for n, p in model.named_parameters() if p.requires_grad and id(p) not in hidden_ids]
        decay = [p for n, p in rest if decays(n, p, decay_embeddings)]
        no_decay = [p for n, p in rest if not decays(n, p, decay_embeddings)]
        self.muon = torch.optim.Muon(
            [{"name": "muon", "params": hidden}], lr=lr, weight_decay=weight_decay,
            adjust_lr_fn="match_rms_adamw",
        )  # fmt: skip
        self.adamw = torch.optim.AdamW(
            [
                {"name": "decay", "params": decay, "weight_decay": weight_decay},
                {"name": "no_decay", "params": no_decay, "weight_decay": 0.0},
            ],
            lr=lr,
            eps=1e-8,
        )
        super().__init__([{"params": hidden}, {"params": decay}, {"params": no_decay}], {"lr": lr})
        self.param_groups = self.muon.param_groups + self.adamw.param_groups  # shared dicts
        check_groups_cover(model, self.param_groups)

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        self.muon.step()
        self.adamw.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none)
        self.adamw.zero_grad(set_to_none)

    def state_dict(self) -> dict:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.muon.load_state_dict(state_dict["muon"])
        self.adamw.load_state_dict(state_dict["adamw"])
        self.param_groups = self.muon.param_groups + self.adamw.param_groups
