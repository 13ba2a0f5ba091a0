"""`--logger tensorboard`: Ignite's TensorboardLogger writes event files that TensorBoard reads back."""

from __future__ import annotations

import sys

import pytest
from conftest import small_run

from pretrain.run import main as pretrain_main


def test_pretrain_logs_scalars_learning_rates_and_plots(corpus, tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    out = tmp_path / "run"
    assert pretrain_main(small_run(corpus, out, "--logger", "tensorboard", "--log-every", "5")) == 0
    events = event_accumulator.EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    expected = {
        "train/loss",
        "train/grad_norm",
        "train/tokens_per_s",
        "valid/loss",
        "valid/word_ppl",
        "final/word_ppl",
    }
    assert expected <= scalars, scalars
    assert {"lr/group_0", "lr/group_1"} <= scalars  # decayed and not-decayed parameter groups
    assert [e.step for e in events.Scalars("train/loss")] == [5, 10, 15, 20, 25, 30]
    assert [e.step for e in events.Scalars("valid/loss")] == [0, 15, 30]
    lrs = [e.value for e in events.Scalars("lr/group_0")]
    assert lrs[-1] < max(lrs) <= 3e-3  # below the peak lr, decaying after it, as scheduled
    assert "plots/training_curves" in events.Tags()["images"]


def test_a_missing_tensorboard_is_one_line_naming_the_install(corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard now raises ImportError
    assert pretrain_main(small_run(corpus, tmp_path / "run", "--logger", "tensorboard")) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: tensorboard is not installed") and err.count("\n") == 1
    assert 'pip install -e ".[tb]"' in err
    assert not (tmp_path / "run").exists()  # nothing written
