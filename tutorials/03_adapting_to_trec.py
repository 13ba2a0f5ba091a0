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
# # Tutorial 3 — Adapting a pretrained model to TREC
#
# A pretrained language model knows a lot about text but has never been asked a question about it.
# *Adaptation* turns it into a classifier for a task with few labelled examples. The task here is
# the hands-on's: **TREC question classification**: is a question asking for an abbreviation
# (ABBR), a description (DESC), an entity (ENTY), a person (HUM), a location (LOC) or a number
# (NUM)? We cover:
#
# 1. the data: 5,452 labelled training questions and a test set of 500,
# 2. the classification token, and why a causal model needs it at the *end*,
# 3. batches of unequal length: the padding mask and dynamic padding,
# 4. the classification head on top of the pretrained model,
# 5. three ways to adapt (fine-tuning, feature extraction, adapters) and a random-initialisation
#    baseline with the same architecture,
# 6. the confusion matrix, and a few questions of our own.
#
# **The pretrained model.** We reuse the model of tutorial 2 (`runs/tutorials/02_pretraining/causal_lm`)
# when it exists; otherwise we pretrain the same model here for a few minutes. Either way it is a
# 2M-parameter causal LM trained on WikiText-2 *valid* only (the offline data), far smaller than the
# hands-on's 50M parameters and 100M words, so expect test errors of tens of percent, not the
# hands-on's 3.6 %. The comparisons between the setups are what this tutorial is about.
#
# `MINITRANSFORMER_SMOKE=1` shrinks everything to seconds (a 1,000-question training file, a tiny
# model, a few steps); `MINITRANSFORMER_TUTORIAL_OUT` chooses where figures and runs go.

# %%
import json
import os
from pathlib import Path

import torch

import adapt.cli
import adapt.run
import pretrain.run
from minitransformer import FineTuningConfig, TransformerWithClfHead
from minitransformer.classifier import Classifier
from minitransformer.data.classification import (
    ClassificationDataset,
    LengthBucketSampler,
    collate_classification,
    encode_for_classification,
    load_trec,
    tokens_per_epoch,
)
from minitransformer.data.wikitext import read_lines, wikitext_path
from minitransformer.teaching import exercises, plots
from minitransformer.tokenization import Tokenizer

