"""minitransformer.ngram against a plain dict-based interpolated Kneser-Ney written from the formula."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from minitransformer.ngram import KneserNey, count_ngrams, discount, select_order


class ReferenceKneserNey:
    """Interpolated Kneser-Ney from tuples and Counters, one token at a time: slow and obviously right."""

    def __init__(self, train: list[int], vocab_size: int, order: int):
        self.vocab_size, self.order = vocab_size, order
        grams = [
            Counter(tuple(train[i : i + k]) for i in range(len(train) - k + 1)) for k in range(order + 2)
        ]
        self.counts = {}  # k -> {k-gram: the count order k uses}
        for k in range(1, order + 1):
            if k == order:
                self.counts[k] = dict(grams[k])
            else:  # continuation: how many distinct tokens come before the k-gram
                self.counts[k] = dict(Counter(g[1:] for g in grams[k + 1]))
        self.totals, self.types, self.discounts = {}, {}, {}
        for k, counts in self.counts.items():
            self.totals[k], self.types[k] = Counter(), Counter()
            for gram, c in counts.items():
                self.totals[k][gram[:-1]] += c
                self.types[k][gram[:-1]] += 1
            n1 = sum(c == 1 for c in counts.values())
            n2 = sum(c == 2 for c in counts.values())
            self.discounts[k] = n1 / (n1 + 2 * n2) if n1 else 0.5

    def prob(self, context: tuple[int, ...], token: int, k: int) -> float:
        """P_k(token | the last k-1 tokens of context)."""
        if k == 0:
            return 1 / self.vocab_size
        h = context[len(context) - (k - 1) :] if k > 1 else ()
        lower = self.prob(context, token, k - 1)
        total = self.totals[k][h]
        if total == 0:
            return lower
        d = self.discounts[k]
        return (max(self.counts[k].get(h + (token,), 0) - d, 0) + d * self.types[k][h] * lower) / total

    def log_probs(self, tokens: list[int]) -> list[float]:
        return [
            math.log(self.prob(tuple(tokens[max(0, j - self.order + 1) : j]), t, min(self.order, j + 1)))
            for j, t in enumerate(tokens)
        ]


def zipf_tokens(n: int, vocab_size: int, seed: int) -> np.ndarray:
    """A stream with repeated phrases (n-grams that recur), as text has."""
    rng = np.random.default_rng(seed)
    words = rng.zipf(1.5, size=n) % vocab_size
    phrases = rng.integers(0, vocab_size, size=(5, 4))
    for start in rng.integers(0, n - 4, size=n // 10):
        words[start : start + 4] = phrases[start % 5]
    return words.astype(np.uint16)


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_log_probs_equal_the_dict_based_reference(order):
    train, test = zipf_tokens(600, 23, seed=0), zipf_tokens(200, 23, seed=1)
    test[50:60] = 22  # a token never seen in training, and contexts never seen
    model = KneserNey.fit(train, 23, order)
    reference = ReferenceKneserNey(train.tolist(), 23, order)
    assert [level.discount for level in model.levels] == [reference.discounts[k] for k in range(1, order + 1)]
    np.testing.assert_allclose(model.log_probs(test), reference.log_probs(test.tolist()), rtol=1e-12)


def test_counts_are_occurrences_and_distinct_left_neighbours():
    counts = count_ngrams(np.array([0, 1, 0, 1, 2, 1]), 3, order=2)
    unigrams, bigrams = counts
    assert unigrams.keys.tolist() == [0, 1, 2] and unigrams.counts.tolist() == [2, 3, 1]
    assert unigrams.continuation.tolist() == [1, 2, 1]  # 1 follows 0 and 2; 0 follows 1 only
    bigram_names = [divmod(k, 3) for k in bigrams.keys.tolist()]  # (id of the first token, the last)
    assert bigram_names == [(0, 1), (1, 0), (1, 2), (2, 1)] and bigrams.counts.tolist() == [2, 1, 1, 1]


def test_discount_is_n1_over_n1_plus_2_n2():
    assert discount(np.array([1, 1, 1, 2, 5])) == 3 / (3 + 2 * 1)
    assert discount(np.array([2, 3])) == 0.5  # no singleton: the fallback


@pytest.mark.parametrize("context", [[], [3], [3, 4, 3, 4], [22, 22], [0, 22, 1]])
def test_probabilities_sum_to_one_over_the_vocabulary(context):
    model = KneserNey.fit(zipf_tokens(500, 23, seed=2), 23, order=4)
    probs = [math.exp(model.log_probs(np.array([*context, w]))[-1]) for w in range(23)]
    assert sum(probs) == pytest.approx(1.0, abs=1e-12)
    assert min(probs) > 0  # every id, seen or not, keeps some probability


def test_select_order_picks_the_order_with_the_lowest_held_out_nll():
    # a deterministic cycle of period 7 with a little noise: a 2-gram already knows the next token
    rng = np.random.default_rng(0)
    stream = np.tile(np.arange(7), 200)
    stream[rng.integers(0, len(stream), 40)] = 7
    order, nll = select_order(stream[:1000], stream[1000:], vocab_size=8, max_order=4)
    assert sorted(nll) == [1, 2, 3, 4] and order == min(nll, key=nll.get)
    assert nll[1] > 1.5 > nll[2] and order >= 2


def test_nll_in_chunks_equals_the_whole_stream_at_once():
    model = KneserNey.fit(zipf_tokens(800, 23, seed=3), 23, order=3)
    test = zipf_tokens(300, 23, seed=4)
    assert model.nll(test, chunk=7) == pytest.approx(-model.log_probs(test).mean(), rel=1e-12)


def test_a_stream_shorter_than_the_order_is_refused_in_one_line():
    with pytest.raises(ValueError, match="3 training tokens: 5-grams need 5"):
        count_ngrams(np.array([1, 2, 3]), 4, order=5)
