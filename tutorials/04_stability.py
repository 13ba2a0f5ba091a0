# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tutorial 4 — Stability of few-sample fine-tuning
#
# Fine-tune the same pretrained model on the same 1,000 questions twice, changing nothing but the
# random seed (the new head's initial weights, the order of the batches, the dropout masks), and the
# test accuracy can differ by several points. With few examples this spread is often larger than the
# gain of the method being tried. A line of work (Mosbach et al. 2021, Zhang et al. 2021) traced it to
# a few causes and proposed remedies, all available in `minitransformer.training.stability` and as options of
# `python -m adapt`. First one of the causes, then six remedies:
#
# 1. **BertAdam** (a cause, not a remedy): Adam without bias correction, as the original BERT code had
#    it; we measure what it does to the steps, then fine-tune with it and compare with plain runs;
# 2. **re-initialising the top layers** before fine-tuning;
# 3. **weighted layer pooling**: classify from a learned mix of several layers, not only the top one;
# 4. **layer-wise learning-rate decay (LLRD)**: lower layers move less;
# 5. **Mixout**: randomly reset weights to their pretrained values while training;
# 6. **weight decay toward the pretrained weights (PriorWD)**;
# 7. **stochastic weight averaging (SWA)** over the last epochs.
#
# We take them one by one: what each does to the model or the optimizer, seen on small tensors, then a
# few-sample fine-tuning run with several seeds. The end is a plot of every seed's accuracy per
# technique.
#
# The scale is a tutorial's: a small causal LM pretrained here for about half a CPU minute, TREC-6's
# official 1,000-question training subset, a handful of seeds. Read the final plot as a demonstration
# of the method, not as a verdict on the techniques: with so few seeds a box moves when you rerun it
# on another machine. `python -m minitransformer study` measures them properly (more seeds, every technique; see
# `docs/stability_study.md`).
#
# Data: `wikitext-2/wiki.valid.tokens` (pretraining) and `trec/` from the data directory
# (`MINITRANSFORMER_DATA`). Three sizes: `MINITRANSFORMER_SMOKE=1` shrinks everything to seconds; the
# default, *laptop mode*, runs every technique with 5 seeds (40 fine-tuning runs of a few seconds
# each); and `MINITRANSFORMER_FULL_STUDY=1` runs 10 seeds per technique (80 runs, about twice as long).
# tutorials/README.md gives the measured times.

# %%
import contextlib
import os
from pathlib import Path

import torch

from adapt.cli import parse_args
from adapt.run import adapt
from minitransformer import FineTuningConfig, TransformerWithClfHead
from minitransformer.data.wikitext import wikitext_path
from minitransformer.teaching import exercises, plots
from minitransformer.training import stability as st
from minitransformer.training.optimizers import make_optimizer
from pretrain.run import main as pretrain

torch.manual_seed(0)  # the same numbers on every run


