"""`pretrain`'s own pieces: its options and presets, the evaluator's NLL, the MFU it logs."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from conftest import pretrain_args

from minitransformer import TransformerWithLMHead
from minitransformer.training.flops import flops_per_token


def test_config_file_and_presets(tmp_path):
    from pretrain.cli import parse_args

    config = tmp_path / "c.json"
    config.write_text(json.dumps({"embed_dim": 48, "lr": 0.01}))
    args = parse_args(["--config", str(config), "--lr", "0.02"])
    assert (args.embed_dim, args.lr, args.num_layers) == (48, 0.02, 4)  # file < flag; preset tiny
    args = parse_args(["--preset", "hands-on", "--max-steps", "5"])
    assert (args.embed_dim, args.num_layers, args.max_steps, args.epochs) == (410, 16, 5, None)
    old = parse_args(["--preset", "tutorial", "--norm-placement", "tutorial"])  # the names before the rename
    assert (old.preset, old.norm_placement, old.embed_dim) == ("hands-on", "hands_on", 410)
    step1 = parse_args(["--preset", "cpu-wikitext"])
    step2 = parse_args(["--preset", "cpu-trec-questions", "--init-from", "runs/step1"])
    assert (step1.embed_dim, step1.num_layers, step1.max_steps, step1.dataset) == (256, 4, 2000, "wikitext-2")
    assert (step2.dataset, step2.max_steps, step2.lr) == ("trec-questions", 500, 3e-4)
    fast1 = parse_args(["--preset", "cpu-wikitext-muon"])
    fast2 = parse_args(["--preset", "cpu-trec-questions-muon", "--init-from", "runs/step1"])
    assert (fast1.optimizer, fast1.batch_size, fast1.max_steps, fast1.dropout) == ("muon", 8, 1500, 0.1)
    assert (fast2.dataset, fast2.optimizer, fast2.max_steps, fast2.lr) == (
        "trec-questions",
        "muon",
        1000,
        6e-4,
    )
    config.write_text(json.dumps({"embed_dimm": 48}))
    with pytest.raises(SystemExit):
        parse_args(["--config", str(config)])


@pytest.mark.parametrize("mlm", [False, True])
def test_evaluator_nll_equals_the_full_logits_computation(tiny_config, mlm):
    from minitransformer.data.lm_data import lm_batch
    from pretrain.run import create_lm_evaluator

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


def test_a_model_too_big_for_the_machine_is_refused_leaving_nothing(corpus, tmp_path, capsys):
    """Issue 27 item 22: `--embed-dim 1000000000` died in an allocation error (a traceback)."""
    from pretrain.run import main as pretrain_main

    out = tmp_path / "run"
    argv = [*pretrain_args(corpus, out, tmp_path / "cache"), "--embed-dim", "1000000000"]
    assert pretrain_main(argv) == 1
    err = capsys.readouterr().err
    assert "--embed-dim 1000000000" in err and "choose smaller sizes" in err and "Traceback" not in err
    assert not out.exists()
