"""The mathematics of the fine-tuning stability techniques, each checked against its formula."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from ignite.engine import Engine, Events
from ignite.handlers.param_scheduler import PiecewiseLinear
from torch import nn

from minitransformer import FineTuningConfig, TransformerWithClfHead
from minitransformer.presets import HANDS_ON_LR
from minitransformer.training.optimizers import BertAdam, make_optimizer, parameter_groups
from minitransformer.training.stability import (
    Mixout,
    apply_mixout,
    attach_prior_wd,
    attach_swa,
    llrd_parameter_groups,
    reinit_top_layers,
    remove_mixout,
    track_group_learning_rates,
)


def classifier(config, **ft) -> TransformerWithClfHead:
    return TransformerWithClfHead(config, FineTuningConfig(num_classes=3, **ft))


def batch(n: int = 4, length: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token ids, a classification mask marking the last token, and labels."""
    x = torch.randint(0, 50, (n, length))
    clf_mask = torch.zeros(n, length, dtype=torch.bool)
    clf_mask[:, -1] = True
    return x, clf_mask, torch.randint(0, 3, (n,))


@torch.no_grad()
def pretend_pretrained(model: nn.Module) -> None:
    """Move every parameter away from its init (LayerNorm 1/0, zero biases) so re-init is visible."""
    for p in model.parameters():
        p.add_(torch.randn_like(p) * 0.5)


# -- BertAdam ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bias_correction", [True, False])
def test_first_adam_step_matches_the_formula(bias_correction):
    lr, wd, eps, (b1, b2) = 0.1, 0.01, 1e-6, (0.9, 0.999)
    w0, g = torch.randn(5), torch.randn(5)
    w = nn.Parameter(w0.clone())
    optimizer = BertAdam(
        [w], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, bias_correction=bias_correction
    )
    w.grad = g.clone()
    optimizer.step()
    m, v = (1 - b1) * g, (1 - b2) * g**2  # t = 1, from zero moments
    if bias_correction:
        m, v = m / (1 - b1), v / (1 - b2)  # m̂ = g, v̂ = g²: the step is ≈ lr·sign(g)
    expected = w0 * (1 - lr * wd) - lr * m / (v.sqrt() + eps)
    torch.testing.assert_close(w.detach(), expected)
    if not bias_correction:  # the uncorrected first step is (1-β1)/√(1-β2) ≈ 3.16 times larger
        assert torch.allclose(
            (w0 * (1 - lr * wd) - w.detach()).abs(), torch.full((5,), 3.1623 * lr), atol=1e-3
        )


def test_bertadam_with_bias_correction_equals_torch_adamw():
    """So `--optimizer bertadam` differs from `--optimizer adamw` (PyTorch's AdamW) in bias correction only."""
    params = [nn.Parameter(torch.randn(4, 3)), nn.Parameter(torch.randn(3))]
    ours = BertAdam([{"params": params, "weight_decay": 0.1}], lr=0.01, bias_correction=True)
    reference_params = [nn.Parameter(p.detach().clone()) for p in params]
    reference = make_optimizer([{"params": reference_params, "weight_decay": 0.1}], "adamw", lr=0.01)
    assert isinstance(reference, torch.optim.AdamW) and reference.defaults["eps"] == ours.defaults["eps"]
    for _ in range(5):
        grads = [torch.randn_like(p) for p in params]
        for p, q, g in zip(params, reference_params, grads):
            p.grad, q.grad = g.clone(), g.clone()
        ours.step()
        reference.step()
    for p, q in zip(params, reference_params):
        torch.testing.assert_close(p, q)
    assert not make_optimizer([{"params": params}], "bertadam", lr=HANDS_ON_LR).param_groups[0][
        "bias_correction"
    ]


def test_unknown_optimizer_name_is_an_error():
    with pytest.raises(ValueError, match="'sgd' is not one of"):
        make_optimizer([{"params": [nn.Parameter(torch.zeros(1))]}], "sgd", lr=HANDS_ON_LR)


# -- re-initialisation ---------------------------------------------------------------------------


