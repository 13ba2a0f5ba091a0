"""Fine-tuning stability techniques for few-sample adaptation, written for our model's structure.

Each technique is independent and addresses the model by its parts (layers by index, embeddings,
head). Combining them is allowed but not always helpful: two regularisers toward the pretrained
weights (Mixout and PriorWD) pull in the same direction, and re-initialised layers are what the
others then treat as "pretrained". When combined, apply them in this order:

    1. load the pretrained weights           (TransformerWithClfHead.from_pretrained)
    2. reinit_top_layers(model, k)           before anything captures a reference
    3. apply_mixout(model, p)                captures the Mixout targets
    4. llrd_parameter_groups(...) or optimizers.parameter_groups(...), then optimizers.make_optimizer(...)
    5. attach_prior_wd(optimizer, model, λ)  captures the PriorWD reference
    6. the trainer and its LR schedule, then attach_swa(...) and track_group_learning_rates(...)

Weighted layer pooling lives in the model itself (`FineTuningConfig(pooling="weighted")`), and the
bias-correction ablation (BertAdam) is an optimizer: `optimizers.make_optimizer(groups, "bertadam", lr=...)`.
"""

from __future__ import annotations

import functools

import torch
from ignite.engine import Engine, Events
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.swa_utils import SWALR, AveragedModel
from torch.utils.hooks import RemovableHandle

from ..checkpoint import is_new_head_key
from ..model import init_module_weights
from .optimizers import check_groups_cover, decays

# ----------------------------------------------------------------------------------------------
# 1. Re-initialise the top k layers
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def reinit_top_layers(model: nn.Module, k: int) -> None:
    """Re-initialise layers L-k..L-1 and everything above them (final norm, LM transform, pooler, head).

    Uses the model's own scheme (`model.init_weights`): N(0, initializer_range) for every weight matrix,
    the fused attention projection included, zero biases, LayerNorm 1/0; the weighted-pooling weights go
    back to 1. The top layers of a pretrained LM are the most specialised to its pretraining task, so
    starting them afresh helps few-sample fine-tuning. k = 0 changes nothing. Call it right after loading
    the pretrained weights, before any other technique captures a reference.
    """
    num_layers = model.config.num_layers
    if not 0 <= k <= num_layers:
        raise ValueError(f"reinit_top_layers: k={k} must be between 0 and the model's {num_layers} layers")
    if k == 0:
        return
    std = model.config.initializer_range
    top_layers = list(model.transformer.blocks[num_layers - k :])
    for module in top_layers + model.head_modules():
        module.apply(functools.partial(init_module_weights, initializer_range=std))
    if hasattr(model, "classification_head"):  # again, with the fine-tuning range, as in its __init__
        init_module_weights(model.classification_head, model.fine_tuning_config.initializer_range)
    if getattr(model, "pooler", None) is not None and hasattr(model.pooler, "layer_weights"):
        model.pooler.layer_weights.fill_(1.0)  # equal weights: the plain average, as at construction


# ----------------------------------------------------------------------------------------------
# 2. Layer-wise learning-rate decay
# ----------------------------------------------------------------------------------------------


def block_parameters(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """The trainable parameters by block, top down: "head", "layer_{L-1}", ..., "layer_0", "embeddings".

    The head holds what sits above the last layer: the final norm, the LM head, the pooler with its
    layer weights and the classifier. The LM decoder's weight *is* the token-embedding matrix: it is
    listed once, with the embeddings.
    """
    transformer = model.transformer
    layers = [(f"layer_{i}", [block]) for i, block in enumerate(transformer.blocks)]
    bottom_up = [("embeddings", transformer.embedding_modules()), *layers]
    bottom_up.append(("head", model.head_modules() + [model.lm_head.decoder]))
    seen: set[int] = set()
    blocks = []
    for block, modules in bottom_up:  # bottom-up, so that the tied decoder weight meets the embeddings first
        params = []
        for p in (p for m in modules for p in m.parameters()):
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                params.append(p)
        blocks.append((block, params))
    return blocks[::-1]


def llrd_parameter_groups(
    model: nn.Module, lr: float, decay: float, weight_decay: float, decay_embeddings: bool = False
) -> list[dict]:
    """Optimizer groups with layer-wise learning-rate decay γ (Howard & Ruder's "discriminative" lrs).

    head: lr; top layer: lr·γ; layer i: lr·γ^(L-i); embeddings: lr·γ^(L+1). Lower layers hold more
    general features and should move less. Each block gets a decay group ("layer_3") and a no-decay group
    ("layer_3/no_decay"), split by `optimizers.decays`; empty groups are left out. With γ = 1 this is
    `optimizers.parameter_groups` cut into blocks. Every trainable parameter must land in exactly one group.
    """
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"LLRD decay γ={decay} must be in (0, 1] (e.g. 0.9; 1 = no decay)")
    names = {id(p): name for name, p in model.named_parameters()}
    groups = []
    for depth, (block, params) in enumerate(block_parameters(model)):
        block_lr = lr * decay**depth
        with_decay = [p for p in params if decays(names[id(p)], p, decay_embeddings)]
        without = [p for p in params if not decays(names[id(p)], p, decay_embeddings)]
        for suffix, ps, wd in (("", with_decay, weight_decay), ("/no_decay", without, 0.0)):
            if ps:
                groups.append({"name": block + suffix, "params": ps, "lr": block_lr, "weight_decay": wd})
    check_groups_cover(model, groups)
    return groups


