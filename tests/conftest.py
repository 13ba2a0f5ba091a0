"""Shared fixtures: tiny configs that run in milliseconds, and the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from minitransformer import TransformerConfig

REPO = Path(__file__).resolve().parents[1]

# No test reaches the internet: a download that a test does not point at its own loopback server goes
# to a loopback port nobody listens on (connection refused), like a machine without a network.
for _variable in ("MINITRANSFORMER_WIKITEXT_URL", "MINITRANSFORMER_TREC_URL"):
    os.environ.setdefault(_variable, "http://127.0.0.1:9/")


@pytest.fixture
def tiny_config() -> TransformerConfig:
    """A 2-layer model with an odd head count, so that shape bugs cannot hide."""
    return TransformerConfig(
        embed_dim=24,
        hidden_dim=40,
        num_heads=3,
        num_layers=2,
        num_embeddings=50,
        num_max_positions=16,
        dropout=0.1,
    )


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data beside the project (MINITRANSFORMER_DATA, else ../shared/data); skip if absent."""
    candidates = [os.environ.get("MINITRANSFORMER_DATA"), REPO.parent / "shared" / "data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "trec").is_dir():
            return Path(candidate)
    pytest.skip("shared data not found: set MINITRANSFORMER_DATA to the folder holding trec/ and wikitext-2/")


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory, shared_data) -> SimpleNamespace:
    """A small WikiText-style folder (first lines of the real valid/test splits) and the suite's fixed
    tokenizer for it (tests/data/tokenizer.json, built by tests/data/make_tokenizer.py: the same ids in
    every run, which a tokenizer trained per session would not give)."""
    root = tmp_path_factory.mktemp("wiki")
    for split, lines in (("valid", 600), ("test", 200)):
        with open(shared_data / "wikitext-2" / f"wiki.{split}.tokens", encoding="utf-8") as f:
            head = [next(f) for _ in range(lines)]
        (root / f"wiki.{split}.tokens").write_text("".join(head), encoding="utf-8")
    return SimpleNamespace(root=root, tokenizer=REPO / "tests" / "data" / "tokenizer.json")


@pytest.fixture(scope="session")
def pretrained_dir(tmp_path_factory, corpus) -> Path:
    """A causal model pretrained for 60 steps by `python -m pretrain` (a few seconds)."""
    from pretrain.run import main

    out = tmp_path_factory.mktemp("pretrained") / "run"
    argv = [
        "--dataset", str(corpus.root), "--tokenizer", str(corpus.tokenizer), "--output-dir", str(out),
        "--cache-dir", str(out.parent / "cache"), "--embed-dim", "48", "--hidden-dim", "96", "--num-heads", "2",
        "--num-layers", "2", "--num-max-positions", "64", "--batch-size", "8", "--lr", "3e-3",
        "--warmup-steps", "5", "--max-steps", "60", "--eval-every", "60", "--sample-prompts",
        "--no-progress", "--threads", "1",
    ]  # fmt: skip
    assert main(argv) == 0
    return out
