"""The optimizers both programs build, and which parameters get weight decay.

`make_optimizer`: PyTorch's AdamW (pretraining and fine-tuning), or BertAdam, the same update without
bias correction (the ablation of `--optimizer bertadam`).

Weight decay, minGPT's rule spelled out: matrices of linear maps decay; biases and LayerNorm weights
(1-D tensors) do not, and neither do embeddings unless asked (decaying rare tokens' rows toward zero
only hurts them; nanoGPT, by contrast, decays every tensor of 2 or more dimensions, embeddings
included: `--decay-embeddings`). Every trainable parameter lands in exactly one group, which
`check_groups_cover` asserts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import torch
from torch import nn
from torch.optim import Optimizer

from ..checkpoint import LEGACY_LAYER_LISTS

_BLOCK_PART = re.compile(r"(?:^|\.)blocks\.(\d+)\.(\w+)\.")  # transformer.blocks.3.attention.… → 3, attention


def decays(name: str, param: nn.Parameter, decay_embeddings: bool = False) -> bool:
    """True if `param` (named `name` in the model) should receive weight decay."""
    if param.dim() < 2:  # biases, LayerNorm weights, per-layer pooling weights
        return False
    return decay_embeddings or "embeddings" not in name


def in_state_order(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """`model.named_parameters()` in the order the optimizers list them: the blocks' parameters by part, as
    in the layout before `Block` (every layer's attention, then every layer's feed-forward, ...; see
    `checkpoint.LEGACY_LAYER_LISTS`). An optimizer's saved state is matched by position, and the gradient
    norm sums in this order: training states saved before `Block` resume, and a seed trains as it did."""
    parts = list(LEGACY_LAYER_LISTS.values())
    named = [(_BLOCK_PART.search(name), name, p) for name, p in model.named_parameters()]
    first = next((i for i, (m, _, _) in enumerate(named) if m), len(named))
    # sorted() is stable: within one part of one block, the registration order stays
    blocks = sorted(((m, n, p) for m, n, p in named if m), key=lambda t: (parts.index(t[0][2]), int(t[0][1])))
    others = [t for t in named if not t[0]]
    return [(n, p) for _, n, p in others[:first] + blocks + others[first:]]


def parameter_groups(model: nn.Module, weight_decay: float, decay_embeddings: bool = False) -> list[dict]:
    """Two optimizer groups, "decay" and "no_decay", over the trainable parameters of `model`."""
    decay, no_decay = [], []
    for name, param in in_state_order(model):
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


class BertAdam(Optimizer):
    """Adam with decoupled weight decay, by default *without* bias correction (BERT's optimizer).

    Per step t, with gradient g:  m = β1·m + (1-β1)·g,  v = β2·v + (1-β2)·g²,
        w ← w − lr·wd·w − lr·m̂/(√v̂ + eps)
    where m̂ = m, v̂ = v here (BertAdam), or m̂ = m/(1-β1^t), v̂ = v/(1-β2^t) with
    `bias_correction=True`, which is exactly AdamW. With β2 = 0.999 the uncorrected v is ~1000× too
    small in the first steps, so early updates are up to √(1/(1-β2))·(1-β1) ≈ 3× larger than Adam's:
    the instability the ablation measures.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        bias_correction: bool = False,
    ):
        if lr < 0 or eps <= 0 or weight_decay < 0:
            raise ValueError(f"need lr >= 0, eps > 0, weight_decay >= 0; got {lr=}, {eps=}, {weight_decay=}")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas={betas} must both lie in [0, 1)")
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, bias_correction=bias_correction
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr = group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                if group["bias_correction"]:
                    m_hat, v_hat = m / (1 - beta1 ** state["step"]), v / (1 - beta2 ** state["step"])
                else:
                    m_hat, v_hat = m, v
                p.mul_(1 - lr * group["weight_decay"])  # decoupled decay, on the weight before the step
                p.addcdiv_(m_hat, v_hat.sqrt().add_(group["eps"]), value=-lr)
        return loss


OPTIMIZERS = ("adamw", "bertadam")