def test_reinit_changes_the_top_layers_and_head_only(tiny_config):
    config = dataclasses.replace(tiny_config, num_layers=3, final_layer_norm=True, norm_placement="pre")
    model = classifier(config, pooler=True)
    pretend_pretrained(model)
    kept = [model.transformer.blocks[0]] + model.transformer.embedding_modules()
    renewed = [*model.transformer.blocks[1:], *model.head_modules()]
    before = {p: p.detach().clone() for p in model.parameters()}
    reinit_top_layers(model, 2)
    assert all(torch.equal(p, before[p]) for m in kept for p in m.parameters())  # bit-identical
    changed = [not torch.equal(p, before[p]) for m in renewed for p in m.parameters()]
    assert len(changed) > 20 and all(changed)
    attention = model.transformer.blocks[2].attention
    assert attention.in_proj_weight.std().item() == pytest.approx(0.02, rel=0.25)  # N(0, 0.02) again
    assert torch.all(attention.in_proj_bias == 0)
    assert torch.all(model.transformer.blocks[1].layer_norm_1.weight == 1)
    assert model.lm_head.decoder.weight is model.transformer.tokens_embeddings.weight


@pytest.mark.parametrize("k", [-1, 3])
def test_reinit_rejects_a_layer_count_out_of_range(tiny_config, k):
    with pytest.raises(ValueError, match=f"k={k} must be between 0 and the model's 2 layers"):
        reinit_top_layers(classifier(tiny_config), k)


# -- weighted layer pooling ----------------------------------------------------------------------


@pytest.mark.parametrize("placement", ["pre", "post"])
def test_weighted_pooling_is_the_weighted_mean_of_layer_states(tiny_config, placement):
    config = dataclasses.replace(tiny_config, norm_placement=placement, final_layer_norm=placement == "pre")
    model = classifier(config, pooling="weighted", pooling_layer_start=1).eval()
    with torch.no_grad():
        model.pooler.layer_weights.copy_(torch.tensor([0.3, 2.0]))
    x, clf_mask, _ = batch()
    states = model.transformer(x, output_hidden_states=True).hidden_states[1:]  # layers 1 and 2
    if placement == "pre":  # the final norm applies to every pooled layer, as it does to the top one
        states = [model.transformer.final_layer_norm(h) for h in states]
    pooled = (0.3 * states[0][:, -1] + 2.0 * states[1][:, -1]) / 2.3  # Σ w_l·h_l / Σ w_l
    torch.testing.assert_close(model(x, clf_mask), model.classification_head(pooled))


def test_weighted_pooling_weights_are_trained(tiny_config):
    model = classifier(tiny_config, pooling="weighted")
    x, clf_mask, labels = batch()
    model(x, clf_mask, labels)[1].backward()
    grad = model.pooler.layer_weights.grad
    assert grad is not None and grad.abs().sum() > 0
    weights = model.pooler.layer_weights
    assert any(p is weights for p in parameter_groups(model, 0.01)[1]["params"])
    groups = llrd_parameter_groups(model, 1e-3, 0.9, 0.01)
    assert [g["name"] for g in groups if any(p is weights for p in g["params"])] == ["head/no_decay"]
    assert (
        classifier(tiny_config, pooling="weighted", pooling_layer_start=1).pooler.layer_weights.numel() == 2
    )


# -- layer-wise learning-rate decay --------------------------------------------------------------


def test_llrd_learning_rates_by_group(tiny_config):
    model = classifier(tiny_config, pooler=True)
    groups = llrd_parameter_groups(model, lr=1.0, decay=0.5, weight_decay=0.01)
    lrs = {g["name"]: g["lr"] for g in groups}
    assert lrs == {
        "head": 1.0,
        "head/no_decay": 1.0,
        "layer_1": 0.5,
        "layer_1/no_decay": 0.5,
        "layer_0": 0.25,
        "layer_0/no_decay": 0.25,
        "embeddings/no_decay": 0.125,  # embeddings do not decay by default: no decay group
    }
    assert [g["name"] for g in groups][0] == "head" and groups[-1]["name"] == "embeddings/no_decay"
    assert all(g["weight_decay"] == (0.0 if g["name"].endswith("no_decay") else 0.01) for g in groups)
    embeddings = model.transformer.tokens_embeddings.weight  # = the tied LM decoder, in one group only
    assert [g["name"] for g in groups if any(p is embeddings for p in g["params"])] == ["embeddings/no_decay"]
    in_proj = model.transformer.blocks[1].attention.in_proj_weight
    assert any(p is in_proj for p in groups[2]["params"])


