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
# # Tutorial 6 — Looking inside
#
# A trained Transformer is not a black box: every intermediate result can be read out. We train a
# small causal language model on WikiText-2 for about a minute, then look at
#
# 1. the attention of every head in every layer on one sentence,
# 2. the token embeddings of a few word groups (numbers, months, countries), projected to 2-D,
# 3. how likely it finds the true next token as it sees more of the text before it,
# 4. and, position by position, what reading further back than an n-gram buys it.
#
# A minute of CPU training gives a weak model (far from the hands-on's 50M parameters trained for
# about 15 hours on 8 V100 GPUs), so expect clear *beginnings* of structure rather than crisp results; the tools are the same
# for any checkpoint, including those of tutorials 2 and 5.
#
# Data: this tutorial reads `wikitext-2/wiki.valid.tokens` and `wiki.test.tokens` from the data
# directory (`MINITRANSFORMER_DATA`). It trains on the *validation* split because the training split
# is not part of the offline data, and measures section 3 on the *test* split, text it never saw.
# `MINITRANSFORMER_SMOKE=1` shrinks data, model and training to a few seconds.
#
# **Reruns.** The tokenizer's training is deterministic and the model's initialisation and batches are
# seeded, so a rerun on the same machine with the same thread count prints the same numbers and draws
# the same figures. Another machine, thread count or library version can change them (floating-point
# sums come out in another order, and a minute of training amplifies the difference), and with them
# which heads and words the printed lines name. Where the text below describes a result, it is the
# one the cells print in full mode on the project's machine (one thread, torch 2.13.0 CPU).

# %%
import math
import os
from pathlib import Path

import numpy as np
import torch

from minitransformer import TransformerConfig, TransformerWithLMHead
from minitransformer.data.wikitext import line_separator_id, read_lines, wikitext_path
from minitransformer.ngram import KneserNey, select_order
from minitransformer.teaching import circuits, exercises, plots
from minitransformer.teaching.inspection import column_share, next_token_probability, previous_token_share
from minitransformer.tokenization import Tokenizer
from pretrain.baseline import held_out_start

