"""`create_trainer`: accumulation, clipping and the reported gradient norm; the LR finder's clean-up."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from minitransformer import FineTuningConfig, TransformerWithClfHead, TransformerWithLMHead
from minitransformer.data.masking import mask_tokens
from minitransformer.training.engine import create_trainer, find_lr


def lm_loss(model, batch):
    return model(batch["input_ids"], labels=batch["labels"])[1]


def clf_loss(model, batch):
    return model(
        batch["input_ids"],
        batch["clf_tokens_mask"],
        clf_labels=batch["labels"],
        padding_mask=batch["padding_mask"],
    )[1]


def causal_case(config):
    x = torch.randint(4, config.num_embeddings, (3, 12))  # 3 rows: micro-batches of 2 and 1
    labels = x.clone()
    labels[:, 0] = -100  # nobody's next token
    labels[1, 7:] = -100  # and a padded tail
    return TransformerWithLMHead(config), lm_loss, {"input_ids": x, "labels": labels}, None


def mlm_case(config):
    config = dataclasses.replace(config, mlm=True)
    x = torch.randint(4, config.num_embeddings, (4, 12))

    def mask(batch):  # drawn after the step seeds the RNG, for the whole batch at once
        inputs, labels = mask_tokens(batch, config.num_embeddings, [0, 1, 2], 3, mlm_probability=0.3)
        return {"input_ids": inputs, "labels": labels}

    return TransformerWithLMHead(config), lm_loss, x, mask


def classification_case(config):
    lengths = torch.tensor([3, 12, 7])  # 3 questions padded to 12: micro-batches of 2 and 1
    x = torch.randint(4, config.num_embeddings, (3, 12))
    padding = torch.arange(12)[None, :] >= lengths[:, None]
    clf = torch.zeros_like(padding)
    clf[torch.arange(3), lengths - 1] = True  # the classification token ends each question
    batch = {
        "input_ids": x,
        "padding_mask": padding,
        "clf_tokens_mask": clf,
        "labels": torch.tensor([0, 2, 1]),
    }
    model = TransformerWithClfHead(config, FineTuningConfig(num_classes=3, dropout=0.0))
    return model, clf_loss, batch, None


def one_sgd_step(model, loss_fn, batch, prepare, accumulation_steps: int, max_norm=None):
    """The parameters after one plain-SGD step (lr 1: the change is minus the gradient) and the output."""
    model = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    trainer = create_trainer(
        model, optimizer, loss_fn, prepare, accumulation_steps=accumulation_steps, max_norm=max_norm
    )
    trainer.run([batch], max_epochs=1)
    return {k: v.detach().clone() for k, v in model.named_parameters()}, trainer.state.output


@pytest.mark.parametrize("case", [causal_case, mlm_case, classification_case])
def test_accumulating_two_micro_batches_equals_one_batch(case, tiny_config):
    """Micro-batches scoring unequal numbers of targets still give the big batch's gradient."""
    model, loss_fn, batch, prepare = case(dataclasses.replace(tiny_config, dropout=0.0))
    whole, out_whole = one_sgd_step(model, loss_fn, batch, prepare, accumulation_steps=1)
    split, out_split = one_sgd_step(model, loss_fn, batch, prepare, accumulation_steps=2)
    for name in whole:
        assert torch.allclose(whole[name], split[name], atol=1e-6, rtol=0), name
    assert out_split["loss"] == pytest.approx(out_whole["loss"], abs=1e-6)
    assert out_split["grad_norm"] == pytest.approx(out_whole["grad_norm"], rel=1e-5)


def test_clipping_scales_the_step_and_the_reported_norm_is_before_clipping(tiny_config):
    model, loss_fn, batch, _ = causal_case(dataclasses.replace(tiny_config, dropout=0.0))
    reference = copy.deepcopy(model)
    lm_loss(reference, batch).backward()
    norm = torch.cat([p.grad.flatten() for p in reference.parameters() if p.grad is not None]).norm().item()
    start = {k: v.detach().clone() for k, v in model.named_parameters()}

    for max_norm, expected_step in ((None, norm), (norm / 10, norm / 10)):
        after, out = one_sgd_step(model, loss_fn, batch, None, 1, max_norm)
        step = torch.cat([(after[k] - start[k]).flatten() for k in start]).norm().item()
        assert out["grad_norm"] == pytest.approx(norm, rel=1e-4)  # always the norm before clipping
        assert step == pytest.approx(expected_step, rel=1e-4)


def test_lr_finder_restores_the_weights_and_the_optimizer(tiny_config):
    torch.manual_seed(0)
    model, loss_fn, batch, _ = causal_case(tiny_config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    trainer = create_trainer(model, optimizer, loss_fn)
    try:
        lr = find_lr(trainer, model, optimizer, [batch] * 20, num_iter=20, start_lr=1e-5, end_lr=10.0)
    except ValueError:  # no descent to suggest on this toy batch: the restoring is what is tested
        lr = 1e-3
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert optimizer.param_groups[0]["lr"] == pytest.approx(lr) and not optimizer.state  # no moments left


def test_fp16_steps_are_unscaled_before_the_norm_and_the_update(tiny_config):
    """With fp16 autocast the GradScaler's factor (65536 at first) never reaches the norm or the weights."""
    model, loss_fn, batch, _ = causal_case(dataclasses.replace(tiny_config, dropout=0.0))
    fp32, out32 = one_sgd_step(model, loss_fn, batch, None, 1)
    fp16 = copy.deepcopy(model)
    optimizer = torch.optim.SGD(fp16.parameters(), lr=1.0)
    trainer = create_trainer(
        fp16, optimizer, loss_fn, max_norm=None, device=torch.device("cpu"), amp_dtype=torch.float16
    )
    trainer.run([batch], max_epochs=1)
    assert trainer.state.output["grad_norm"] == pytest.approx(out32["grad_norm"], rel=1e-3)
    assert trainer.state.output["loss"] == pytest.approx(out32["loss"], rel=1e-3)
    for name, p in fp16.named_parameters():
        assert torch.allclose(p, fp32[name], atol=1e-3), name
