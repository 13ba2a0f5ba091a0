"""`python -m pretrain` then `python -m minitransformer hf export`: the folder loads in transformers."""

from __future__ import annotations

import pytest
import torch
from conftest import small_run

from minitransformer import TransformerWithLMHead
from minitransformer.interop import hf
from pretrain.run import main as pretrain_main

transformers = pytest.importorskip(
    "transformers", reason="loading the export needs transformers (extra 'hf')"
)
pytestmark = pytest.mark.e2e

RUNS = {  # transformers has no pre-norm masked LM class with rotary positions: those pass --no-rotary
    "causal": (),  # a toy causal LM with the default preset's rotary positions: exports as GPT-NeoX
    "causal learned positions": ("--no-rotary",),  # the same with a position table: as GPT-2
    "masked": ("--objective", "mlm", "--no-rotary"),  # the preset's masked LM (pre-norm): as Megatron-BERT
    "masked post": (
        "--objective",
        "mlm",
        "--no-rotary",
        "--norm-placement",
        "post",
        "--embedding-layer-norm",
    ),
}


@pytest.mark.parametrize("name", RUNS)
def test_a_pretrained_run_exported_loads_in_transformers_with_our_logits(corpus, tmp_path, name):
    run, out = tmp_path / "run", tmp_path / "exported"
    assert pretrain_main([*small_run(corpus, run, *RUNS[name]), "--max-steps", "6"]) == 0
    assert hf.main(["export", str(run), str(out)]) == 0
    ours = TransformerWithLMHead.from_pretrained(run).eval()
    auto = transformers.AutoModelForCausalLM if ours.config.causal else transformers.AutoModelForMaskedLM
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    batch = tokenizer(["In 1995 , the band released", "The river"], padding=True, return_tensors="pt")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    with torch.no_grad():
        theirs = auto.from_pretrained(out).eval()(input_ids=ids, attention_mask=mask).logits
        logits = ours(ids, padding_mask=~mask.bool())
    assert float((logits - theirs).abs()[mask.bool()].max()) <= 1e-4


def test_a_post_norm_masked_lm_without_bert_switches_is_refused_in_one_line(corpus, tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        pretrain_main(
            [
                *small_run(corpus, run, "--objective", "mlm", "--no-rotary", "--norm-placement", "post"),
                "--max-steps",
                "2",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert hf.main(["export", str(run), str(tmp_path / "exported")]) == 2
    err = capsys.readouterr().err
    assert "embedding_layer_norm=False" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "exported").exists()