def test_llrd_without_decay_partitions_like_parameter_groups(tiny_config):
    model = classifier(tiny_config)
    plain = {g["name"]: {id(p) for p in g["params"]} for g in parameter_groups(model, 0.01)}
    llrd = llrd_parameter_groups(model, lr=1e-3, decay=1.0, weight_decay=0.01)
    for kind in ("decay", "no_decay"):
        mine = {
            id(p) for g in llrd if g["name"].endswith("no_decay") == (kind == "no_decay") for p in g["params"]
        }
        assert mine == plain[kind]
    assert {g["lr"] for g in llrd} == {1e-3}


def test_llrd_refuses_a_parameter_outside_every_group(tiny_config):
    model = classifier(tiny_config)
    model.extra_scale = nn.Parameter(torch.ones(3))  # belongs to no layer, no embedding, no head
    with pytest.raises(ValueError, match=r"extra_scale \(missing\)"):
        llrd_parameter_groups(model, lr=1e-3, decay=0.9, weight_decay=0.0)
    with pytest.raises(ValueError, match="must be in"):
        llrd_parameter_groups(classifier(tiny_config), lr=1e-3, decay=1.5, weight_decay=0.0)


def test_group_learning_rates_are_tracked_per_block(tiny_config):
    model = classifier(tiny_config)
    optimizer = make_optimizer(
        llrd_parameter_groups(model, lr=1.0, decay=0.5, weight_decay=0.0), lr=HANDS_ON_LR
    )
    trainer = Engine(lambda engine, b: None)
    history = track_group_learning_rates(trainer, optimizer)
    trainer.run(range(3), max_epochs=1)
    assert history == {
        "head": [1.0] * 3,
        "layer_1": [0.5] * 3,
        "layer_0": [0.25] * 3,
        "embeddings": [0.125] * 3,
    }


# -- Mixout --------------------------------------------------------------------------------------


def test_mixout_expectation_is_the_current_weight():
    current, pretrained, p = torch.randn(4, 6), torch.randn(4, 6), 0.7
    mixout = Mixout(pretrained, p)
    mean = torch.stack([mixout(current) for _ in range(20000)]).mean(0)
    torch.testing.assert_close(mean, current, rtol=0, atol=0.05)  # 20000 draws: σ ≈ 0.011
    assert torch.equal(mixout.eval()(current), current)


def test_mixout_replaces_whole_columns_that_pass_no_gradient(tiny_config):
    model = classifier(tiny_config)
    apply_mixout(model, 0.5)
    attention = model.transformer.blocks[0].attention
    target = attention.mixout.target
    current = dict(attention.named_parameters())["in_proj_weight"]  # the parameter itself
    with torch.no_grad():
        current.add_(1.0)  # as if training had moved it away from the target
    mixed = attention.in_proj_weight  # what forward uses: (3E, E)
    replaced = (mixed == target).all(dim=0)  # per input column
    assert 0 < int(replaced.sum()) < mixed.size(1)
    torch.testing.assert_close(mixed[:, ~replaced], (current - 0.5 * target)[:, ~replaced] / 0.5)
    upstream = torch.randn_like(mixed)
    (mixed * upstream).sum().backward()
    assert torch.all(current.grad[:, replaced] == 0)
    torch.testing.assert_close(current.grad[:, ~replaced], upstream[:, ~replaced] / 0.5)


def test_mixout_is_identity_in_eval_and_keeps_checkpoints(tiny_config, tmp_path):
    model = classifier(tiny_config)
    plain = copy.deepcopy(model).eval()
    keys = list(model.state_dict())
    apply_mixout(model, 0.7)
    x, clf_mask, _ = batch()
    assert not torch.equal(model.train()(x, clf_mask), model(x, clf_mask))  # a fresh mask per call
    torch.testing.assert_close(model.eval()(x, clf_mask), plain(x, clf_mask), rtol=0, atol=0)
    assert list(model.state_dict()) == keys  # targets are not saved, names did not change
    assert model.transformer.dropout.p == 0 and model.transformer.blocks[1].attention.dropout == 0
    assert model.to(torch.float64).transformer.blocks[0].feed_forward[2].mixout.target.dtype == torch.float64
    model.to(torch.float32).save_pretrained(tmp_path)
    reloaded = TransformerWithClfHead.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(reloaded(x, clf_mask), plain(x, clf_mask), rtol=0, atol=0)
    remove_mixout(model)
    assert type(model.transformer.blocks[0].attention).__name__ == "MultiHeadSelfAttention"
    assert not hasattr(model.transformer.blocks[0].feed_forward[0], "mixout")
    with pytest.raises(ValueError, match="mixout p=1.0 must be in"):
        apply_mixout(model, 1.0)


