"""Shared fixtures: tiny configs that run in milliseconds, and the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from minitransformer import TransformerConfig

REPO = Path(__file__).resolve().parents[1]


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