def make_optimizer(
    groups: list[dict],
    name: str = "adamw",
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-6,
) -> Optimizer:
    """The optimizer for `--optimizer adamw|bertadam`: PyTorch's AdamW, or BertAdam, the same update
    without bias correction (`BertAdam(bias_correction=True)` equals AdamW: tested).

    `lr` is the default for groups that carry none (LLRD groups carry their own); each group's
    "weight_decay" is used as given (0 when absent). eps = 1e-6 is BERT's, for both, so that the ablation
    changes one thing only; pretraining uses the same AdamW with PyTorch's eps, 1e-8.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer {name!r} is not one of {OPTIMIZERS}")
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, weight_decay=0.0)
    return BertAdam(groups, lr=lr, betas=betas, eps=eps, bias_correction=False)


# `python -m pretrain --optimizer`: AdamW, or Muon for the hidden matrices with AdamW for the rest.
PRETRAIN_OPTIMIZERS = ("adamw", "muon")


def is_hidden_matrix(name: str, param: nn.Parameter) -> bool:
    """The 2-D weights inside the blocks (attention and feed-forward), which Muon can orthogonalise.

    Embeddings (and the LM head tied to them), norms and biases are not: Muon is for hidden layers.
    """
    return param.dim() == 2 and "embeddings" not in name and "lm_head" not in name


def muon_blocks(name: str, param: nn.Parameter) -> list[slice]:
    """The rows of `param` that Muon orthogonalises as separate matrices.

    A fused query/key/value projection (`in_proj_weight`, (3E, E)) is three matrices. Orthogonalised
    as one, its update is G·(GᵀG)^(-1/2) with GᵀG summed over the three blocks: the value gradient,
    much the largest while attention is still uniform, sets the scale, the query and key blocks
    barely move, and attention stays uniform (measured: docs/tiny_recipe.md). The speedrun splits them.
    """
    if name.endswith("in_proj_weight"):
        E = param.size(1)
        return [slice(0, E), slice(E, 2 * E), slice(2 * E, 3 * E)]  # q, k, v
    return [slice(None)]


class MuonWithAdamW(torch.optim.Optimizer):
    """Muon for the hidden matrices, AdamW for every other parameter, stepped together as one optimizer.

    The nanoGPT speedrun's split (Jordan et al., 2024): Muon orthogonalises each hidden matrix's
    momentum update with a Newton-Schulz iteration (query, key and value separately); embeddings, the
    tied head, norms and biases keep AdamW. `torch.optim.Muon(adjust_lr_fn="match_rms_adamw")` scales
    its step to AdamW's RMS, so one learning rate (and one schedule) drives both. `param_groups` lists
    the Muon group (the model's parameters; its lr and weight decay are handed to Muon at each step),
    then AdamW's, so Ignite's schedulers, gradient clipping and checkpointing see one optimizer.
    """

    def __init__(self, model: nn.Module, lr: float, weight_decay: float, decay_embeddings: bool = False):
        named = [(n, p) for n, p in in_state_order(model) if p.requires_grad and is_hidden_matrix(n, p)]
        hidden = [p for _, p in named]
        hidden_ids = {id(p) for p in hidden}
        # (view, parameter, rows): Muon steps views that share the parameter's storage (detach() makes
        # them leaves, so Muon's in-place update writes into the weights); their gradients are the rows
        self.matrices = [(p.detach()[rows], p, rows) for n, p in named for rows in muon_blocks(n, p)]
        groups = parameter_groups(model, weight_decay, decay_embeddings)  # the AdamW split, minus Muon's
        rest = [{**g, "params": [p for p in g["params"] if id(p) not in hidden_ids]} for g in groups]
        self.muon = torch.optim.Muon(
            [view for view, _, _ in self.matrices],
            lr=lr,
            weight_decay=weight_decay,
            adjust_lr_fn="match_rms_adamw",
        )
        self.adamw = torch.optim.AdamW(rest, lr=lr, eps=1e-8)
        muon_group = {"name": "muon", "params": hidden, "weight_decay": weight_decay}
        super().__init__([muon_group, *rest], {"lr": lr})
        self.param_groups = self.param_groups[:1] + self.adamw.param_groups  # AdamW's dicts, shared
        check_groups_cover(model, self.param_groups)

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        settings = self.param_groups[0]  # what the schedulers set
        self.muon.param_groups[0].update(lr=settings["lr"], weight_decay=settings["weight_decay"])
        for view, param, rows in self.matrices:
            view.grad = None if param.grad is None else param.grad[rows]
        self.muon.step()
        self.adamw.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)  # every parameter of the model, Muon's and AdamW's
        self.muon.zero_grad(set_to_none)  # the views' gradients (rows of the parameters')

    def state_dict(self) -> dict:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        saved = len(state_dict["muon"]["param_groups"][0]["params"])
        if saved != len(self.matrices):
            raise ValueError(
                f"this optimizer state holds {saved} Muon matrices, the model has {len(self.matrices)}: it was "
                "saved before q, k and v were orthogonalised apart (or for another model); start the run again"
            )
        self.muon.load_state_dict(state_dict["muon"])
        self.adamw.load_state_dict(state_dict["adamw"])
        self.param_groups = self.param_groups[:1] + self.adamw.param_groups
        self.param_groups[0]["lr"] = self.muon.param_groups[0]["lr"]  # as of the last step