# -- PriorWD -------------------------------------------------------------------------------------


def test_prior_wd_decays_toward_the_pretrained_weights(tiny_config):
    model = classifier(tiny_config)
    groups = llrd_parameter_groups(model, lr=0.1, decay=0.5, weight_decay=0.0)
    optimizer = torch.optim.SGD(groups, lr=0.1)
    attach_prior_wd(optimizer, model, lam=0.3)
    pretrained = model.transformer.blocks[1].feed_forward[0].weight.detach().clone()
    pretend_pretrained(model)  # as if training had moved every weight
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # SGD moves nothing: only the decay acts
    optimizer.step()
    weights = dict(model.named_parameters())
    w = before["transformer.blocks.1.feed_forward.0.weight"]  # top layer: lr·γ = 0.05
    torch.testing.assert_close(
        weights["transformer.blocks.1.feed_forward.0.weight"], w - 0.05 * 0.3 * (w - pretrained)
    )
    head = before["classification_head.weight"]  # new: no pretrained value, decays toward 0 at lr = 0.1
    torch.testing.assert_close(weights["classification_head.weight"], head * (1 - 0.1 * 0.3))
    for name in (
        "classification_head.bias",
        "transformer.blocks.0.layer_norm_1.weight",
        "transformer.tokens_embeddings.weight",
    ):
        assert torch.equal(weights[name], before[name]), name  # no weight decay for these


def test_prior_wd_refuses_to_stack_on_plain_weight_decay(tiny_config):
    model = classifier(tiny_config)
    optimizer = make_optimizer(parameter_groups(model, weight_decay=0.01), lr=HANDS_ON_LR)
    with pytest.raises(ValueError, match=r"groups \['decay'\] have weight_decay > 0"):
        attach_prior_wd(optimizer, model, lam=0.01)


# -- SWA -----------------------------------------------------------------------------------------


def test_swa_averages_the_epoch_end_weights_with_its_own_schedule(tiny_config, tmp_path):
    model = classifier(tiny_config)
    optimizer = torch.optim.SGD(llrd_parameter_groups(model, lr=0.1, decay=0.5, weight_decay=0.0))
    x, clf_mask, labels = batch()

    def step(engine, _):
        optimizer.zero_grad()
        model.train()(x, clf_mask, labels)[1].backward()
        optimizer.step()

    trainer = Engine(step)
    schedule = PiecewiseLinear(optimizer, "lr", [(0, 0.1), (6, 0.0)])  # one lr for all: fine before SWA
    trainer.add_event_handler(Events.ITERATION_STARTED, schedule)
    snapshots = []
    trainer.add_event_handler(
        Events.EPOCH_COMPLETED, lambda _: snapshots.append([p.detach().clone() for p in model.parameters()])
    )
    swa_model = attach_swa(trainer, model, optimizer, start_epoch=2, swa_lr=0.01, lr_scheduler=schedule)
    trainer.run(range(2), max_epochs=3)

    assert int(swa_model.n_averaged) == 2
    for averaged, second, third in zip(swa_model.module.parameters(), snapshots[1], snapshots[2]):
        torch.testing.assert_close(averaged, (second + third) / 2)
    assert not trainer.has_event_handler(schedule, Events.ITERATION_STARTED)
    assert [g["lr"] for g in optimizer.param_groups][:3] == pytest.approx([0.01, 0.01, 0.005])  # ratios kept
    averaged = swa_model.module
    assert averaged.lm_head.decoder.weight is averaged.transformer.tokens_embeddings.weight
    averaged.save_pretrained(tmp_path)
    reloaded = TransformerWithClfHead.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(reloaded(x, clf_mask), averaged.eval()(x, clf_mask))


def test_swa_averages_a_run_that_stops_mid_epoch():
    from ignite.engine import Engine

    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def step(engine, batch):
        with torch.no_grad():
            model.weight.add_(1.0)  # a visible change per iteration

    trainer = Engine(step)
    swa = attach_swa(trainer, model, optimizer, start_epoch=1, swa_lr=0.01)
    trainer.run([0] * 4, max_iters=6, epoch_length=4)  # epoch 1 complete, epoch 2 stops after 2 of 4
    assert int(swa.n_averaged) == 2  # end of epoch 1, and the partial epoch 2
    torch.testing.assert_close(swa.module.weight, (model.weight - 2.0 + model.weight) / 2)