torch.manual_seed(0)  # the same numbers on every run
SMOKE = os.environ.get("MINITRANSFORMER_SMOKE") == "1"
OUT = Path(os.environ.get("MINITRANSFORMER_TUTORIAL_OUT", "runs/tutorials/06_looking_inside"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## A tokenizer and a model, trained here
#
# A WordPiece tokenizer (BERT-style) learned on the same text, then the text as one long stream of
# ids, each line ending with `[SEP]`. Tutorial 2 does the same at scale, with a memory-mapped
# cache; here the corpus is small enough to sit in a Python list.

# %%
lines = [line.rstrip("\n") for line in read_lines(wikitext_path("wikitext-2", "valid"))]
if SMOKE:
    lines = lines[:400]
tokenizer = Tokenizer.train(lines, vocab_size=1000 if SMOKE else 5000)
separator = line_separator_id(tokenizer)
ids = torch.tensor([i for encoded in tokenizer.encode_batch(lines) for i in encoded + [separator]])
print(f"{len(lines):,} lines → {len(ids):,} tokens, vocabulary of {tokenizer.vocab_size:,}")

block, batch_size = 64, 16
blocks = ids[: len(ids) // block * block].view(-1, block)  # (N, 64): contiguous chunks of text
config = TransformerConfig(
    embed_dim=64 if SMOKE else 128,
    hidden_dim=256 if SMOKE else 512,
    num_heads=4,
    num_layers=2 if SMOKE else 4,
    vocab_size=tokenizer.vocab_size,
    num_max_positions=block,
    dropout=0.0,  # one pass over the data at most: nothing to regularise yet
    norm_placement="pre",  # GPT-2's placement: in a short run it learns much faster (tutorial 1)
    final_layer_norm=True,
)
model = TransformerWithLMHead(config)
print(f"{model.num_parameters():,} parameters, {len(blocks):,} blocks of {block} tokens")

# %% [markdown]
# A plain training loop (tutorial 2 shows the Ignite version with handlers and checkpoints): AdamW,
# a short linear warm-up, then a linear decay to zero. We use the pre-norm placement: tried here
# with the hands-on's own placement, 200 steps left the loss stuck near the unigram level (≈ 6.6),
# while pre-norm kept improving — the easier gradient flow of tutorial 1's last figure.

# %%
steps = 15 if SMOKE else 300
warmup = max(steps // 10, 1)
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
schedule = torch.optim.lr_scheduler.LambdaLR(
    optimizer, lambda step: min((step + 1) / warmup, (steps - step) / (steps - warmup))
)
generator = torch.Generator().manual_seed(0)
records = []
model.train()
for step in range(steps):
    x = blocks[torch.randint(len(blocks), (batch_size,), generator=generator)]  # (B, T)
    _, loss = model(x, labels=x)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    records.append({"event": "train", "step": step, "loss": loss.item(), "lr": schedule.get_last_lr()[0]})
    schedule.step()
    if step % 50 == 0 or step == steps - 1:
        print(f"step {step:4d}  loss {loss.item():.2f}")
model.eval()
plots.plot_training_curves(
    records, title="A minute of training on WikiText-2", path=OUT / "training_loss.png"
)

# %% [markdown]
# ## 1. Attention, head by head
#
# `output_attentions=True` makes every layer return its attention probabilities, one
# `(B, nh, T, S)` tensor per layer. Each panel below is one head: row i shows where token i looks.
# The causal mask leaves the upper triangle empty. Patterns that trained models show: heads that put
# their weight on the *previous* token (a bright band one step *below* the diagonal), heads that look
# at the token itself (a bright diagonal: easy to take for the former at a glance; count the cells),
# heads that fall back on the first token when nothing else is relevant (a bright first column), and
# broader heads that average over the whole prefix. A model trained for a minute may show none of
# them clearly; the numbers below say which heads lean which way.
#
# To put numbers on the first pattern, `inspection.previous_token_share` averages, for each head, the
# weight token i puts on token i − 1: entry [i, i − 1] of the matrix, the diagonal just *below* the
# main one (`diagonal(offset=-1)`). A perfect previous-token head scores 1.0; a head that spreads
# evenly over a prefix of n tokens gives 1/n, so a share means something only beside that of a
# *uniform* head, one that spreads every row evenly over the tokens it may see
# (`circuits.uniform_attention`). `circuits.head_scores` computes both for every head. `column_share(attention, 0)`
# averages the weight on the first token instead, with one difference: the first token can only attend
# to itself, so its own row always puts 1.0 there and every head scores at least 1/T from that row
# alone. Compare it with 1/T (printed), not with 0.
#
# The sentence says *in* twice. At the second *in*, a head that looks at the token that followed the
# first one (*the*) is doing what an *induction head* does: find the earlier occurrence of the current
# token and read what came next, to predict it again. `circuits.prefix_matching_score` measures that
# weight (1.0 for a perfect induction head), and `head_scores` gives it, with its uniform baseline,
# whenever the text repeats a token. Section 3 comes back to copying.

# %%
sentence = "The album was released in the United States in October 2004 ."
tokens = [tokenizer.id_to_token(i) for i in tokenizer.encode(sentence)]
x = torch.tensor([tokenizer.encode(sentence)])  # (1, T)
with torch.no_grad():
    attentions = model.transformer(x, output_attentions=True).attentions  # L × (1, nh, T, T)
plots.plot_attention_grid(
    attentions,
    tokens,
    title=f"Attention of each head on one sentence ({config.num_layers} layers × {config.num_heads} heads)",
    path=OUT / "attention_heads.png",
)
T = x.size(1)
scores = circuits.head_scores(model, x)  # each head's scores (L, nh), and a uniform head's
previous, first = scores["previous_token"], torch.stack([column_share(a, 0) for a in attentions])  # (L, nh)
print(f"T = {T} tokens; a uniform head (circuits.uniform_attention: each token spreads evenly over its "
      f"prefix) puts {scores['previous_token_uniform']:.2f} on the previous token; the first-token share "
      f"is at least 1/T = {1 / T:.2f}")  # fmt: skip
print("share of each head's attention on the previous token / on the first token:")
for layer in range(config.num_layers):  # layers and heads numbered from 0, as in the figure
    heads = [f"head {h} {previous[layer, h]:.2f} / {first[layer, h]:.2f}" for h in range(config.num_heads)]
    print(f"layer {layer}: " + ", ".join(heads))
baselines = {"previous token": (previous, scores["previous_token_uniform"], "uniform share")}
baselines["first token"] = (first, 1 / T, "1/T floor")
if "prefix_matching" in scores:  # the sentence repeats a token
    prefix_matching = scores["prefix_matching"], scores["prefix_matching_uniform"]
    baselines["prefix matching"] = (*prefix_matching, "uniform score")
for name, (shares, baseline, floor) in baselines.items():
    layer, head = divmod(int(shares.argmax()), config.num_heads)
    print(f"largest {name} score: layer {layer}, head {head}: {shares.max():.2f}, "
          f"{shares.max() / baseline:.1f} times the {floor} {baseline:.2f}")  # fmt: skip

# %% [markdown]
# Compare each share with its baseline (the last three lines do it for the largest of each kind), and
# look for the patterns in the figure. On the project's machine the head that leans most on the previous
# token is head 3 of layer 1, at about twice the uniform share, and in the figure its band below the
# diagonal shows in some rows and not in others; some heads take the bright *main* diagonal instead,
# each token looking at itself (head 0 of layer 0); heads of the upper layers fill whole columns, every
# later token reading the same content word (*album* in layers 1 and 2; *released*, then *States* in
# head 1 of layer 3), a crude summary of the sentence so far; and the largest first-token share is
# several times the 1/T floor. The prefix-matching line rests on a single query, the second *in*, so a
# score above the uniform one is a hint at most: measure it on a random sequence repeated twice
# (`circuits.repeated_random_tokens`), where every token of the second copy is a query. One sentence
# flatters, too: docs/tiny_recipe.md ("What did not change") measures the previous-token share of a
# model trained like this one over many windows of WikiText-2 test text, and there no head rises much
# above the uniform share. How positions enter matters as much as the minutes: the main command's model
# (`python -m pretrain`: about three minutes, rotary positions instead of this model's learned table) has
# a head at 0.23 on the same measure (docs/tiny_recipe.md, third round of issue 32), and tutorial 5
# finds a strong previous-token head in MiniLM.
#
# The figure is fixed; the **explorer** lets you move around in the same numbers. It runs the model on
# a text and builds one self-contained page (no network needed): click a token to see where every head
# of every layer looks from it (layers and heads numbered from 0, as above), and what the model predicts
# next at that position. `page.save` writes
# it as a file you can open in any browser; a notebook shows it inline.

# %%
from minitransformer.explore import explore  # noqa: E402

page = explore(model, tokenizer, sentence, name="tutorial 6, a minute of training")
page.save(OUT / "explore.html")
page

# %% [markdown]
# ## 2. Where words sit: the embedding space
#
# The rows of `tokens_embeddings` are the model's first idea of each token. Words used in similar
# contexts receive similar gradients, so their rows drift towards each other during training. We
# take words of three groups that the tokenizer keeps whole (one token each) and project their rows
# onto the two directions of largest variance (PCA).

# %%
word_groups = {
    "number": "one two three four five six seven eight nine ten",
    "month": "January February March April May June July August September October November December",
    "country": "England Germany Japan China Spain Canada India Australia Ireland France Italy Russia",
}
words, groups = [], []
for group, group_words in word_groups.items():
    for word in group_words.split():
        if len(tokenizer.encode(word)) == 1:  # skip words split into several pieces
            words.append(word)
            groups.append(group)
print(f"{len(words)} whole-word tokens:", ", ".join(words))
word_ids = torch.tensor([tokenizer.encode(w)[0] for w in words])
vectors = model.transformer.tokens_embeddings.weight[word_ids].detach()  # (N, E)
plots.plot_embedding_pca(
    vectors,
    words,
    groups,
    title="Token embeddings of three word groups after a minute of training (PCA)",
    path=OUT / "embedding_pca.png",
)


def group_cohesion(vectors: torch.Tensor, groups: list[str]) -> tuple[float, float]:
    """Mean cosine similarity of pairs of words in the same group, and in different groups."""
    unit = torch.nn.functional.normalize(vectors, dim=-1)
    similarity = unit @ unit.T
    same = torch.tensor([[a == b for b in groups] for a in groups]) & ~torch.eye(
        len(groups), dtype=torch.bool
    )
    different = torch.tensor([[a != b for b in groups] for a in groups])
    return similarity[same].mean().item(), similarity[different].mean().item()


within, across = group_cohesion(vectors, groups)
print(f"mean cosine similarity: within a group {within:.2f}, across groups {across:.2f}")

# %% [markdown]
# After a minute, the groups have started to separate, imperfectly. On the project's machine the months
# gather on the left and the countries spread over the right, while the numbers scatter between them
# and over the months (*eight* far above the rest). Look at your figure for the same two things: which
# groups keep apart, and which words stray into another group. The cosine similarities printed above
# measure it without the projection: when words of a group are more alike than words of different
# groups, the first number is the larger, as it is here. Two dimensions show only part of the picture
# (the axis labels give the share of the variance they keep).
#
# ## 3. More context, better guesses
#
# A causal LM predicts the next token from everything before it. To see what the context buys, we
# take windows of 64 tokens from text the model never saw (WikiText-2 *test*), keep the last token as
# the target, and let the model see only the last k tokens before it, for k = 1, 2, 4, … 63. For
# each k we measure the probability it gives the *true* next token (`inspection.next_token_probability`).
# With one token of context it can only know what usually follows that token; with more, the
# sentence can decide. The clearest case: a target that already appeared earlier in the window
# (a name, a rare word repeated), which only a model that reads far enough back can copy. So we
# average separately over targets that occur earlier in their window and targets that do not.

# %%
test_lines = [line.rstrip("\n") for line in read_lines(wikitext_path("wikitext-2", "test"))]
test_ids = torch.tensor([i for encoded in tokenizer.encode_batch(test_lines) for i in encoded + [separator]])
all_windows = test_ids[: len(test_ids) // block * block].view(-1, block)  # (N, 64): prompt of 63 + target
windows = all_windows[
    torch.randperm(len(all_windows), generator=torch.Generator().manual_seed(0))[: 64 if SMOKE else 512]
]
context_sizes = [1, 2, 4, 8, 16, 32, block - 1]
probabilities = next_token_probability(model, windows, context_sizes)  # (len(k), N)
seen_before = (windows[:, :-1] == windows[:, -1:]).any(dim=1)  # (N,): target occurs in the prompt
curves = {
    f"target seen earlier in the window ({int(seen_before.sum())} windows)": probabilities[
        :, seen_before
    ].mean(1),
    f"target not seen earlier ({int((~seen_before).sum())} windows)": probabilities[:, ~seen_before].mean(1),
    "all windows": probabilities.mean(1),
}
for name, curve in curves.items():
    print(f"{name:>45}: " + "  ".join(f"k={k} {p:.3f}" for k, p in zip(context_sizes, curve.tolist())))
for name, curve in curves.items():  # where the curve gets within 10 % of its final height
    rise = curve - curve[0]
    k90 = next(k for k, r in zip(context_sizes, rise.tolist()) if r >= 0.9 * rise[-1].item())
    print(f"{name:>45}: 90 % of the gain from k=1 to the whole window is reached at k = {k90}")
plots.plot_prediction_vs_context(
    context_sizes,
    {name: curve.tolist() for name, curve in curves.items()},
    ylabel="mean p(true next token)",
    legend_title="WikiText-2 test windows",
    title="Probability of the true next token given the last k tokens",
    path=OUT / "prediction_vs_context.png",
)

# %% [markdown]
# One window where distant context decides, the copying case the section set up: among targets that
# are words of at least three letters, not among the 200 commonest tokens of the training text (so not
# `the` or `and`, which any context predicts), and appeared earlier in their window *more than 8 tokens
# back* (out of reach of the nearest handful), the one whose probability gains most from k = 8 to the
# whole window.

# %%
targets = windows[:, -1]
common = set(torch.bincount(ids).topk(200).indices.tolist())  # the 200 commonest tokens of the training text
is_word = torch.tensor(
    [
        len(t) >= 3 and t.isalpha() and i not in common
        for i, t in zip(targets.tolist(), map(tokenizer.id_to_token, targets.tolist()))
    ]
)
far_back = (windows[:, : block - 1 - 8] == targets[:, None]).any(dim=1)  # seen, and more than 8 tokens back
near = (windows[:, block - 1 - 8 : -1] == targets[:, None]).any(dim=1)  # also within the last 8: not copying
k8 = context_sizes.index(8)
gain = (probabilities[-1] - probabilities[k8]).masked_fill(~(far_back & ~near & is_word), -1.0)  # (N,)
if gain.max() > -1:
    best = int(gain.argmax())
    target = tokenizer.id_to_token(int(targets[best]))
    earlier = (windows[best, :-1] == targets[best]).nonzero().flatten().tolist()
    print("context:", repr(tokenizer.decode(windows[best, :-1].tolist())[-300:]))
    print(f"true next token: {target!r}, seen earlier at {[block - 1 - i for i in earlier]} tokens back")
    for k, p in zip(context_sizes, probabilities[:, best].tolist()):
        print(f"  last {k:2d} tokens: p = {p:.3f}")
else:
    print("no window here has a word target that appeared only more than 8 tokens back")

# %% [markdown]
# Reading the figure and the numbers printed above (the "90 %" lines say where each curve stops
# rising, at k = 4 for all three here): a model trained for a minute uses the last few tokens and
# little more. Targets that already appeared in the window are much more likely at every k, and their
# curve even drops a little over the longest contexts; much of their advantage is that repeated tokens
# are frequent ones (`the`, `,`). Whether the model also *copies* a rarer word from far back is what the
# window above tests: look at how its probability changes once the context reaches back to the earlier
# occurrence. Here it prints p = 0.000 for every k: a model trained for a minute does not copy yet.
# Copying is the work of "induction heads", which form later in training (Olsson et al., 2022,
# "In-context Learning and Induction Heads"). Larger, longer-trained models keep gaining from distant
# context, which is what their lower perplexity measures; rerun this section on the checkpoint of
# tutorial 2 to compare.

# %% [markdown]
# ## 4. What context beyond an n-gram buys
#
# An n-gram model predicts a token from the n − 1 tokens before it and nothing else: whatever lies
# further back cannot change its guess. The Transformer reads the whole window. To see what that buys,
# we fit the classical model, an interpolated Kneser-Ney n-gram (`minitransformer.ngram`, what
# `python -m pretrain --baseline ngram` reports in tutorial 2), on the very tokens our model trained on,
# its order n chosen as that command chooses it (fitted on the first nine tenths of the training text,
# scored on the last tenth). Then both models score every token of the same test windows, each from the
# tokens before it *in its window* only, and we average the log-probability of the true next token at
# each position of the window: the prediction at position t has t tokens of context. This time every
# 64-token window of the test split takes part, so that each position's average rests on thousands of
# tokens. The n-gram counts and scores in seconds; the Transformer's pass over every window is what takes
# this cell most of a minute on a busy core.

# %%
train_ids = ids.numpy()
start = held_out_start(train_ids, separator)  # the last tenth of the training text, from a line start
order, held_out_nll = select_order(train_ids[:start], train_ids[start:], tokenizer.vocab_size)
print("n-gram held-out token perplexity by order: "
      + ", ".join(f"{n}: {math.exp(nll):.1f}" for n, nll in held_out_nll.items()))  # fmt: skip
ngram = KneserNey.fit(train_ids, tokenizer.vocab_size, order)
test_windows = all_windows[:64] if SMOKE else all_windows  # (N, 64)
with torch.no_grad():  # ln p(token t | tokens 0..t-1 of its window) for t = 1..63
    transformer_log_p = torch.cat(
        [model(w).log_softmax(-1)[:, :-1].gather(-1, w[:, 1:, None])[..., 0] for w in test_windows.split(64)]
    )  # (N, 63)
ngram_log_p = torch.tensor(np.stack([ngram.log_probs(w)[1:] for w in test_windows.numpy()]))  # (N, 63)
transformer_curve, ngram_curve = transformer_log_p.mean(0), ngram_log_p.mean(0)  # (63,): position t at t-1
print(f"{len(test_windows):,} test windows; mean ln p(true next token) after t tokens of the window:")
print(f"{'t':>4} {'Transformer':>12} {f'{order}-gram':>8} {'difference':>11}")
for t in (1, 2, 3, 4, 5, 6, 8, 16, 32, block - 1):
    a, b = transformer_curve[t - 1].item(), ngram_curve[t - 1].item()
    print(f"{t:4d} {a:12.3f} {b:8.3f} {a - b:+11.3f}")
t0 = max(order - 1, 1)  # from t0 on, the n-gram has all the context it can use
rows = {"Transformer": transformer_curve, f"{order}-gram": ngram_curve}
rows["difference"] = transformer_curve - ngram_curve  # (63,)
for name, curve in rows.items():
    print(f"{name:>11}: {curve[t0 - 1]:+.3f} at t = {t0}, {curve[-8:].mean():+.3f} on average over "
          f"t = {block - 8}..{block - 1}")  # fmt: skip
plots.plot_layer_curves(
    {
        "Transformer (the whole window)": transformer_curve.tolist(),
        f"Kneser-Ney {order}-gram (the last {order - 1} tokens)": ngram_curve.tolist(),
    },
    ylabel="mean ln p(true next token)",
    title=f"Transformer vs {order}-gram on the same WikiText-2 test windows, by position",
    xlabel="t: tokens of the window before the prediction",
    x=list(range(1, block)),
    path=OUT / "ngram_vs_context.png",
)

# %% [markdown]
# The printed lines answer the section's question for this model. The n-gram's held-out perplexities
# fall steeply from order 1 (no context) to order 2 (one token), a little to order 3, and barely after
# (the longer a context, the rarer it is that the training tokens hold it at all), and its curve in the
# figure is flat from t = 2 on: it has what it can use. The Transformer's curve is hardly steeper: from
# t = 4 to the end of the window it gains a few hundredths of a nat (the "Transformer" line), and it
# stays about one nat *below* the n-gram at every position (the "difference" column is negative
# throughout). A minute of training, about one pass over the data, has not yet taught the network what
# counting the same tokens gives at once, let alone how to use the context that an n-gram cannot see:
# the window it reads buys it almost nothing yet. Tutorial 2 (section 6) sets its longer-trained model
# against the same kind of n-gram over the whole test split; rerun this section with that model and its
# tokenizer to see, position by position, where each model stands.


# %% [markdown]
# ## Exercise: the previous-token share
#
# Write `share_on_previous(attention)`: for attention probabilities (B, nh, T, T), the mean weight
# that token i puts on token i − 1, per head (nh,), averaged over the tokens and the batch. The check
# feeds it three heads of random rows (every diagonal holds different weights, and the batch rows
# differ) and one perfect previous-token head (answer 1.0), and names the usual slips: the diagonal
# above, the main diagonal, two tokens back, dividing by T. Mind which diagonal you read. (Answer: `inspection.previous_token_share`.)


# %%
def share_on_previous(attention):
    """(B, nh, T, T) → (nh,)"""
    raise NotImplementedError  # your code here


# %%
if exercises.use_solutions():  # the tests run the reference answer; you run yours
    share_on_previous = previous_token_share
exercises.check_previous_token_share(share_on_previous)

# %% [markdown]
# ## Exercise: how focused is a head? Its attention entropy
#
# A head that always looks at one token has rows like one-hot vectors (entropy 0); a head that spreads
# evenly over k tokens has entropy log k. Write `attention_entropy(attention)`: for (B, nh, T, T)
# probabilities, each row's entropy −Σ p·log p in nats, averaged over the tokens and the batch, per head
# (nh,). The check uses causal rows, whose zeros above the diagonal make a naive `p * p.log()` NaN
# (0·log 0 must count as 0). Then try it on the attentions of section 1: which heads are the sharpest?
# (Answer: `exercises.solution_attention_entropy`.)


# %%
def attention_entropy(attention):
    """(B, nh, T, T) → (nh,), in nats"""
    raise NotImplementedError  # your code here: one or two lines


# %%
if exercises.use_solutions():  # the tests run the reference answer; you run yours
    attention_entropy = exercises.solution_attention_entropy
exercises.check_attention_entropy(attention_entropy)

# %% [markdown]
# ## For the test harness (not part of the lesson)
#
# What `tests/e2e/test_tutorials.py` reads from this file: the figures it must show, and the data
# files, optional packages and checkpoints it needs (the test is skipped when one is missing).

# %%
DATA = ["wikitext-2/wiki.valid.tokens", "wikitext-2/wiki.test.tokens"]
FIGURES = [
    "training_loss.png",
    "attention_heads.png",
    "embedding_pca.png",
    "prediction_vs_context.png",
    "ngram_vs_context.png",
]
for name in FIGURES:
    assert (OUT / name).is_file(), f"missing figure {name}"
    print(OUT / name)
