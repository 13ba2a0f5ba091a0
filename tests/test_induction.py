"""The induction corpus (minitransformer/data/induction.py): determinism, copies where the kinds say, the
copied/fresh loss, and `python -m pretrain --dataset induction` end to end on a few steps."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace

import pytest
import torch
from torch import nn

from minitransformer.data.induction import (
    COPIED,
    COPY_START,
    FRESH,
    InductionSpec,
    Passage,
    copied_and_fresh_loss,
    dense_passage,
    make_words,
    probe_batch,
    probe_head_scores,
    probe_passage,
    word_token_ids,
    write_corpus,
)
from minitransformer.teaching.circuits import (
    hand_built_induction_model,
    induction_batch,
    prefix_matching_score,
    previous_token_share,
    uniform_attention,
)
from minitransformer.tokenization import Tokenizer

SMALL = InductionSpec(num_words=40, passage_words=31, train_passages=300, valid_passages=20)


def copies(passage: Passage) -> list[tuple[int, int]]:
    """(start, length) of each copy the kinds mark: a COPY_START and the COPIED words after it."""
    found = []
    for t, kind in enumerate(passage.kinds):
        if kind == COPY_START:
            found.append([t, 1])
        elif kind == COPIED:
            found[-1][1] += 1
    return [tuple(c) for c in found]


def has_earlier_source(passage: Passage, start: int, length: int) -> bool:
    segment = passage.ids[start : start + length]
    return any(passage.ids[s : s + length] == segment for s in range(start - length + 1))


def test_the_corpus_is_the_same_text_for_a_seed_and_another_for_another_seed(tmp_path):
    first = write_corpus(tmp_path / "a", SMALL, seed=3)
    again = write_corpus(tmp_path / "b", SMALL, seed=3)
    other = write_corpus(tmp_path / "c", SMALL, seed=4)
    for split in ("train.txt", "valid.txt"):
        assert (first / split).read_text() == (again / split).read_text()
        assert (first / split).read_text() != (other / split).read_text()
    lines = (first / "train.txt").read_text().splitlines()
    assert len(lines) == SMALL.train_passages
    assert {len(line.split()) for line in lines} == {SMALL.passage_words}
    assert set(" ".join(lines).split()) <= set(make_words(SMALL.num_words, 3))
    assert json.loads((first / "spec.json").read_text())["seed"] == 3


def test_every_copy_the_kinds_mark_repeats_an_earlier_segment():
    rng = random.Random(0)
    passages = [dense_passage(rng, SMALL) for _ in range(100)]
    marked = [(p, c) for p in passages for c in copies(p)]
    assert len(marked) > 150
    assert all(has_earlier_source(p, start, length) for p, (start, length) in marked)
    copied_share = sum(p.kinds.count(COPIED) for p in passages) / (100 * SMALL.passage_words)
    assert 0.2 < copied_share < 0.8


def test_a_probe_passage_has_one_copy_of_allowed_length_at_varying_places():
    rng = random.Random(1)
    starts = set()
    for _ in range(200):
        passage = probe_passage(rng, num_words=40, length=32, min_copy=2, max_copy=12)
        assert len(passage.ids) == len(passage.kinds) == 32
        [(start, length)] = copies(passage)
        assert 2 <= length <= 12 and has_earlier_source(passage, start, length)
        starts.add(start)
    assert len(starts) > 10  # no fixed offset: a position-only head cannot predict the copies


class CopyOracle(nn.Module):
    """Uniform over `vocab` words, except that before each copied token it gives that token probability p."""

    def __init__(self, ids: torch.Tensor, kinds: torch.Tensor, vocab: int, p: float):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))  # a parameter, for the device
        self.logits = torch.zeros(*ids.shape, vocab)  # (N, T, V)
        rest = math.log((1 - p) / (vocab - 1))
        for n, t in (kinds[:, 1:] == COPIED).nonzero().tolist():  # token t + 1 is copied
            self.logits[n, t] = rest
            self.logits[n, t, ids[n, t + 1]] = math.log(p)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.logits


def test_copied_and_fresh_loss_of_a_model_that_predicts_the_copies():
    ids, kinds = probe_batch(list(range(10, 50)), count=16, length=32, min_copy=2, max_copy=8, seed=0)
    assert ids.shape == kinds.shape == (16, 32) and int(ids.min()) >= 10
    losses = copied_and_fresh_loss(CopyOracle(ids, kinds, vocab=50, p=0.9), ids, kinds)
    assert losses["copied_loss"] == pytest.approx(-math.log(0.9), abs=1e-5)
    assert losses["fresh_loss"] == pytest.approx(math.log(50), abs=1e-5)
    assert (kinds == FRESH).sum() > (kinds == COPIED).sum() > 0


def test_probe_head_scores_find_the_hand_built_circuit_and_restore_the_mode():
    model = hand_built_induction_model()
    model.train()
    probe = induction_batch(batch_size=8)
    scores = probe_head_scores(model, probe)
    assert model.training
    [[previous_0, _], [previous_1, _]] = scores["previous_token"]  # head 0 of each layer does the work
    [[matching_0, _], [matching_1, _]] = scores["prefix_matching"]
    assert previous_0 > 0.95 and previous_1 < 0.5  # layer 0 is the previous-token head
    assert matching_1 > 0.95 and matching_0 < 0.5  # layer 1 the induction head
    uniform = uniform_attention(probe.shape[1])  # the baselines: a head that spreads its weight evenly
    assert scores["previous_token_uniform"] == pytest.approx(
        float(previous_token_share(uniform)[0]), abs=1e-4
    )
    expected = float(prefix_matching_score(uniform, probe)[0])
    assert scores["prefix_matching_uniform"] == pytest.approx(expected, abs=1e-4)
    assert 0 < scores["prefix_matching_uniform"] < matching_1 / 4


def test_a_tokenizer_that_splits_the_words_is_refused_naming_the_fix():
    words = make_words(40, seed=0)
    whole = Tokenizer.train(iter([" ".join(words)] * 3), vocab_size=1000)
    assert len(set(word_token_ids(whole, words))) == 40
    pieces = Tokenizer.train(iter([" ".join(words)] * 3), vocab_size=60)
    with pytest.raises(ValueError, match="larger --vocab-size"):
        word_token_ids(pieces, words)


def test_pretrain_on_the_induction_corpus_logs_copied_and_fresh_loss(tmp_path, monkeypatch):
    from pretrain import run

    small = replace(InductionSpec(), train_passages=2000, valid_passages=50)  # the preset's words, less text
    monkeypatch.setattr(
        run, "induction_spec", lambda plan: replace(small, passage_words=run.block_size(plan) - 1)
    )
    out = tmp_path / "run"
    argv = ["--preset", "induction", "--threads", "1", "--output-dir", str(out), "--no-progress"]
    argv += ["--cache-dir", str(tmp_path / "cache" / "binarized"), "--max-steps", "4", "--eval-every", "2"]
    argv += ["--embed-dim", "16", "--hidden-dim", "32", "--num-max-positions", "32", "--batch-size", "4"]
    assert run.main(argv) == 0
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evaluations = [e for e in events if e["event"] in ("valid", "final")]
    assert [e["step"] for e in evaluations] == [0, 2, 4, 4]
    assert all(e["copied_loss"] > 0 and e["fresh_loss"] > 0 for e in evaluations)
    for name in ("previous_token", "prefix_matching"):  # layers × heads of scores in [0, 1]
        scores = [s for e in evaluations for layer in e[name] for s in layer]
        assert all(len(e[name]) == 2 and len(e[name][0]) == 4 for e in evaluations)
        assert all(0 <= s <= 1 for s in scores)
    tokenizer = Tokenizer.from_pretrained(out)
    corpus = next((tmp_path / "cache").glob("induction-*"))
    words = sorted(set((corpus / "valid.txt").read_text().split()))
    assert len(set(word_token_ids(tokenizer, words))) == len(words)
