"""An interpolated Kneser-Ney n-gram language model, counted with numpy: the classical baseline.

It reads the same flat token stream as the Transformer (`data.wikitext.binarize`: every line's ids, then
its separator), so the two models predict the same tokens and their perplexities compare directly. A
k-gram is k consecutive ids of the stream; n-grams cross line ends as the Transformer's blocks do.

The probability of token w after the context h (the n-1 tokens before it) mixes every order, from
the n-gram down to the uniform distribution over the V ids of the vocabulary (Chen & Goodman 1998,
"An Empirical Study of Smoothing Techniques for Language Modeling", interpolated Kneser-Ney with one
discount per order):

    P_k(w | h) = max(c_k(h w) − D_k, 0) / c_k(h •)  +  D_k · N_k(h •) / c_k(h •) · P_{k−1}(w | h')
    P_0(w)     = 1 / V

where h' drops the first token of h, c_k(h •) = Σ_w c_k(h w), N_k(h •) = #{w : c_k(h w) > 0}, and
P_k(w | h) = P_{k−1}(w | h') when c_k(h •) = 0 (a context never seen). The counts c_k are

    the top order (k = n): how often the n-gram occurs;
    lower orders (k < n):  its continuation count, #{v : the (k+1)-gram v h w occurs} — a word seen
                           after many different contexts ("the") is a better guess for a new context
                           than one seen often after a single one ("Francisco", after "San").

D_k = n1 / (n1 + 2 n2), n1 and n2 the numbers of k-grams whose count c_k is 1 and 2 (0.5 when there is
none of count 1). Each term sums to 1 over w, so P_n(· | h) is a distribution over all V ids for any h
(tested). The first n-1 tokens of a stream have fewer tokens before them: token j (0-based) of a stream
is scored from order min(n, j+1) down.

Memory (N training tokens, U_k ≤ N distinct k-grams, n ≤ MAX_ORDER): the counts keep, per distinct
k-gram, one int64 key (the id of its first k-1 tokens × V + its last token; ids are positions in the
sorted keys of the order below, so any V and N < 2^31 fit) and two int32 counts: 16 · Σ U_k ≤ 16 · n · N
bytes; a model adds two int32 per context. Counting one order sorts its N int64 keys: about 34 · N
bytes more while it runs. No Python dict or loop over tokens anywhere; scoring goes 2^20 tokens at a
time. Measured peak, counting orders 1-5 of a synthetic 100M-token stream in which nearly every 4- and
5-gram is distinct (the worst case): 6.9 GiB, 74 bytes per token (2026-12-06, 2 shared cores, load 5-8).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_ORDER = 5


@dataclass(frozen=True)
class NgramCounts:
    """The distinct k-grams of a training stream for one k, sorted, with their two kinds of count."""

    keys: np.ndarray  # (U_k,) int64, sorted: id of the first k-1 tokens × V + last token
    counts: np.ndarray  # (U_k,) int32: occurrences
    continuation: np.ndarray  # (U_k,) int32: distinct tokens seen before it (zeros for the highest k counted)


def count_ngrams(tokens: np.ndarray, vocab_size: int, order: int) -> list[NgramCounts]:
    """The counts of orders 1..order of a stream of ids in [0, vocab_size) (e.g. a TokenFile's memmap).

    Order k sorts one int64 key per position (np.unique by hand, to free what is done with early)."""
    n_tokens = len(tokens)
    if not order <= n_tokens < 2**31:
        raise ValueError(f"{n_tokens:,} training tokens: {order}-grams need {order} to 2^31 - 1 (int32 ids)")
    ids = np.zeros(n_tokens, dtype=np.int32)  # (N,) id of the (k-1)-gram ending at each position
    levels = []
    for k in range(1, order + 1):
        # the k-grams end at positions k-1..N-1; the first k-1 tokens of each end one position earlier
        keys = ids[k - 2 : n_tokens - 1].astype(np.int64) if k > 1 else np.zeros(n_tokens, np.int64)
        keys *= vocab_size
        keys += tokens[k - 1 :]  # (M,) M = N-k+1
        by_key = np.argsort(keys)  # (M,) int64
        keys = keys[by_key]  # sorted
        starts = np.empty(len(keys), dtype=bool)  # (M,) True where a new key begins
        starts[:1] = True
        np.not_equal(keys[1:], keys[:-1], out=starts[1:])
        unique = keys[starts]  # (U_k,)
        del keys
        first = np.flatnonzero(starts)  # (U_k,) where each k-gram's run begins in sorted order
        counts = np.diff(first, append=len(starts)).astype(np.int32)  # (U_k,)
        if k > 1:  # one distinct k-gram = one more distinct token before its last k-1 tokens
            suffix = ids[by_key[first] + k - 1]  # (U_k,) id of each k-gram's last k-1 tokens
            previous = levels[-1]
            cont = np.bincount(suffix, minlength=len(previous.keys)).astype(np.int32)
            levels[-1] = NgramCounts(previous.keys, previous.counts, cont)
        if k < order:  # the next order's keys need each position's k-gram id
            ids[k - 1 :][by_key] = np.cumsum(starts, dtype=np.int32) - 1
        levels.append(NgramCounts(unique, counts, np.zeros_like(counts)))
    return levels


def discount(counts: np.ndarray) -> float:
    """D = n1 / (n1 + 2 n2) (Ney, Essen & Kneser 1994); 0.5 when no count is 1."""
    n1, n2 = int(np.count_nonzero(counts == 1)), int(np.count_nonzero(counts == 2))
    return n1 / (n1 + 2 * n2) if n1 else 0.5


@dataclass(frozen=True)
class Level:
    """One order k of a model: the counts c_k it uses and, per context (k-1)-gram, c_k(h •) and N_k(h •)."""

    keys: np.ndarray  # (U_k,) int64, sorted, as in NgramCounts
    counts: np.ndarray  # (U_k,) int32: c_k, occurrences (top order) or continuation counts
    context_total: np.ndarray  # (U_{k-1},) int32: c_k(h •)
    context_types: np.ndarray  # (U_{k-1},) int32: N_k(h •)
    discount: float

    @classmethod
    def of(cls, keys: np.ndarray, counts: np.ndarray, vocab_size: int, num_contexts: int) -> Level:
        context = keys // vocab_size  # (U_k,) id of each k-gram's context
        total = np.bincount(context, weights=counts, minlength=num_contexts).astype(np.int32)
        types = np.bincount(context[counts > 0], minlength=num_contexts).astype(np.int32)
        return cls(keys, counts, total, types, discount(counts))


class KneserNey:
    """An interpolated Kneser-Ney model of order len(levels) (the module docstring's formula)."""

    def __init__(self, levels: list[Level], vocab_size: int):
        self.levels, self.vocab_size = levels, vocab_size

    @property
    def order(self) -> int:
        return len(self.levels)

    @classmethod
    def from_counts(cls, counts: list[NgramCounts], vocab_size: int, order: int) -> KneserNey:
        """The model of `order` from `count_ngrams` of at least that order: continuation counts below it."""
        levels = []
        for k in range(1, order + 1):
            level = counts[k - 1]
            used = level.counts if k == order else level.continuation
            num_contexts = len(counts[k - 2].keys) if k > 1 else 1
            levels.append(Level.of(level.keys, used, vocab_size, num_contexts))
        return cls(levels, vocab_size)

    @classmethod
    def fit(cls, tokens: np.ndarray, vocab_size: int, order: int) -> KneserNey:
        return cls.from_counts(count_ngrams(tokens, vocab_size, order), vocab_size, order)

    def log_probs(self, tokens: np.ndarray) -> np.ndarray:
        """(N,) float64: ln P(token j | the up to n-1 tokens before it in `tokens`), for every j."""
        x = np.asarray(tokens, dtype=np.int64)  # (N,)
        n_tokens = len(x)
        p = np.full(n_tokens, 1.0 / self.vocab_size)  # P_0
        context = np.zeros(n_tokens, dtype=np.int64)  # (N,) id of the k-1 tokens before j; -1: none/unseen
        for level in self.levels:  # order k = 1, 2, ..., n
            keys = context * self.vocab_size + x
            index = np.minimum(np.searchsorted(level.keys, keys), len(level.keys) - 1)  # (N,)
            known = context >= 0  # the first k-1 positions have no k-1 tokens before them: -1 there
            found = known & (level.keys[index] == keys)
            count = np.where(found, level.counts[index], 0)  # c_k(h w)
            safe = np.where(known, context, 0)
            total = np.where(known, level.context_total[safe], 0.0)  # c_k(h •)
            types = level.context_types[safe]  # N_k(h •)
            d = level.discount
            mixed = (np.maximum(count - d, 0) + d * types * p) / np.maximum(total, 1)
            p = np.where(total > 0, mixed, p)
            context = np.concatenate(([-1], np.where(found, index, -1)[:-1]))  # the k tokens before j
        return np.log(p)

    def nll(self, tokens: np.ndarray, chunk: int = 1 << 20) -> float:
        """Mean negative log-likelihood per token, in nats (what a model run's `loss` is); `chunk` tokens
        at a time, each chunk with the n-1 tokens before it, so memory does not grow with the stream."""
        total = 0.0
        for start in range(0, len(tokens), chunk):
            before = min(start, self.order - 1)
            total -= self.log_probs(tokens[start - before : start + chunk])[before:].sum()
        return total / len(tokens)


def select_order(
    train: np.ndarray, held_out: np.ndarray, vocab_size: int, max_order: int = MAX_ORDER
) -> tuple[int, dict[int, float]]:
    """(the order 1..max_order with the lowest NLL on `held_out` when fitted on `train`, every order's NLL)."""
    counts = count_ngrams(train, vocab_size, max_order)
    nll = {n: KneserNey.from_counts(counts, vocab_size, n).nll(held_out) for n in range(1, max_order + 1)}
    best = min(nll, key=nll.get)
    return best, nll