torch.manual_seed(0)  # the same numbers on every run
SMOKE = os.environ.get("MINITRANSFORMER_SMOKE") == "1"
OUT = Path(os.environ.get("MINITRANSFORMER_TUTORIAL_OUT", "runs/tutorials/03_adapting_to_trec"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## 0. A pretrained causal language model
#
# Tutorial 2's model is used if it was trained at least as long as we would train one here;
# otherwise `pretrain` trains one with tutorial 2's options (4 layers of 128 dimensions, pre-norm).
# `--no-download`: the offline data folder has the WikiText-2 splits this run uses; without it the run
# would first try to fetch the missing training split and print the failure. The model we load is the
# one of the last step, not the best checkpoint the run also keeps: with no training split offline,
# `pretrain` evaluates on WikiText-2 *test*, and a checkpoint chosen by its test loss would make the
# test perplexity printed below look better than it is (tutorial 2, section 5).

# %%
PRETRAIN_STEPS = 10 if SMOKE else 150
# Tutorial 2's model, found beside this tutorial's output folder (both default to runs/tutorials/), or
# wherever MINITRANSFORMER_TUTORIAL2_MODEL points.
tutorial_2_model = Path(
    os.environ.get("MINITRANSFORMER_TUTORIAL2_MODEL") or OUT.parent / "02_pretraining" / "causal_lm"
)


smoke_options = [
    *("--embed-dim", "32", "--hidden-dim", "64", "--num-layers", "2", "--vocab-size", "1000"),
    *("--num-max-positions", "32", "--max-eval-batches", "2", "--eval-batch-size", "64"),
]
PRETRAIN_OPTIONS = [  # section 8 pretrains a masked LM with the same options
    *("--preset", "tiny", "--overwrite"),
    *("--embed-dim", "128", "--hidden-dim", "512", "--norm-placement", "pre", "--lr", "3e-3"),
    *("--no-rotary", "--schedule", "cosine", "--warmup-steps", "60"),  # the tiny recipe before issue 32
    *("--max-steps", str(PRETRAIN_STEPS), "--eval-every", str(PRETRAIN_STEPS)),
    *("--cache-dir", str(OUT / "binarized"), "--sample-prompts"),
    *("--threads", str(torch.get_num_threads()), "--no-progress", "--no-download"),
    *(smoke_options if SMOKE else []),
]


def pretrained_steps(run_dir: Path) -> int:
    """Optimizer steps of a finished `pretrain` run (0 when there is no finished run there)."""
    if not (run_dir / "model.safetensors").is_file():
        return 0
    return json.loads((run_dir / "training_args.json").read_text())["max_steps"] or 0


if not SMOKE and pretrained_steps(tutorial_2_model) >= PRETRAIN_STEPS:
    pretrained = tutorial_2_model
else:
    pretrained = OUT / "pretrained"
    with plots.inline(False):  # the run saves its own figures in its folder
        exit_code = pretrain.run.main([*PRETRAIN_OPTIONS, "--output-dir", str(pretrained)])
    assert exit_code == 0, "pretraining failed: see the message above"
summary = [r for r in plots.read_metrics(pretrained / "metrics.jsonl") if r["event"] == "final"][-1]
print(f"pretrained model: {pretrained} ({pretrained_steps(pretrained)} steps, "
      f"test word perplexity {summary['word_ppl']:.0f} on WikiText-2)")  # fmt: skip
tokenizer = Tokenizer.from_pretrained(pretrained)

# %% [markdown]
# ## 1. The data
#
# Each line of the TREC files is `COARSE:fine question`; we use the 6 coarse labels. `load_trec`
# numbers the labels alphabetically (ABBR = 0 … NUM = 5), so the ids are the same in every run.
# The classes are unbalanced: abbreviations are rare (under 2 %).

# %%
train_file = "train_1000.label" if SMOKE else "train_5500.label"
train, test = load_trec(train_file=train_file)
print(f"{len(train):,} training questions, {len(test):,} test questions")
print("training questions per label:", train.counts())
for label in range(len(train.label_names)):
    example = train.texts[train.labels.index(label)]
    print(f"  {train.label_names[label]:>4}: {example}")

# %% [markdown]
# ## 2. The classification token
#
# The classifier needs *one* vector per question. The hands-on adds a special token, `[CLS]`, and
# reads the model's final hidden state at that position: attention lets it gather whatever the
# question says. Where to put it depends on the attention mask:
#
# - in a **causal** model a token only sees itself and the tokens before it, so the classification
#   token must come **last**: only there has it seen the whole question;
# - a bidirectional model (BERT) sees everything from everywhere and puts `[CLS]` first.
#
# `encode_for_classification` tokenizes and appends (or prepends) the token. We check the claim on
# the pretrained model: two questions that differ in their first word, with `[CLS]` at the end and
# at the start, and how far apart the two hidden states at the `[CLS]` position are.

# %%
questions = ["Who invented the telephone ?", "When invented the telephone ?"]
lm = TransformerWithClfHead.from_pretrained(pretrained).eval()  # the backbone, no head trained yet
for position in ("end", "start"):
    ids = encode_for_classification(questions, tokenizer, max_len=64, clf_position=position)
    at_clf = []
    for question_ids in ids:  # one question at a time: no padding needed
        x = torch.tensor([question_ids])  # (1, T)
        with torch.no_grad():
            h = lm.transformer(x).last_hidden_state  # (1, T, E)
        at_clf.append(h[x == tokenizer.cls_id][0])  # (E,): the state at the [CLS] position
    print(f"[CLS] at the {position:>5}: {[tokenizer.id_to_token(i) for i in ids[0]]}")
    print(f"   distance between the two questions' [CLS] states: {(at_clf[0] - at_clf[1]).norm():.3f}")

# %% [markdown]
# At the start, the `[CLS]` state is the same for both questions (distance 0): the causal mask hides
# the whole question from it, so a classifier reading it could only ever predict one class. At the
# end it differs. (Notice also how the WikiText tokenizer cuts `Who` into `Wh ##o`: Wikipedia
# asks few questions, and the tokenizer is part of what was pretrained.) The same picture, as the
# causal mask of the question with `[CLS]` appended: the last row, the one the classifier reads, is
# the only one that sees every token.
#
# With `[CLS]` first, `encode_for_classification` also closes the question with `[SEP]`, as printed
# above: that is BERT's input format (BERT was pretrained on pairs of segments, each closed by `[SEP]`),
# kept so that a BERT checkpoint sees what it was trained on. A causal model reads `[CLS]` last and
# needs no end marker.

# %%
end_tokens = [tokenizer.id_to_token(i) for i in encode_for_classification(questions[:1], tokenizer, 64)[0]]
plots.plot_mask(
    lm.transformer.causal_mask[: len(end_tokens), : len(end_tokens)],
    end_tokens,
    title="Causal mask with the classification token last: only [CLS] sees the whole question",
    path=OUT / "classification_token.png",
)

# %% [markdown]
# ## 3. Batches of unequal length: padding
#
# Questions have different lengths, but a batch is one rectangular tensor. `collate_classification`
# pads each row with `[PAD]` up to the longest row *of this batch* and returns, with the ids `(B, T)`,
# two masks of the same shape and the labels (the shapes are printed below):
#
# - `padding_mask` `(B, T)`: True at the padding, which attention must never look at (tutorial 1);
# - `clf_tokens_mask` `(B, T)`: True at the single classification token of each row, where the head reads;
# - `labels` `(B,)`: one class id per row.
#
# Because we put `[CLS]` before the padding, the causal model's `[CLS]` never sees padding at all;
# the padding mask still matters for any model that looks to the right (BERT).

# %%
sample = [2, 40, 7, 300]  # four training questions of different lengths
encoded = encode_for_classification([train.texts[i] for i in sample], tokenizer, max_len=64)
batch = collate_classification(
    [{"input_ids": ids, "label": train.labels[i]} for ids, i in zip(encoded, sample)],
    tokenizer.pad_id,
    tokenizer.cls_id,
)
for name, tensor in batch.items():
    print(f"{name:>16} {tuple(tensor.shape)}")
row_labels = [" ".join(train.texts[i].split()[:4]) + " …" for i in sample]
plots.plot_mask(
    ~batch["padding_mask"],
    [str(j) for j in range(batch["input_ids"].size(1))],
    title="A padded batch of four questions (each ends with its [CLS] token)",
    row_labels=row_labels,
    xlabel="position in the batch",
    ylabel="question",
    true_label="real token or [CLS]",
    false_label="padding",
    path=OUT / "padding_mask.png",
)

# %% [markdown]
# **Dynamic padding.** The hands-on padded every question to the longest one in the dataset. Padding
# only up to the longest row *of each batch* costs nothing and saves work; grouping questions of
# similar length into the same batch (`LengthBucketSampler`) saves more. `tokens_per_epoch` counts
# the positions the model processes in one epoch, padding included:

# %%
train_ids = encode_for_classification(train.texts, tokenizer, max_len=lm.config.num_max_positions)
lengths = ClassificationDataset(train_ids, train.labels).lengths()
random_batches = [
    list(b)
    for b in torch.utils.data.BatchSampler(
        torch.randperm(len(lengths), generator=torch.Generator().manual_seed(0)).tolist(), 16, drop_last=False
    )
]
bucketed_batches = list(LengthBucketSampler(lengths, 16, shuffle=True, seed=0))
real = sum(lengths)
for name, positions in (
    ("pad to the longest question of the dataset", tokens_per_epoch(lengths, random_batches, pad_to=max(lengths))),
    ("pad to the longest row of each random batch", tokens_per_epoch(lengths, random_batches)),
    ("length-bucketed batches, padded per batch", tokens_per_epoch(lengths, bucketed_batches)),
):  # fmt: skip
    print(f"{name:>45}: {positions:>8,} positions per epoch ({1 - real / positions:5.1%} padding)")

# %% [markdown]
# The work per epoch drops several times over, with exactly the same real tokens; `python -m adapt`
# buckets by default (`--pad-to-max` restores the hands-on's way).
#
# ## 4. The classification head
#
# `TransformerWithClfHead.from_pretrained` loads the pretrained weights into the backbone and adds
# what is new: a linear layer from the `[CLS]` state (E numbers) to one score per class, drawn at
# random. The loading report lists the added and the discarded weights. (The LM head's matrix is the
# token-embedding matrix itself, tied, so nothing is discarded.)

# %%
model, info = TransformerWithClfHead.from_pretrained(
    pretrained, FineTuningConfig(num_classes=len(train.label_names)), output_loading_info=True
)
model.eval()
print("added:", info["added"], "— discarded:", info["discarded"] or "nothing")
print("classification head:", model.classification_head)

# %% [markdown]
# The head is not the only thing that starts untrained. `[CLS]` never occurs in the pretraining text,
# so its row of the token-embedding matrix was never the *input* of a forward pass: as an input it got
# no gradient at all. With tied weights the same row is also `[CLS]`'s output vector in the LM head,
# where every softmax of pretraining taught it one thing only: "never the next token". Compare its row
# with the rows of words the model has read, and with rows of a freshly initialised model:

# %%
embeddings = model.transformer.tokens_embeddings.weight.detach()  # (V, E)
fresh = TransformerWithClfHead(model.config, FineTuningConfig(num_classes=len(train.label_names)))
fresh_norm = fresh.transformer.tokens_embeddings.weight.detach().norm(dim=-1).mean()
read_ids = sorted({i for q in train.texts[:500] for i in tokenizer.encode(q)})  # tokens the LM has read
pretraining_text = list(read_lines(wikitext_path("wikitext-2", "valid")))  # what the LM was trained on
print(
    "[CLS] in the pretraining text:",
    sum(ids.count(tokenizer.cls_id) for ids in tokenizer.encode_batch(pretraining_text)),
    "times",
)
print(f"row norm of [CLS]: {embeddings[tokenizer.cls_id].norm():.3f}")
print(
    f"mean row norm of the {len(read_ids)} tokens of 500 questions: {embeddings[read_ids].norm(dim=-1).mean():.3f}"
)
print(f"mean row norm at initialisation: {fresh_norm:.3f}")

# %% [markdown]
# In full mode (tutorial 2's model) the `[CLS]` row has grown *larger* than the rows of the words the
# model read, which themselves grew from their initial size (smoke mode trains too little to show it).
# It was trained, but only as an *output*: pushed away from the hidden states so that `[CLS]` gets a
# low probability. As an *input*, it is nothing the layers have learned to read — the classification
# token enters the first layer as an unusual, large vector — and what it should gather is learned
# from zero during fine-tuning. This matters most for **feature extraction** below: with the backbone
# and its embeddings frozen, the classifier has to work with whatever that vector makes the frozen
# layers produce.

# %% [markdown]
# The forward pass is the backbone, the state at the classification token, dropout and the linear
# layer. By hand, on our padded batch, against the library:

# %%
with torch.no_grad():
    h = model.transformer(
        batch["input_ids"], padding_mask=batch["padding_mask"]
    ).last_hidden_state  # (B, T, E)
    by_hand = model.classification_head(h[batch["clf_tokens_mask"]])  # (B, C): one [CLS] per row
    logits = model(batch["input_ids"], batch["clf_tokens_mask"], padding_mask=batch["padding_mask"])
print("logits (B, C):", tuple(logits.shape), "— same as by hand:", torch.allclose(by_hand, logits, atol=1e-5))
assert torch.allclose(by_hand, logits, atol=1e-5)

# %% [markdown]
# ## 5. Three ways to adapt, and a baseline
#
# - **fine-tuning**: train everything, backbone and head, with a small learning rate (the hands-on's
#   choice, and usually the most accurate when the pretrained model is good; one full copy of the
#   model per task. Whether it wins with our small pretrained model, the results below say);
# - **feature extraction**: freeze the backbone, train the head only: the pretrained features are
#   used as they are;
# - **adapters** (Houlsby et al., 2019): freeze the backbone but insert small bottleneck layers
#   (E → 32 → E, with a residual) after the attention and the feed-forward of every block, and train
#   those and the head: a few percent of the parameters per task. Houlsby et al. also train every
#   layer norm's scale and shift; ours keep them frozen, so that an adapted model is the pretrained
#   one, untouched, plus new weights only (one pretrained copy serves every task). The norms would add
#   4·E numbers per block, a small share next to the adapters: `--scheme finetune` is there when you
#   want more to move.
#
# `adapt.run.freeze_for_scheme` is what `python -m adapt --scheme` applies. The parameters each
# scheme trains:

# %%
for scheme in ("finetune", "features", "adapters"):
    ft = FineTuningConfig(num_classes=len(train.label_names), adapters_dim=32 if scheme == "adapters" else 0)
    candidate = TransformerWithClfHead.from_pretrained(pretrained, ft)
    adapt.run.freeze_for_scheme(candidate, scheme)
    trainable, total = candidate.num_parameters(trainable_only=True), candidate.num_parameters()
    print(f"{scheme:>9}: trains {trainable:>9,} of {total:,} parameters ({trainable / total:7.2%})")

# %% [markdown]
# What a run repeats, one step of fine-tuning written out: the model of section 4, the padded batch of
# section 3, the cross-entropy of the logits against the labels, one optimizer step. `python -m adapt`
# wraps exactly this in an Ignite engine, with batches from the whole training set, a schedule,
# validation, the best checkpoint kept, and the test set at the end.

# %%
step_model = TransformerWithClfHead.from_pretrained(
    pretrained, FineTuningConfig(num_classes=len(train.label_names))
)
step_model.train()
step_optimizer = torch.optim.AdamW(step_model.parameters(), lr=3e-4)
for step in range(3):  # the same batch three times: the loss should fall
    logits = step_model(
        batch["input_ids"], batch["clf_tokens_mask"], padding_mask=batch["padding_mask"]
    )  # (B, C)
    loss = torch.nn.functional.cross_entropy(logits, batch["labels"])
    step_optimizer.zero_grad()
    loss.backward()
    step_optimizer.step()
    print(f"step {step}: loss {loss.item():.3f}")

# %% [markdown]
# Now the runs, with `python -m adapt` called from Python (`adapt.run.adapt` returns the results).
# The **baseline** is the very same architecture and tokenizer with random weights
# (`--pretrained none --architecture-from DIR`): whatever it lacks is what pretraining brought.
# Every run holds out 10 % of the training questions for validation, keeps the checkpoint with the
# best validation accuracy and reports accuracy on the 500 test questions. Fine-tuning and the
# baseline train the same weights with the same learning rate; the frozen schemes, which train only
# a few new weights, get a larger one (the usual practice).

# %%
setups = {
    "fine-tuning": ["--pretrained", str(pretrained), "--scheme", "finetune", "--lr", "3e-4"],
    "fine-tuning + LM loss": [
        "--pretrained",
        str(pretrained),
        "--scheme",
        "finetune",
        "--lr",
        "3e-4",
        "--lm-coef",
        "0.5",
    ],
    "feature extraction": ["--pretrained", str(pretrained), "--scheme", "features", "--lr", "2e-3"],
    "adapters": ["--pretrained", str(pretrained), "--scheme", "adapters", "--lr", "1e-3"],
    "random init": ["--pretrained", "none", "--architecture-from", str(pretrained), "--lr", "3e-4"],
}
common = [
    *("--train-file", train_file, "--batch-size", "16"),
    *(("--max-steps", "15") if SMOKE else ("--epochs", "3")),
    *("--threads", str(torch.get_num_threads()), "--no-progress", "--overwrite"),
]
results = {}
for name, options in setups.items():
    run_dir = (OUT / "runs" / name.replace(" ", "_")).resolve()
    args = adapt.cli.parse_args([*options, *common, "--output-dir", str(run_dir)])
    with plots.inline(False):  # each run saves its own figures; we draw the ones we discuss
        results[name] = adapt.run.adapt(args)

print(f"{'setup':>22}  test accuracy  test error  macro-F1")
for name, result in results.items():
    accuracy, f1 = result["test_accuracy"]["mean"], result["test_macro_f1"]["mean"]
    print(f"{name:>22}  {accuracy:12.1%}  {1 - accuracy:10.1%}  {f1:8.3f}")
ranking = sorted(results, key=lambda name: results[name]["test_accuracy"]["mean"], reverse=True)
print("from the most to the least accurate:", " > ".join(ranking))
gap = results["fine-tuning"]["test_accuracy"]["mean"] - results["random init"]["test_accuracy"]["mean"]
print(f"fine-tuning minus random init: {100 * gap:+.1f} points")

# %% [markdown]
# The table above is this run's (one seed each; tutorial 4 shows how much another seed moves a
# fine-tuning result: several points on a few hundred test questions). What to read in it:
#
# - **fine-tuning vs feature extraction**: a frozen LM's `[CLS]` state was never trained to sum up a
#   question (it was trained to predict the next word, and `[CLS]`'s embedding was trained only as an
#   output, never as something the layers read, as seen in section 4), so a linear head on top of it
#   does far worse than letting the whole network adjust: tens of points here;
# - **adapters** land in between: a few percent of the weights, inserted inside every block, move
#   the frozen features a good part of the way towards the task;
# - **the auxiliary LM loss** (`--lm-coef 0.5`, the hands-on's and GPT's multi-task fine-tuning) adds
#   half the language-modelling loss on the same questions to the classification loss, to keep the
#   backbone a language model while it specialises. Compare the two fine-tuning rows: with one seed
#   and 500 test questions, a difference of a few points is within the seed-to-seed spread;
# - **pretrained vs random init**: the last printed line gives the gap. On the project's machine (one
#   thread, tutorial 2's model of the same machine) it reads +2.0 points: fine-tuning above the
#   baseline, with one seed each a lean, not a verdict. A rerun on the same machine with the same thread
#   count prints the same table; another machine, thread count or library version can change its
#   numbers, and with them a gap of a few points. How much the language model knows decides it. An
#   earlier version of this tutorial pretrained with the earlier `tiny` recipe (AdamW and the hands-on's
#   initialisation; `docs/tiny_recipe.md` compares the two) and the baseline *won* in each of three
#   runs: a briefly trained LM plus a tokenizer learned from Wikipedia, which asks few questions,
#   against 5,000 labelled questions, enough for a small model to learn TREC's telling words (who,
#   where, how many) from scratch. Pretraining pays off when the language model has learned more than
#   the task's own data can teach: the hands-on's 50M-parameter model, pretrained for about 15 hours on
#   8 V100 GPUs (some 120 GPU-hours) on WikiText-103, reached 96.4 % (its published result);
#   `docs/cpu_pretraining.md` measures, over 5 seeds, what 40 minutes of CPU pretraining buy over random
#   init. Pretrain longer (`--max-steps`) and rerun this section to watch the gap grow.
#
# ## 6. Where the errors are
#
# Rows are the true classes, columns the predicted ones; each row sums to 1. The pretrained and the
# random-init model side by side:

# %%
label_names = train.label_names
for name, figure in (
    ("fine-tuning", "confusion_pretrained.png"),
    ("random init", "confusion_random_init.png"),
):
    run = results[name]["runs"][0]
    plots.plot_confusion_matrix(
        run["test"]["confusion"],
        label_names,
        title=f"TREC-6 test, {name}",
        path=OUT / figure,
    )
    recalls = {label: round(v["recall"], 2) for label, v in run["test"]["per_class"].items()}
    abbr = run["test"]["confusion"][label_names.index("ABBR")]  # the ABBR row: counts per predicted class
    print(f"{name}: recall per class {recalls}; ABBR: {abbr[label_names.index('ABBR')]} of {sum(abbr)} found")

# %% [markdown]
# Read the recall of each class, printed above (the diagonals of the figures). On the project's machine
# both models recognise almost every DESC question, and ENTY is the weakest large class of both: "What"
# questions whose answer is a thing ("What is the name of…", "What kind of…") look like the "What"
# questions of the other classes, and its errors spread over all of them. The rarest class, ABBR (under
# 2 % of the training questions, section 1), is the least stable: the test set has only a handful of
# ABBR questions (printed, with how many each model found; here both find the same number), so each one
# moves its recall by many points, and one answer changed by another seed or machine can reverse which
# model finds more of them.
#
# ## 7. Asking our own questions
#
# `minitransformer.classifier.Classifier` loads a run (the seed with the best validation accuracy) with its
# tokenizer and label names; `python -m minitransformer predict --model DIR "question"` does the same from
# a terminal.

# %%
classifier = Classifier(OUT / "runs" / "fine-tuning")
mine = [
    "Who painted the Mona Lisa ?",
    "How many moons does Jupiter have ?",
    "Where is the Eiffel Tower ?",
    "What does NASA stand for ?",
    "Why is the sky blue ?",
]
for question, probs in zip(mine, classifier.predict(mine)):
    top = list(probs.items())[:2]
    print(f"{question:40} → {top[0][0]} ({top[0][1]:.2f}), then {top[1][0]} ({top[1][1]:.2f})")

# %% [markdown]
# ## 8. A masked LM, with `[CLS]` first
#
# BERT's recipe instead of GPT's: pretrain with the masked objective of tutorial 2 (bidirectional
# attention, 15 % of the tokens hidden and predicted), then fine-tune with the classification token
# *first* — a bidirectional model sees the whole question from any position, and `adapt` picks the
# start by itself for a masked LM (`--clf-position auto`). It is pretrained with section 0's options:
# the same data and model size, `PRETRAIN_STEPS` steps and a tokenizer of its own. That matches the
# causal model only when section 0 pretrained it here; when section 0 reused tutorial 2's model (full
# mode, after tutorial 2), the causal model had more steps and another tokenizer, so the comparison is
# confounded: the cell prints both step counts. The auxiliary LM loss is for causal models only.

# %%
mlm_pretrained = OUT / "pretrained_mlm"
with plots.inline(False):
    exit_code = pretrain.run.main(
        [*PRETRAIN_OPTIONS, "--objective", "mlm", "--output-dir", str(mlm_pretrained)]
    )
assert exit_code == 0, "pretraining failed: see the message above"
run_dir = (OUT / "runs" / "mlm_fine-tuning").resolve()
args = adapt.cli.parse_args(
    ["--pretrained", str(mlm_pretrained), "--lr", "3e-4", *common, "--output-dir", str(run_dir)]
)
with plots.inline(False):
    results["MLM, [CLS] first"] = adapt.run.adapt(args)
meta = json.loads(next(run_dir.glob("seed_*/classifier.json")).read_text())
print("where adapt put the classification token of the MLM classifier:", meta["clf_position"])
for name, lm_dir in (("fine-tuning", pretrained), ("MLM, [CLS] first", mlm_pretrained)):
    print(f"{name:>22}  test accuracy {results[name]['test_accuracy']['mean']:.1%}  "
          f"(pretrained {pretrained_steps(lm_dir)} steps)")  # fmt: skip

# %% [markdown]
# Read the two rows with care: one seed each, and pretrained for the step counts printed beside them.
# A masked LM also learns from only the 15 % of tokens it hides, against every token for a causal LM,
# so even at equal steps it has seen fewer targets. To compare the objectives alone, pretrain both here
# with the same steps and tokenizer settings (`MINITRANSFORMER_TUTORIAL2_MODEL=none`, a folder with no model,
# makes section 0 train its own).
#
# Tutorial 4 asks how much of these numbers depends on the random seed, and what makes few-sample
# fine-tuning more stable.

# %% [markdown]
# ## Exercise: the classification head's forward pass
#
# Write `classify(model, x, clf_tokens_mask, padding_mask)` returning the logits (B, C) that
# `model(x, clf_tokens_mask, padding_mask=padding_mask)` returns for a `TransformerWithClfHead` with
# the default pooling: run `model.transformer`, take each row's final hidden state at its
# classification token, and apply `model.classification_head`. The check uses a padded batch whose
# rows have different lengths. (Answer: `exercises.solution_classify`.)


# %%
def classify(model, x, clf_tokens_mask, padding_mask):
    """x, clf_tokens_mask, padding_mask: (B, T) → logits (B, C)"""
    raise NotImplementedError  # your code here: three lines


# %%
if exercises.use_solutions():  # the tests run the reference answer; you run yours
    classify = exercises.solution_classify
exercises.check_classify(classify)

# %% [markdown]
# ## Exercise: the padding mask
#
# Section 3's batches pad short questions to the longest one. Write `padding_mask(lengths, T)`: for a
# (B,) tensor of row lengths, the (B, T) bool mask the library expects, **True where a position is
# padding** (the convention of every `padding_mask` argument here; PyTorch's
# `key_padding_mask` uses the same one, Hugging Face's `attention_mask` the opposite). The check uses
# rows of lengths 5, 2, 3 and 1 and names an inverted mask and the two off-by-ones. (Answer:
# `exercises.solution_padding_mask`.)


# %%
def padding_mask(lengths, T):
    """(B,) → bool (B, T), True = padding"""
    raise NotImplementedError  # your code here: one line


# %%
if exercises.use_solutions():  # the tests run the reference answer; you run yours
    padding_mask = exercises.solution_padding_mask
exercises.check_padding_mask(padding_mask)

# %% [markdown]
# ## For the test harness (not part of the lesson)
#
# What `tests/e2e/test_tutorials.py` reads from this file: the figures it must show, and the data
# files, optional packages and checkpoints it needs (the test is skipped when one is missing).

# %%
DATA = [
    "trec/train_5500.label",
    "trec/train_1000.label",
    "trec/TREC_10.label",
    "wikitext-2/wiki.valid.tokens",
    "wikitext-2/wiki.test.tokens",
]
FIGURES = [
    "classification_token.png",
    "padding_mask.png",
    "confusion_pretrained.png",
    "confusion_random_init.png",
]
for name in FIGURES:
    assert (OUT / name).is_file(), f"missing figure {name}"
    print(OUT / name)
