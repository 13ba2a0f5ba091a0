"""`python -m pretrain --baseline ngram`: the classical language model to show beside the Transformer.

An interpolated Kneser-Ney n-gram model (`minitransformer.ngram`) over the very tokens a model run
reads: the run's tokenizer (trained on the training split as a model run trains it, or --tokenizer's,
or --init-from's), the same binarized cache and the same splits (offline: trained on WikiText-2 valid,
evaluated on test). The evaluated split is the one a model run reports, so it cannot also choose the
order: the order (1 to MAX_ORDER) is chosen on a held-out last tenth of the training split, fitted on
the rest; the model of that order is then fitted on the whole training split and scores the evaluated
split once, reported as a model run reports it (`word_perplexity`).

The folder holds what a model run's holds where it applies: training_args.json, tokenizer.json,
run_state.json and metrics.jsonl (a `held_out` event per order, then `final` and `summary`).
"""

from __future__ import annotations

import math

import numpy as np

from minitransformer.data.wikitext import word_perplexity
from minitransformer.ngram import MAX_ORDER, KneserNey, select_order
from minitransformer.runs.metrics_log import MetricsLog
from minitransformer.runs.run_dir import open_run_dir
from minitransformer.runs.run_state import WallClock, write_state

from .cli import PretrainPlan
from .sources import RUN_FILES, run_tokens

HELD_OUT = 0.1  # the share of the training split that chooses the order


def held_out_start(tokens: np.ndarray, separator: int) -> int:
    """Where the last HELD_OUT of `tokens` begins: the start of the line at that point."""
    cut = int(len(tokens) * (1 - HELD_OUT))
    line_ends = np.flatnonzero(tokens[:cut] == separator)
    start = int(line_ends[-1]) + 1 if len(line_ends) else cut
    if not 0 < start < len(tokens):
        raise ValueError(f"the training split has {len(tokens)} tokens: too few to hold out a tenth")
    return start


def ngram_baseline(plan: PretrainPlan, clock: WallClock) -> None:
    """Fit, choose the order, score the evaluated split; log and print it as a model run does."""
    out = open_run_dir(plan, RUN_FILES, "finish", step=0)
    log = MetricsLog(out / "metrics.jsonl")
    if plan.resume:  # a killed baseline keeps no checkpoint: it starts again
        log.keep(lambda *_: False)
    tokenizer, train, evaluated = run_tokens(plan, out)
    vocab = tokenizer.vocab_size

    start = held_out_start(train.ids, train.meta["separator_id"])
    order, held_out_nll = select_order(train.ids[:start], train.ids[start:], vocab, MAX_ORDER)
    chosen_on = (
        f"the last {HELD_OUT:.0%} of {plan.dataset}/{plan.train_split} ({train.num_tokens - start:,} tokens), "
        "fitted on the rest"
    )
    for n, nll in held_out_nll.items():
        log.log("held_out", 0, order=n, split=plan.train_split, loss=nll, ppl=math.exp(nll))
    print(
        f"held-out token perplexity by order ({chosen_on}): "
        + ", ".join(f"{n}: {math.exp(nll):.1f}" for n, nll in held_out_nll.items())
    )

    nll = KneserNey.fit(train.ids, vocab, order).nll(evaluated.ids)
    final = {
        "loss": nll,
        "ppl": math.exp(min(nll, 50.0)),
        "word_ppl": word_perplexity(nll, evaluated.tokens_per_word),
        "partial": False,
    }
    log.log("final", 0, split=plan.valid_split, **final)
    elapsed = clock.elapsed()
    model = f"interpolated Kneser-Ney {order}-gram"
    log.log(
        "summary", 0, wall_time_s=elapsed, splits=plan.splits, model=model, order_chosen_on=chosen_on, **final
    )
    write_state(out, "complete", step=0, wall_time_s=elapsed)
    print(
        f"{model} (order chosen on {chosen_on}) on {plan.dataset}/{plan.valid_split}: word perplexity "
        f"{final['word_ppl']:.1f} (token {final['ppl']:.1f}); done in {elapsed:.1f} s ({plan.splits})"
    )
