"""A synthetic corpus in which an induction head pays off: made-up words, segments repeated at random places.

Each line of the corpus is one passage of made-up words ("bako", "rile", ...). A passage is written
left to right: either a run of fresh words drawn uniformly from the word list, or a copy of an
earlier segment of the same passage, starting anywhere before and of random length:

    fresh:  rile bako tevu ... nime            every word equally likely: nothing to learn
    copied: ... bako tevu  ...  bako → tevu    the word after an earlier "bako" predicts this one

Only an induction head (a previous-token head that marks each position with the word before it, and
a head that attends to the position after an earlier copy of the current word) can predict copied
words: a copy starts at a random distance, so a head that attends a fixed number of positions back
cannot (Olsson et al. 2022, "In-context Learning and Induction Heads"). The corpus is text, so the
whole pretraining pipeline (tokenizer, binarized cache, checkpoints, samples, explorer) runs
unchanged; every word must become one token (`word_token_ids` checks it).

`probe_batch` builds the measurement of the must-show: random sequences of the word tokens with one
segment copied at a random offset and length, and `copied_and_fresh_loss` the model's loss on copied
and on fresh tokens, which shows the phase change (fresh stays at ln(number of words); copied falls).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from minitransformer.modes import evaluating
from minitransformer.runs.io import atomic_path, write_json_atomic
from minitransformer.teaching.circuits import (
    attention_patterns,
    next_token_losses,
    pattern_scores,
)
from minitransformer.tokenization import Tokenizer

FRESH, COPIED, COPY_START = 0, 1, 2  # kinds of token: drawn anew, predictable copy, first of a copy
CONSONANTS, VOWELS = "bdfgklmnprstvz", "aeiou"


@dataclass(frozen=True)
class InductionSpec:
    """What the corpus looks like; the defaults are the design of docs/induction.md."""

    num_words: int = 1024  # made-up words: per token, ln(1024) = 6.93 nats of fresh surprise
    passage_words: int = 31  # words per line; with its [SEP], one training block of 32 tokens
    copy_probability: float = 0.5  # at each choice, start a copy (else a run of fresh words)
    min_copy: int = 3
    max_copy: int = 12  # a copy is min_copy..max_copy words long, a run of fresh words 1..max_copy
    train_passages: int = 80_000  # 2.5M words: 5000 steps of 64 blocks see each passage 4 times
    valid_passages: int = 500


@dataclass
class Passage:
    """Word ids and, per position, whether the word is FRESH, COPIED or a COPY_START."""

    ids: list[int]
    kinds: list[int]


def make_words(num_words: int, seed: int) -> list[str]:
    """`num_words` distinct made-up two-syllable words ("bako"), chosen by the seed."""
    syllables = [c + v for c in CONSONANTS for v in VOWELS]
    candidates = [a + b for a in syllables for b in syllables]
    if not 1 <= num_words <= len(candidates):
        raise ValueError(f"num_words={num_words}: choose between 1 and {len(candidates)}")
    return random.Random(seed).sample(candidates, num_words)


def copy_segment(passage: Passage, start: int, length: int) -> None:
    """Append passage[start : start + length] to the passage, marked as a copy."""
    for j in range(length):
        passage.ids.append(passage.ids[start + j])
        passage.kinds.append(COPY_START if j == 0 else COPIED)


def dense_passage(rng: random.Random, spec: InductionSpec) -> Passage:
    """One training passage: runs of fresh words and copies of earlier segments, each of random length."""
    passage = Passage([], [])
    while len(passage.ids) < spec.passage_words:
        done = len(passage.ids)
        if done >= spec.min_copy and rng.random() < spec.copy_probability:
            length = min(rng.randint(spec.min_copy, spec.max_copy), done)
            copy_segment(passage, rng.randint(0, done - length), length)
        else:
            for _ in range(rng.randint(1, spec.max_copy)):
                passage.ids.append(rng.randrange(spec.num_words))
                passage.kinds.append(FRESH)
    return Passage(passage.ids[: spec.passage_words], passage.kinds[: spec.passage_words])


def probe_passage(rng: random.Random, num_words: int, length: int, min_copy: int, max_copy: int) -> Passage:
    """Fresh words with one segment of random length copied from a random place to a random later one."""
    copy = rng.randint(min_copy, min(max_copy, length // 2))
    source = rng.randint(0, length - 2 * copy)
    target = rng.randint(source + copy, length - copy)
    passage = Passage([rng.randrange(num_words) for _ in range(target)], [FRESH] * target)
    copy_segment(passage, source, copy)
    rest = length - len(passage.ids)
    passage.ids += [rng.randrange(num_words) for _ in range(rest)]
    passage.kinds += [FRESH] * rest
    return passage


def write_corpus(cache_root: str | Path, spec: InductionSpec, seed: int) -> Path:
    """Write train.txt and valid.txt (one passage a line) into a folder of `cache_root` named after
    (spec, seed), once; returns the folder.

    The same (spec, seed) always gives the same text; the files are written atomically, so a killed
    run leaves none half-written. spec.json records what they hold.
    """
    key = hashlib.sha256(json.dumps([asdict(spec), seed]).encode()).hexdigest()[:12]
    directory = Path(cache_root) / f"induction-{key}"
    words = make_words(spec.num_words, seed)
    rng = random.Random(seed)
    for split, count in (("train", spec.train_passages), ("valid", spec.valid_passages)):
        path = directory / f"{split}.txt"
        if path.is_file():
            continue
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            for _ in range(count):
                f.write(" ".join(words[i] for i in dense_passage(rng, spec).ids) + "\n")
    write_json_atomic(directory / "spec.json", {**asdict(spec), "seed": seed})
    return directory


def word_token_ids(tokenizer: Tokenizer, words: list[str]) -> list[int]:
    """The one token id of each word; refuses a tokenizer that splits a word (copies would not align)."""
    ids = [tokenizer.encode(word) for word in words]
    split = [word for word, pieces in zip(words, ids) if len(pieces) != 1]
    if split:
        raise ValueError(
            f"the tokenizer splits {len(split)} of the {len(words)} words into pieces (e.g. {split[0]!r}): "
            "train it on the induction corpus with a larger --vocab-size"
        )
    return [pieces[0] for pieces in ids]


def probe_batch(
    token_ids: list[int], count: int, length: int, min_copy: int, max_copy: int, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """`count` probe passages in token ids: ids (count, length) and their kinds (count, length)."""
    rng = random.Random(seed)
    passages = [probe_passage(rng, len(token_ids), length, min_copy, max_copy) for _ in range(count)]
    ids = torch.tensor([[token_ids[i] for i in p.ids] for p in passages])  # (N, T)
    return ids, torch.tensor([p.kinds for p in passages])  # (N, T), (N, T)


def copy_probe(model: nn.Module, tokenizer: Tokenizer, spec: InductionSpec, seed: int, count: int = 256):
    """A function of no arguments giving what each evaluation logs about `model` on fixed probe passages
    of the corpus's words (one copy of min_copy..max_copy words): `copied_and_fresh_loss` and every
    head's `probe_head_scores`.

    A probe passage is as long as a training passage, without the [SEP] that ends each training block:
    the model learns that the block's last token is [SEP], so a word there would be a surprise."""
    token_ids = word_token_ids(tokenizer, make_words(spec.num_words, seed))
    ids, kinds = probe_batch(token_ids, count, spec.passage_words, spec.min_copy, spec.max_copy, seed)
    return lambda: {**copied_and_fresh_loss(model, ids, kinds), **probe_head_scores(model, ids)}