def track_group_learning_rates(trainer: Engine, optimizer: Optimizer) -> dict[str, list[float]]:
    """Record each group's learning rate at every iteration, for `plots.plot_lr_per_group`.

    One entry per block (the "/no_decay" twin shares its block's lr), in the optimizer's group order.
    """
    history: dict[str, list[float]] = {}

    def record(_: Engine) -> None:
        current: dict[str, float] = {}
        for group in optimizer.param_groups:
            current.setdefault(group.get("name", "all").removesuffix("/no_decay"), group["lr"])
        for name, lr in current.items():
            history.setdefault(name, []).append(lr)

    trainer.add_event_handler(Events.ITERATION_COMPLETED, record)
    return history


# ----------------------------------------------------------------------------------------------
# 3. Mixout
# ----------------------------------------------------------------------------------------------


class Mixout(nn.Module):
    """mixout(u) = ((1-M)⊙u + M⊙w − p·w) / (1−p) in training, u in eval (Lee et al., 2020).

    u is the current weight, w the pretrained target, M a Bernoulli(p) mask with one draw per input
    column (M = 1: the whole column, every weight reading that input, goes back to its pretrained
    value). E[mixout(u)] = ((1-p)·u + p·w − p·w)/(1-p) = u, so eval needs no rescaling; replaced entries
    equal w exactly and pass no gradient. The target is a non-persistent buffer: it follows `.to()`
    and is not saved.
    """

    def __init__(self, target: Tensor, p: float):
        super().__init__()
        self.p = p
        self.register_buffer("target", target.detach().clone(), persistent=False)

    def forward(self, weight: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return weight
        # (1, in): one draw per input column, shared by every row (output) of the weight
        replaced = torch.rand(1, weight.size(1), device=weight.device) < self.p
        mixed = torch.where(replaced, self.target, weight)
        return (mixed - self.p * self.target) / (1 - self.p)


@functools.cache
def _with_mixout(cls: type[nn.Module], name: str) -> type[nn.Module]:
    """A subclass of `cls` whose attribute `name` reads as the mixed-out weight.

    A class property takes precedence over the parameter nn.Module stores in `_parameters[name]`, so
    `forward` (which reads `self.weight` or `self.in_proj_weight`) sees the mixed weight, while the
    parameter itself, its name and its state-dict key stay exactly where they were.
    """

    def mixed_weight(module: nn.Module) -> Tensor:
        return module.mixout(module._parameters[name])

    return type(f"Mixout{cls.__name__}", (cls,), {name: property(mixed_weight), "mixed_name": name})


def mixout_targets(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """Every linear map of the backbone's layers: fused q/k/v projection, attention output, feed-forward."""
    found = []
    for block in model.transformer.blocks:
        found.append((block.attention, "in_proj_weight"))
        linears = (block.attention.out_proj, *(block.feed_forward or ()))
        found += [(m, "weight") for m in linears if isinstance(m, nn.Linear)]
    return found


def apply_mixout(model: nn.Module, p: float) -> None:
    """Replace dropout by Mixout(p) toward the current (pretrained) weights in every backbone layer.

    Biases are not mixed; embeddings and the new head (no pretrained value) neither. Mixout takes the
    place of dropout (Lee et al.), so the backbone's dropout is set to 0: in our model that is the
    attention-probability dropout and the residual dropout (after attention and feed-forward) of every
    block, and the embedding dropout `transformer.dropout`. The classifier's own
    dropout stays. Parameter names and state-dict keys do not change, so checkpoints save and load as
    before; `remove_mixout` restores plain modules. In training mode `module.weight` reads a freshly
    mixed copy: to change a parameter in place, go through `named_parameters()` (or switch to eval).
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"mixout p={p} must be in [0, 1) (the probability of reverting a weight column)")
    for module, name in mixout_targets(model):
        if hasattr(module, "mixout"):
            raise ValueError(
                f"mixout is already applied to {type(module).__name__}; call remove_mixout first"
            )
        module.mixout = Mixout(getattr(module, name), p).train(module.training)
        module.__class__ = _with_mixout(type(module), name)
    model.transformer.dropout.p = 0.0
    for block in model.transformer.blocks:
        block.dropout.p = 0.0
        block.attention.dropout = 0.0


def remove_mixout(model: nn.Module) -> None:
    """Turn mixed-out modules back into plain ones (keeping the current weights; dropout stays 0)."""
    for module in model.modules():
        if hasattr(module, "mixed_name"):
            module.__class__ = module.__class__.__bases__[0]
            del module.mixout


# ----------------------------------------------------------------------------------------------
# 4. Weight decay toward the pretrained weights (PriorWD)
# ----------------------------------------------------------------------------------------------


def attach_prior_wd(optimizer: Optimizer, model: nn.Module, lam: float) -> RemovableHandle:
    """Before each step, w ← w − lr·λ·(w − w₀): weight decay toward the pretrained w₀ instead of 0.

    w₀ is captured now (call it after re-initialisation), for the parameters that take weight decay by
    `optim.decays`; the new head's (no pretrained value, `checkpoint.is_new_head_key`) decays toward 0.
    lr is the group's at that step, so schedules and LLRD apply. It replaces the optimizer's own decay:
    build the groups with weight_decay = 0. Returns the hook's handle (`.remove()` detaches it).
    """
    if lam < 0:
        raise ValueError(f"PriorWD λ={lam} must be >= 0")
    decayed = [g.get("name", i) for i, g in enumerate(optimizer.param_groups) if g["weight_decay"]]
    if decayed:
        raise ValueError(
            f"PriorWD replaces weight decay, but groups {decayed} have weight_decay > 0: "
            "build the optimizer groups with weight_decay=0 (or do not use --prior-wd)"
        )
    anchors: dict[int, Tensor | None] = {
        id(p): None if is_new_head_key(name) else p.detach().clone()
        for name, p in model.named_parameters()
        if p.requires_grad and decays(name, p)
    }

    @torch.no_grad()
    def decay_toward_anchors(opt: Optimizer, args, kwargs) -> None:
        for group in opt.param_groups:
            for p in group["params"]:
                if id(p) not in anchors:
                    continue
                anchor = anchors[id(p)]
                pull = p if anchor is None else p - anchor
                p.sub_(pull, alpha=group["lr"] * lam)

    return optimizer.register_step_pre_hook(decay_toward_anchors)


# ----------------------------------------------------------------------------------------------
# 5. Stochastic Weight Averaging
# ----------------------------------------------------------------------------------------------


def attach_swa(
    trainer: Engine,
    model: nn.Module,
    optimizer: Optimizer,
    start_epoch: int,
    swa_lr: float,
    anneal_steps: int = 0,
    lr_scheduler=None,
) -> AveragedModel:
    """Average the weights at the end of every epoch from `start_epoch` (1-based) on; returns the average.

    When epoch `start_epoch` starts, `lr_scheduler` (the run's Ignite schedule, if any) is detached and
    SWALR takes over, annealing each group's lr (cosine, over `anneal_steps` iterations) to
    swa_lr × (group lr / largest group lr at attach time): swa_lr is the head's, LLRD ratios survive.
    For fine-tuning use a small swa_lr (around the fine-tuning lr, e.g. 1e-5), not the image default 0.05.
    Our model has LayerNorm only, so no `update_bn` pass is needed. The average (`.module`, a deep copy
    that keeps the LM decoder tied) is the model to evaluate and `save_pretrained`.
    """
    if start_epoch < 1:
        raise ValueError(f"swa start_epoch={start_epoch} must be >= 1 (Ignite epochs count from 1)")
    if swa_lr <= 0:
        raise ValueError(f"swa_lr={swa_lr} must be > 0 (e.g. close to the fine-tuning lr, 1e-5)")
    swa_model = AveragedModel(model)
    top = max(group["lr"] for group in optimizer.param_groups) or 1.0
    swa_lrs = [swa_lr * group["lr"] / top for group in optimizer.param_groups]
    state: dict[str, SWALR] = {}

    def switch_schedule(engine: Engine) -> None:
        if lr_scheduler is not None:
            for event in (Events.ITERATION_STARTED, Events.ITERATION_COMPLETED, Events.EPOCH_STARTED):
                if engine.has_event_handler(lr_scheduler, event):
                    engine.remove_event_handler(lr_scheduler, event)
        state["swalr"] = SWALR(optimizer, swa_lr=swa_lrs, anneal_epochs=anneal_steps)

    def step_schedule(_: Engine) -> None:  # after the optimizer step: sets the next iteration's lr
        state["swalr"].step()

    def average(_: Engine) -> None:
        swa_model.update_parameters(model)

    def in_swa(engine: Engine, _: int) -> bool:
        return engine.state.epoch >= start_epoch

    trainer.add_event_handler(Events.EPOCH_STARTED(once=start_epoch), switch_schedule)
    trainer.add_event_handler(Events.ITERATION_COMPLETED(event_filter=in_swa), step_schedule)
    trainer.add_event_handler(Events.EPOCH_COMPLETED(event_filter=in_swa), average)

    def average_partial_epoch(engine: Engine) -> None:  # a run stopped mid-epoch (max_iters) ends here
        if engine.state.iteration % engine.state.epoch_length and in_swa(engine, 0):
            average(engine)

    trainer.add_event_handler(Events.COMPLETED, average_partial_epoch)
    return swa_model
