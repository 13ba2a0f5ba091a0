"""Shared paths and fixtures: the repository (REPO), the shared data folder, tiny configs that run in
milliseconds, a small corpus and a quickly pretrained model. They live here only.

Where a new test goes:
- a unit test of a library module `minitransformer/.../<module>.py` goes in `tests/test_<module>.py`
  (one file per module: test_model.py, test_engine.py, test_options.py, ...); a unit test of a program's
  own pieces in `tests/test_pretrain.py` or `tests/test_adapt.py`;
- a test that runs a command-line program, a tutorial or a benchmark end to end goes in `tests/e2e/`;
  every test there is marked `e2e` (`pytest -m "not e2e"` is the fast tier).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from minitransformer import TransformerConfig, TransformerWithLMHead

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
        vocab_size=50,
        num_max_positions=16,
        dropout=0.1,
    )


def find_shared_data() -> Path | None:
    """The real data beside the project: $MINITRANSFORMER_DATA, else ../shared/data, when it exists."""
    for candidate in (os.environ.get("MINITRANSFORMER_DATA"), REPO.parent / "shared" / "data"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data beside the project (`find_shared_data`), holding trec/; skip if absent."""
    found = find_shared_data()
    if found is not None and (found / "trec").is_dir():
        return found
    pytest.skip("shared data not found: set MINITRANSFORMER_DATA to the folder holding trec/ and wikitext-2/")


def pytest_collection_modifyitems(items):
    """Every test in tests/e2e/ is an end-to-end test."""
    e2e = Path(__file__).parent / "e2e"
    for item in items:
        if e2e in Path(item.fspath).parents:
            item.add_marker(pytest.mark.e2e)


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


def randomize(model: nn.Module, std: float = 0.2) -> nn.Module:
    """Every parameter ~ N(0, std): zero biases and unit LayerNorms would hide mapping mistakes."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, std)
    return model.eval()


def one_hot_rows(targets: list[int], size: int) -> torch.Tensor:
    """A (T, T) attention matrix whose row i puts all its weight on position targets[i]."""
    return torch.nn.functional.one_hot(torch.tensor(targets), size).float()


def padded_batch(vocab: int, lengths=(10, 6, 3)) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids, right-padded with 0; attention_mask 1 = real token (HF's convention)."""
    T = max(lengths)
    ids = torch.randint(1, vocab, (len(lengths), T))
    mask = (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]).long()
    return ids * mask, mask


def edited_copy(source: Path, target: Path, **config_changes) -> Path:
    """A copy of a Hugging Face checkpoint folder at `target` with `config_changes` in its config.json."""
    target.mkdir()
    config = json.loads((source / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**config, **config_changes}))
    (target / "model.safetensors").write_bytes((source / "model.safetensors").read_bytes())
    return target


def saved_folder(directory: Path, config: TransformerConfig) -> tuple[Path, TransformerWithLMHead]:
    """A model folder of ours with random weights and the suite's tokenizer."""
    from minitransformer.tokenization import Tokenizer

    tokenizer = Tokenizer.from_file(REPO / "tests" / "data" / "tokenizer.json")
    model = randomize(
        TransformerWithLMHead(TransformerConfig(**{**config.to_dict(), "vocab_size": tokenizer.vocab_size}))
    )
    model.save_pretrained(directory, tokenizer=tokenizer)
    return directory, model


def small_run(corpus, out: Path, *extra: str) -> list[str]:
    """A 30-step pretraining of a tiny model on `corpus` (seconds), with `extra` options."""
    return [
        "--dataset", str(corpus.root), "--tokenizer", str(corpus.tokenizer), "--output-dir", str(out),
        "--cache-dir", str(out.parent / "cache"), "--embed-dim", "32", "--hidden-dim", "64",
        "--num-heads", "2", "--num-layers", "2", "--num-max-positions", "32", "--batch-size", "8",
        "--lr", "3e-3", "--warmup-steps", "5", "--max-steps", "30", "--eval-every", "15",
        "--eval-batch-size", "16", "--sample-tokens", "4", "--no-progress", "--threads", "1", *extra,
    ]  # fmt: skip


def pretrain_args(corpus, out: Path, cache: Path) -> list[str]:
    """A 12-step pretraining of a tiny model on `corpus`, checkpointed every 4 steps (seconds)."""
    return [
        "--dataset", str(corpus.root), "--tokenizer", str(corpus.tokenizer), "--output-dir", str(out),
        "--cache-dir", str(cache), "--embed-dim", "32", "--hidden-dim", "64", "--num-heads", "2",
        "--num-layers", "2", "--num-max-positions", "32", "--batch-size", "8", "--lr", "3e-3",
        "--warmup-steps", "5", "--max-steps", "12", "--eval-every", "6", "--checkpoint-every", "4",
        "--log-every", "5", "--eval-batch-size", "16", "--sample-tokens", "4", "--no-progress", "--threads", "1",
    ]  # fmt: skip


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
