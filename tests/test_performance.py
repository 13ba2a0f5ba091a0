"""Work the model and the trainer must not do: full-vocabulary MLM heads, device syncs, graph breaks."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from minitransformer import TransformerWithLMHead
from minitransformer.model import check_token_ids
from minitransformer.training.flops import flops_per_token, peak_flops


def bert_like(tiny_config):
    """A masked LM with BERT's head transform and output bias, so both go through the scored-only path."""
    return dataclasses.replace(tiny_config, mlm=True, lm_head_transform=True, lm_head_bias=True, dropout=0.0)


def test_mlm_head_on_scored_positions_gives_the_full_projection_loss_and_gradients(tiny_config):
    torch.manual_seed(0)
    model = TransformerWithLMHead(bert_like(tiny_config))
    x = torch.randint(0, 50, (3, 16))
    labels = torch.where(torch.rand(3, 16) < 0.15, x, torch.full_like(x, -100))
    labels[0, 0] = x[0, 0]  # at least one scored position

    logits, loss = model(x, labels=labels)
    assert logits.shape == (int((labels != -100).sum()), 50)  # only the scored rows were projected
    grads = torch.autograd.grad(loss, list(model.parameters()))

    full = model(x)  # (B, T, V): every position, as BertForMaskedLM computes it
    expected = F.cross_entropy(full.reshape(-1, 50), labels.reshape(-1), ignore_index=-100)
    expected_grads = torch.autograd.grad(expected, list(model.parameters()))
    torch.testing.assert_close(loss, expected, rtol=0, atol=1e-6)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_out_of_vocabulary_ids_are_refused_with_the_fix(tiny_config):
    model = TransformerWithLMHead(tiny_config)
    with pytest.raises(ValueError, match=r"token id 50 is outside the vocabulary \[0, 50\).*tokenizer"):
        model(torch.tensor([[1, 50]]))
    with pytest.raises(ValueError, match="token id -1"):
        check_token_ids(torch.tensor([[-1, 3]]), 50)
    check_token_ids(torch.tensor([[0, 49]]), 50)  # the whole range is fine


@pytest.mark.parametrize("mlm", [False, True])
def test_forward_compiles_without_graph_breaks(tiny_config, mlm):
    model = TransformerWithLMHead(dataclasses.replace(tiny_config, mlm=mlm)).eval()
    x = torch.randint(0, 50, (2, 8))
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.parametrize("mlm", [False, True])
def test_evaluator_nll_equals_the_full_logits_computation(tiny_config, mlm):
    from pretrain.run import create_lm_evaluator, lm_batch

    config = dataclasses.replace(tiny_config, mlm=mlm)
    model = TransformerWithLMHead(config).eval()
    tokenizer = SimpleNamespace(special_ids={"mask": 3, "pad": 0})
    prepare = lm_batch(config, tokenizer, mlm_probability=0.3)
    blocks = [torch.randint(4, 50, (3, 16)) for _ in range(3)]
    evaluator = create_lm_evaluator(model, prepare, torch.device("cpu"), None)
    nll = evaluator.run(blocks).metrics["nll"]

    generator = torch.Generator().manual_seed(1234)  # the evaluator's masks, drawn again
    total, count = 0.0, 0
    with torch.no_grad():
        for x in blocks:
            batch = prepare(x, generator)
            logits, labels = model(batch["input_ids"]), batch["labels"]
            if not mlm:  # the old evaluator's copy: position t predicts token t + 1
                logits, labels = logits[:, :-1], labels[:, 1:]
            total += float(F.cross_entropy(logits.reshape(-1, 50), labels.reshape(-1), reduction="sum"))
            count += int((labels != -100).sum())
    assert nll == pytest.approx(total / count, rel=1e-6)


# --- MFU -----------------------------------------------------------------------------------------


def test_flops_per_token_counts_matmul_weights_and_attention(tiny_config):
    E, H, L, V, T = 24, 40, 2, 50, 16
    weights = L * (4 * E * E + 2 * E * H) + E * V
    assert flops_per_token(tiny_config, T) == 6 * weights + 12 * L * T * E
    bert = bert_like(tiny_config)  # the head (with BERT's transform) on 15 % of the positions only
    assert flops_per_token(bert, T, 0.15) == round(
        6 * (weights - E * V + 0.15 * (E * V + E * E)) + 12 * L * T * E
    )


def test_peak_comes_from_the_user_the_cpu_or_the_gpu_name(monkeypatch):
    assert peak_flops(torch.device("cpu"), None, 2.5) == (2.5e12, "peak 2.5 TFLOP/s (--peak-tflops)")
    measured, source = peak_flops(torch.device("cpu"), None, None)
    assert measured > 1e8 and "measured on this CPU" in source
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    assert peak_flops(torch.device("cuda"), torch.bfloat16, None)[0] == 989e12
    assert peak_flops(torch.device("cuda"), None, None)[0] == 67e12  # fp32 without autocast
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some GPU 9000")
    peak, source = peak_flops(torch.device("cuda"), torch.bfloat16, None)
    assert peak is None and "unknown device 'Some GPU 9000'" in source and "--peak-tflops" in source


def test_training_log_mfu_is_tokens_per_second_times_flops_over_the_peak(tiny_config, capsys):
    from pretrain.run import mfu_of_tokens_per_s

    plan = SimpleNamespace(amp="none", peak_tflops=2.0, mlm_probability=0.15)
    mfu = mfu_of_tokens_per_s(plan, TransformerWithLMHead(tiny_config), block=16)
    assert mfu(1000.0) == pytest.approx(1000.0 * flops_per_token(tiny_config, 16) / 2e12)
    assert "peak 2 TFLOP/s (--peak-tflops)" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["0", "-3", "fast"])
def test_bad_peak_tflops_is_one_line_and_exit_2(value, capsys):
    from pretrain.cli import parse_args

    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--peak-tflops", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--peak-tflops" in err and value in err