@torch.no_grad()
def copied_and_fresh_loss(model: nn.Module, ids: Tensor, kinds: Tensor) -> dict[str, float]:
    """Mean next-token loss (nats) of a causal LM on COPIED and on FRESH tokens of probe passages.

    ids, kinds: (N, T). The loss at position t is that of predicting ids[:, t] from ids[:, :t];
    the first token of a copy (COPY_START) is in neither mean: nothing before it says it comes.
    """
    with evaluating(model):
        losses = next_token_losses(model, ids.to(next(model.parameters()).device)).float().cpu()  # (N, T-1)
    predicted = kinds[:, 1:]  # (N, T-1): the kind of each predicted token
    return {
        "copied_loss": losses[predicted == COPIED].mean().item(),
        "fresh_loss": losses[predicted == FRESH].mean().item(),
    }


def probe_head_scores(model: nn.Module, ids: Tensor) -> dict[str, list[list[float]] | float]:
    """Every head's previous-token share and prefix-matching score on probe passages ids (N, T), as
    lists of layers of heads (L × nh): logged at each evaluation, they show which head forms when.
    `previous_token_uniform` and `prefix_matching_uniform` are the scores of a head that spreads its
    weight evenly over the same passages: the level a score must rise above to mean anything."""
    ids = ids.to(next(model.parameters()).device)
    with evaluating(model):
        scores = pattern_scores(attention_patterns(model, ids), ids, model.config.causal)
    return {name: _rounded(value) for name, value in scores.items()}


def _rounded(value: Tensor) -> list[list[float]] | float:
    """A score for the metrics log: (L, nh) → lists of layers of heads, () → a float; 4 decimals."""
    if value.dim() == 0:
        return round(value.item(), 4)
    return [[round(v, 4) for v in layer] for layer in value.tolist()]