@contextlib.contextmanager
def quietly(log_path: Path):
    """Send what a run prints (about ten lines per seed) to `log_path` instead of the notebook."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w", encoding="utf-8") as log, contextlib.redirect_stdout(log):
        with contextlib.redirect_stderr(log):
            yield


SMOKE = os.environ.get("MINITRANSFORMER_SMOKE") == "1"
OUT = Path(os.environ.get("MINITRANSFORMER_TUTORIAL_OUT", "runs/tutorials/04_stability"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## A small pretrained model
#
# `python -m pretrain` as a function call: a 4-layer causal LM (pre-norm, as GPT-2) trained for a few
# hundred steps on WikiText-2. It is weak (perplexity in the hundreds, tutorial 2 explains the
# numbers), which suits the subject: the less the pretrained weights know, the more fine-tuning
# depends on luck. What the call does inside (a model from a config, blocks of WikiText, one optimizer
# step after another) is tutorial 2's sections 3 and 4; here only the result matters. `--no-download`:
# the offline data folder is all it reads. `--threads`: the count this kernel already uses (set
# `OMP_NUM_THREADS` before starting Jupyter to leave cores to other work; a run that asks for more
# threads than there are free cores slows down many times over: tutorials/README.md has a measurement).
# Its log goes to a file; the cell prints where.

# %%
pretrained, dataset = OUT / "pretrained", "wikitext-2"
if SMOKE:  # a slice of the data: pretraining ends with an evaluation on the whole test split
    dataset = OUT / "wikitext-2-slice"
    dataset.mkdir(exist_ok=True)
    for split in ("valid", "test"):
        text = wikitext_path("wikitext-2", split).read_text(encoding="utf-8")
        lines = text.splitlines(keepends=True)[:300]
        (dataset / f"wiki.{split}.tokens").write_text("".join(lines), encoding="utf-8")
embed_dim, hidden_dim, num_layers = ("32", "64", "2") if SMOKE else ("128", "512", "4")
with plots.inline(False), quietly(OUT / "pretrain.log"):  # figures and log lines go to files
    status = pretrain(
        [
            "--dataset", str(dataset), "--output-dir", str(pretrained), "--overwrite",
            "--cache-dir", str(OUT / "binarized"),
            "--embed-dim", embed_dim, "--hidden-dim", hidden_dim, "--num-heads", "4", "--num-layers", num_layers,
            "--num-max-positions", "64", "--vocab-size", "2000" if SMOKE else "4000",
            "--norm-placement", "pre", "--lr", "1e-3",
            "--schedule", "cosine", "--no-rotary",  # the tiny recipe before issue 32, as measured here
            "--max-steps", "10" if SMOKE else "200", "--warmup-steps", "20",
            "--eval-every", "200", "--max-eval-batches", "5", "--sample-prompts", "--no-progress",
            "--no-download", "--threads", str(torch.get_num_threads()),  # the threads this kernel uses
        ]
    )  # fmt: skip
assert status == 0, f"pretraining failed: see {OUT / 'pretrain.log'}"
print(f"pretrained model in {pretrained} (its log: {OUT / 'pretrain.log'})")

# %% [markdown]
# Every fine-tuning run below goes through `adapt.run.adapt`, the function behind `python -m adapt`,
# with the same options as on the command line. The common part: the pretrained model, TREC-6 with
# `train_1000.label` (900 questions to train on, 100 held out to pick the best checkpoint), the
# official 500-question test set, 3 epochs at a peak learning rate of 3e-4 (warm-up, then linear
# decay), batches of 16. `finetune` prints one line, the test accuracy of each seed, and keeps the
# run's own log (about ten lines per seed) in its folder as `adapt.log`.

# %%
# Laptop mode (the default): 5 seeds per technique; MINITRANSFORMER_FULL_STUDY=1: 10 seeds, twice the time.
FULL_STUDY = os.environ.get("MINITRANSFORMER_FULL_STUDY") == "1"
SEEDS = "0" if SMOKE else ",".join(map(str, range(10 if FULL_STUDY else 5)))
NUM_SEEDS = len(SEEDS.split(","))
COMMON = [
    "--pretrained", str(pretrained), "--train-file", "train_1000.label", "--seeds", SEEDS,
    "--lr", "3e-4", "--no-progress", "--overwrite", "--threads", str(torch.get_num_threads()),
    *(["--max-steps", "4", "--eval-every", "4"] if SMOKE else ["--epochs", "3"]),
]  # fmt: skip
spread: dict[str, list[float]] = {}


def finetune(name: str, *options: str) -> None:
    """Fine-tune once per seed with `options` added to COMMON; record and print the test accuracies."""
    with plots.inline(False), quietly(OUT / f"{name}.log"):  # figures and log lines go to files
        results = adapt(parse_args([*COMMON, "--output-dir", str(OUT / name), *options]))
    spread[name] = [run["test"]["accuracy"] for run in results["runs"]]
    accuracies = ", ".join(f"{100 * a:.1f} %" for a in spread[name])
    print(f"{name}: test accuracy per seed {accuracies}  (log: {OUT / f'{name}.log'})")


# %% [markdown]
# ## 0. The baseline and its spread
#
# Plain fine-tuning: AdamW with bias correction, every layer at the same learning rate, the
# classification token's top-layer state into a new linear head.

# %%
finetune("plain")

# %% [markdown]
# Note how far apart the seeds land: this range, not the mean, is what the techniques below try to
# shrink.
#
# ## 1. BertAdam: the missing bias correction
#
# Adam keeps running averages of the gradient, m, and of its square, v, both starting at 0. After
# one step m = (1-β1)·g and v = (1-β2)·g², far below their true scale, so Adam divides them by
# (1-β1^t) and (1-β2^t). The original BERT optimizer skipped that. Its update m/√v is then too large
# at first, because √(1-β2) = 0.03 shrinks the denominator more than (1-β1) = 0.1 shrinks the
# numerator. `make_optimizer` builds both with the same betas, eps and learning rate (PyTorch's AdamW,
# and BertAdam without the correction), so we can measure the ratio of their step sizes under a
# constant gradient:

# %%
steps = [1, 10, 100, 1000]
moved = {}
for name in ("adamw", "bertadam"):
    w = torch.zeros(1, requires_grad=True)
    optimizer = make_optimizer([{"params": [w], "weight_decay": 0.0}], name, lr=1e-3)
    sizes = []
    for _ in range(steps[-1]):
        before = w.detach().clone()
        w.grad = torch.ones(1)  # the same gradient at every step
        optimizer.step()
        sizes.append((w.detach() - before).abs().item())
    moved[name] = sizes
for t in steps:
    ratio = moved["bertadam"][t - 1] / moved["adamw"][t - 1]
    print(f"step {t:>4}: BertAdam's step is {ratio:.2f} × Adam's")

# %% [markdown]
# About three times Adam's step at the very first update, more than six times at step 10, and still
# larger after a thousand steps (all printed above): (1-β1^t)/√(1-β2^t) only reaches 1 when β2^t
# vanishes, after several thousand steps. A few-sample run is over long before that (ours: three
# epochs of 900 questions in batches of 16, under 200 steps), so the whole run is made with oversized
# steps into a freshly initialised head. Mosbach et al. (2021) found that this makes BERT fine-tuning
# *unstable*: more seeds that fail. Whether it shows here as a wider spread, as lower accuracy, or both,
# the cell below prints, against the plain runs of section 0.

# %%
finetune("bertadam", "--optimizer", "bertadam")
summary = {}
for name in ("plain", "bertadam"):
    accuracies = [100 * a for a in spread[name]]
    summary[name] = sum(accuracies) / len(accuracies), max(accuracies) - min(accuracies)  # mean, span
    print(
        f"{name:>8}: mean {summary[name][0]:.1f} %, from {min(accuracies):.1f} to {max(accuracies):.1f} % "
        f"({summary[name][1]:.1f} points)"
    )
(plain_mean, plain_span), (bert_mean, bert_span) = summary["plain"], summary["bertadam"]
print(
    f"BertAdam's mean is {'lower' if bert_mean < plain_mean else 'not lower'} than the plain runs', "
    f"its span {'wider' if bert_span > plain_span else 'not wider'}"
)

# %% [markdown]
# Read the two lines side by side: a lower mean says the oversized steps cost accuracy on most seeds;
# a longer span (more points between the worst and the best seed) says they made the seeds disagree,
# the instability Mosbach et al. describe. With five seeds, only a clear difference means something.
# The last line printed says which of the two the missing correction did in this run. A rerun on the
# same machine and thread count prints the same lines (the tokenizer and every seed are deterministic);
# another machine, thread count or library version can move them. In the full-mode runs made before
# tokenizer training was deterministic, BertAdam's mean was the lower one each time while its span came
# out narrower in one run and wider in another: at this scale the cost showed as lost accuracy more
# consistently than as spread.

# %% [markdown]
# ## 2. Re-initialising the top layer
#
# The top layers of a pretrained LM are the most specialised to predicting the next word, the least
# useful for a new task, and their weights are an awkward starting point. `reinit_top_layers(model, k)`
# puts the top k layers (and everything above them: final norm, head) back to the model's own random
# initialisation and leaves the rest bit for bit as pretrained. Which blocks change:

# %%
model = TransformerWithClfHead.from_pretrained(pretrained, FineTuningConfig(num_classes=6))
before = [[p.detach().clone() for p in params] for _, params in st.block_parameters(model)]
st.reinit_top_layers(model, 1)
for (block, params), old in zip(st.block_parameters(model), before):
    change = max((p.detach() - q).abs().max().item() for p, q in zip(params, old))
    print(f"{block:<11} {'re-initialised' if change else 'unchanged':<15} max |Δw| = {change:.3f}")

# %% [markdown]
# With 4 layers, re-initialising one is a quarter of the network; the usual setting for BERT-base is
# 2 to 6 of 12 layers.

# %%
finetune("reinit-1", "--reinit-layers", "1")

# %% [markdown]
# ## 3. Weighted layer pooling
#
# The classification token's state exists after every layer; lower layers hold more general features.
# Weighted pooling feeds the classifier with Σ_l w_l·h_l / Σ_l w_l over layers `s`..top (layer 0 is
# the embedding output), with one learned weight per layer. The weights must be a registered
# parameter, or the optimizer never sees them (a bug of a well-known notebook):

# %%
weighted = TransformerWithClfHead.from_pretrained(
    pretrained, FineTuningConfig(num_classes=6, pooling="weighted", pooling_layer_start=2)
)
print({name: tuple(p.shape) for name, p in weighted.named_parameters() if "layer_weights" in name})

# %% [markdown]
# With `pooling_layer_start=2` it mixes layer 2 up to the top: layers 2, 3 and 4 of the 4-layer model
# (smoke mode's 2-layer model keeps only layer 2, a single weight). Our model is pre-norm: the top state goes
# through the final LayerNorm before the head, so the pooler passes every intermediate state through
# the same norm, to put all of them on the scale the classifier expects.

# %%
finetune("weighted-2-4", "--pooling", "weighted", "--layer-start", "2")
learned = TransformerWithClfHead.from_pretrained(OUT / "weighted-2-4" / "seed_0").pooler.layer_weights
pooled_layers = list(range(2, 2 + len(learned)))  # layer 2 up to the top
print(f"learned layer weights (seed 0) of layers {pooled_layers}:", [round(w, 3) for w in learned.tolist()])

# %% [markdown]
# The weights start at 1.0 and have barely moved. That is expected here, not a bug: Adam moves each
# parameter by at most about the learning rate per step, and 3e-4 over a run of about 170 steps allows
# a change of some 0.05, whatever the gradient says. The mix stays close to a plain average of the
# pooled layers. To let the model *choose* layers, the weights need a learning rate of their own,
# some hundred times larger, or a much longer run.

# %% [markdown]
# ## 4. Layer-wise learning-rate decay
#
# The head gets the base learning rate, the top layer γ times it, the layer below γ² times it, and
# so on down to the embeddings. Each block has two groups, one with weight decay and one without
# (biases, LayerNorms), and every trainable parameter must be in exactly one of them (the function
# checks it):

# %%
for group in st.llrd_parameter_groups(model, lr=3e-4, decay=0.8, weight_decay=0.01):
    count = sum(p.numel() for p in group["params"])
    print(f"{group['name']:<22} lr {group['lr']:.2e}  {count:>9,} parameters")

# %% [markdown]
# In a run, the schedule (warm-up, then linear decay) multiplies every group's rate by the same
# factor, so the ratios hold at every step. `adapt` records each group's rate at every step and
# draws them in the run's `plots/llrd_lr.png`: one line per block, from the head (top) down to the
# embeddings, all with the same shape.

# %%
finetune("llrd-0.8", "--llrd", "0.8")
plots.show(OUT / "llrd-0.8" / "plots" / "llrd_lr.png")  # the figure the run saved

# %% [markdown]
# ## 5. Mixout
#
# Dropout replaces a unit by 0; Mixout replaces a weight by its *pretrained* value. For each input
# column, with probability p, the column is reset to the pretrained w, and the result is rescaled:
# ((1-M)⊙u + M⊙w − p·w)/(1−p), where u is the current weight and M the mask. The rescaling makes
# the expectation exactly u, so evaluation uses u as it is. We check it on a 3 × 4 weight:

# %%
pretrained_w, current_u = torch.zeros(3, 4), torch.randn(3, 4)
mixout = st.Mixout(pretrained_w, p=0.7).train()
for draws in (10, 100, 10_000):
    mean = torch.stack([mixout(current_u) for _ in range(draws)]).mean(0)
    print(f"mean of {draws:>6} draws: max |mean - u| = {(mean - current_u).abs().max().item():.3f}")
print("eval mode returns u itself:", torch.equal(mixout.eval()(current_u), current_u))

# %% [markdown]
# Each draw is far from u (with p = 0.7 most columns are reset), but the average converges to u:
# training sees a noisy version of the weights centred on the current ones, with the noise pulling
# towards the pretrained values. Mixout takes dropout's place in the backbone. With a small model,
# p = 0.7 (the paper's value for BERT-large) resets too much to learn anything in a few hundred
# steps; we use p = 0.3.

# %%
finetune("mixout-0.3", "--mixout", "0.3")

# %% [markdown]
# ## 6. and 7. PriorWD and SWA
#
# **PriorWD** changes weight decay's target: each step subtracts lr·λ·(w − w_pretrained) instead of
# lr·λ·w, so decay pulls toward what pretraining learned rather than toward zero (the new head, which
# has no pretrained value, still decays toward zero). **SWA** averages the weights at the end of each
# epoch from epoch E on, with a constant small learning rate in between; the average, not the last
# weights, is evaluated and saved. Our model has LayerNorm and no BatchNorm, so the average needs no
# extra pass over the data.

# %%
finetune("prior-wd-0.01", "--prior-wd", "0.01")
finetune("swa-from-2", "--swa-start", "1" if SMOKE else "2", "--swa-lr", "1e-4")

# %% [markdown]
# ## The spread, technique by technique

# %%
for name, accuracies in spread.items():
    values = ", ".join(f"{100 * a:.1f}" for a in accuracies)
    print(f"{name:<14} min {100 * min(accuracies):5.1f}  max {100 * max(accuracies):5.1f}  ({values})")
plots.plot_seed_spread(
    {name: [100 * a for a in accuracies] for name, accuracies in spread.items()},
    ylabel="test accuracy on TREC-6 (%)",
    title=f"Fine-tuning on 900 TREC questions, {NUM_SEEDS} seed{'s' * (NUM_SEEDS > 1)} per technique",
    path=OUT / "seed_spread.png",
)

# %% [markdown]
# How to read it: each dot is one seed; the box spans the middle half of the seeds (from the first
# to the third quartile) with the median as its line, and the whiskers reach the best and worst seed
# (in smoke mode, with one seed, a dot is all there is). A technique helps stability if its box and
# whiskers are *shorter* than the plain run's, and helps accuracy if it sits *higher*. With five seeds
# (laptop mode, the default) or ten (`MINITRANSFORMER_FULL_STUDY=1`), a difference of a point or two
# between techniques is within what another set of seeds would change; `python -m minitransformer study`
# measures the same techniques with more seeds and statistics (docs/stability_study.md).
#
# ## Exercise: layer-wise learning rates
#
# Write `llrd_rates(lr, decay, num_layers)` returning one learning rate per block, in the order of
# section 4's table: the head, the top layer, …, layer 1, the embeddings (num_layers + 2 rates). The
# check compares them with the groups `stability.llrd_parameter_groups` builds for a 3-layer model.
# (Answer: `exercises.solution_llrd`.)


# %%
def llrd_rates(lr, decay, num_layers):
    """[head, layer L, …, layer 1, embeddings]"""
    raise NotImplementedError  # your code here: one line


# %%
if exercises.use_solutions():  # the tests run the reference answer; you run yours
    llrd_rates = exercises.solution_llrd
exercises.check_llrd(llrd_rates)

# %% [markdown]
# ## Exercise: one Adam step, with the bias correction BertAdam left out
#
# Write `adam_update(grad, m, v, step, lr, betas, eps)` returning `(update, m, v)`: the new moving
# averages m ← β1·m + (1 − β1)·g and v ← β2·v + (1 − β2)·g², their bias-corrected versions
# m̂ = m / (1 − β1^step), v̂ = v / (1 − β2^step) (`step` counts from 1), and the update
# lr · m̂ / (√v̂ + eps) that is subtracted from the parameter. The check runs five steps and compares the
# parameter with `torch.optim.Adam`'s; if you leave the correction out, as BertAdam did, it says so. Why
# it matters: at step 1, without the correction, m is 0.1·g and √v is 0.03·|g|, an update 3× the
# corrected one in size at the very moment the classifier head is random. (Answer:
# `exercises.solution_adam_update`.)


# %%
def adam_update(grad, m, v, step, lr, betas, eps):
    """→ (update, m, v); the parameter becomes parameter - update"""
    raise NotImplementedError  # your code here: five lines


# %%
if exercises.use_solutions():  # the tests run the reference answer; you run yours
    adam_update = exercises.solution_adam_update
exercises.check_adam_update(adam_update)

# %% [markdown]
# ## For the test harness (not part of the lesson)
#
# What `tests/e2e/test_tutorials.py` reads from this file: the figures it must show, and the data
# files, optional packages and checkpoints it needs (the test is skipped when one is missing).

# %%
DATA = ["wikitext-2/wiki.valid.tokens", "trec/train_1000.label", "trec/TREC_10.label"]
FIGURES = ["llrd-0.8/plots/llrd_lr.png", "seed_spread.png"]
for name in FIGURES:
    assert (OUT / name).is_file(), f"missing figure {name}"
    print(OUT / name)
