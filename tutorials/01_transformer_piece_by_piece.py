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
# # Tutorial 1 — The Transformer, piece by piece
#
# We open up the model of the NAACL 2019 transfer-learning hands-on and rebuild each piece by hand,
# checking every time that our few lines give exactly what `minitransformer` computes:
#
# 1. token and position embeddings (learned or sinusoidal),
# 2. scaled dot-product attention, first by hand, then with the library,
# 3. splitting the attention into several heads,
# 4. the two attention masks: causal, and key-padding for batches of unequal lengths,
# 5. one Transformer block, then the whole stack,
# 6. the three places a layer norm can sit, and why the choice matters,
# 7. what attention costs as the text grows, and the key/value cache that makes generation cheap.
#
# **Batch first.** The hands-on's code worked with sequence-first tensors `[seq, batch]`, as
# `nn.MultiheadAttention` expected in 2019. `minitransformer` is batch-first everywhere: token ids
# are `[batch, seq]` and hidden states `[batch, seq, embed]`. We write shapes in comments as
# `(B, T, E)`: batch, tokens, embedding dimension; `nh` is the number of heads, `hs` the head size.
#
# Everything here runs in seconds on a laptop CPU. Set `MINITRANSFORMER_SMOKE=1` to shrink it
# further (the test suite does), and `MINITRANSFORMER_TUTORIAL_OUT` to choose where figures go.

# %%
import math
import os
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from minitransformer import TransformerConfig, TransformerWithLMHead
from minitransformer.model import sinusoidal_table
from minitransformer.teaching import exercises, plots

torch.manual_seed(0)  # the same numbers on every run
SMOKE = os.environ.get("MINITRANSFORMER_SMOKE") == "1"
OUT = Path(os.environ.get("MINITRANSFORMER_TUTORIAL_OUT", "runs/tutorials/01_transformer_piece_by_piece"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## A toy model and a toy sentence
#
# A real model would get its ids from a trained tokenizer (tutorial 2). Here a tiny vocabulary is
# enough: each word is its own token, and `[PAD]` (id 0) will fill up short sentences in section 4. Dropout is 0 so that every computation is deterministic
# and we can compare our hand-written versions with the library to the last digit.

# %%
sentence = "the cat sat on the mat".split()
short_sentence = "a dog ran".split()
vocab = {word: i for i, word in enumerate(dict.fromkeys(["[PAD]"] + sentence + short_sentence))}
x = torch.tensor([[vocab[w] for w in sentence]])  # (B=1, T=6)

config = TransformerConfig(
    embed_dim=16,
    hidden_dim=64,
    num_heads=2,
    num_layers=2,
    vocab_size=len(vocab),
    num_max_positions=32,
    dropout=0.0,
)
model = TransformerWithLMHead(config).eval()
backbone = model.transformer
print("token ids:", x.tolist(), "shape (B, T) =", tuple(x.shape))

# %% [markdown]
# ## 1. Embeddings: what a token is, and where it is
#
# Attention by itself does not know the order of the tokens: shuffle the inputs and the outputs
# shuffle with them. So each token's vector is the sum of two looked-up rows: one for *what* the
# token is (`tokens_embeddings`) and one for *where* it is (`position_embeddings`).

# %%
positions = torch.arange(x.size(1))  # (T,)
h0 = backbone.tokens_embeddings(x) + backbone.position_embeddings(positions)  # (B, T, E)
print("embedded input (B, T, E):", tuple(h0.shape))

# %% [markdown]
# The hands-on *learns* the position table like any other weight. The original Transformer used a
# fixed table instead: dimension pair `(2i, 2i+1)` holds `sin` and `cos` of `position / 10000^(2i/E)`.
# Low dimensions oscillate fast and tell neighbouring positions apart; high dimensions change
# slowly and tell the start of a long text from its end. Because shifting the position by `k`
# rotates each (sin, cos) pair by a fixed angle, relative offsets are easy for attention to read.
# `TransformerConfig(sinusoidal_embeddings=True)` freezes this table in the model.

# %%
table = sinusoidal_table(64, 128)  # (positions, dimensions)
plots.plot_positional_encoding(
    table,
    title="Sinusoidal position table: fast waves in low dimensions, slow ones in high dimensions",
    path=OUT / "sinusoidal_positions.png",
)
nearby = table[10] @ table.T  # dot product of position 10 with every position
print("positions most similar to position 10:", nearby.topk(5).indices.tolist())

# %% [markdown]
# A *learned* table starts as small random noise (normal, std 0.02): it carries no notion of order
# at all until training shapes it. Same heatmap, same colours (red positive, blue negative), very
# different picture; but not the same scale: each colour bar spans its own table's largest value,
# and the noise is far smaller than the sinusoids (the cell prints both ranges).

# %%
learned_at_init = torch.nn.init.normal_(
    torch.empty(64, 128), std=config.initializer_range
)  # as the model does
plots.plot_positional_encoding(
    learned_at_init,
    title="Learned position table at initialisation: noise, until training gives it structure",
    path=OUT / "learned_positions_at_init.png",
)
learned_max, sinusoidal_max = learned_at_init.abs().max().item(), table.abs().max().item()
print(f"largest |value|: learned at init {learned_max:.2f}, sinusoidal {sinusoidal_max:.2f} "
      f"({sinusoidal_max / learned_max:.0f}× larger): mind the colour bars")  # fmt: skip

# %% [markdown]
# ## 2. Scaled dot-product attention, by hand
#
# Each token emits a **query** ("what am I looking for?"), a **key** ("what do I contain?") and a
# **value** ("what do I pass on?"), all linear maps of its vector. Token i's output is an average of
# the values, weighted by how well its query matches every key:
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\left(\frac{QK^\top}{\sqrt{d}}\right)\,V$$
#
# Dividing by $\sqrt{d}$ keeps the scores' spread independent of the vector size $d$; without it
# large models would get a softmax saturated on one token from the start.
#
# The library stores the three projections stacked in one matrix `in_proj_weight` of shape
# `[3E, E]` (the layout of `nn.MultiheadAttention`, which the hands-on used). We take layer 0's
# weights and first do *single-head* attention, ignoring the causal mask for now.

# %%
attention = backbone.blocks[0].attention
E = config.embed_dim
with torch.no_grad():
    h = backbone.blocks[0].layer_norm_1(h0)  # the block normalises before attending (section 5)
    q, k, v = F.linear(h, attention.in_proj_weight, attention.in_proj_bias).split(E, dim=-1)  # 3 × (B, T, E)
    scores = q @ k.transpose(-2, -1) / math.sqrt(E)  # (B, T, T): query i · key j
    weights = scores.softmax(dim=-1)  # each row sums to 1
    one_head = weights @ v  # (B, T, E)
print("scores (B, T, T):", tuple(scores.shape), "— row sums of the weights:", weights.sum(-1)[0].tolist())
print("output (B, T, E):", tuple(one_head.shape), "— one mix of the values per token")

# %% [markdown]
# **Why $\sqrt{d}$, measured.** If the entries of a query and a key are independent with mean 0 and
# variance 1, their dot product $q \cdot k = \sum_{i=1}^{d} q_i k_i$ is a sum of $d$ terms of variance 1:
# its variance is $d$, its spread $\sqrt{d}$. Dividing by $\sqrt{d}$ brings the spread back to 1 whatever
# the size. Without it, the softmax of a row of 32 scores is nearly one-hot for large $d$ and its
# gradient nearly zero. The cell measures both.

# %%
g = torch.Generator().manual_seed(0)
print("   d   var(q·k)  var(q·k/√d)  largest softmax weight of 32 scores: raw, scaled")
for d in (4, 16, 64, 256, 1024):
    q_, k_ = torch.randn(2000, 32, d, generator=g), torch.randn(2000, 1, d, generator=g)
    raw = (q_ * k_).sum(-1)  # (2000, 32): 2000 rows of 32 scores
    scaled = raw / math.sqrt(d)
    top_raw, top_scaled = (r.softmax(-1).max(-1).values.mean().item() for r in (raw, scaled))
    print(f"{d:5d} {raw.var().item():9.1f} {scaled.var().item():11.2f} {top_raw:21.2f} {top_scaled:8.2f}")

# %% [markdown]
# ## 3. Several heads
#
# One softmax gives one way of mixing tokens. Multi-head attention cuts the E dimensions into `nh`
# slices of `hs = E / nh` and runs the attention above independently in each slice, so that one head
# can follow, say, the previous word while another looks for the subject. The reshape is the whole
# trick: `(B, T, E) → (B, T, nh, hs) → (B, nh, T, hs)`, then the same matrix products work per head.

# %%
nh, hs = config.num_heads, config.head_dim


def split_heads(t: torch.Tensor) -> torch.Tensor:
    """(B, T, E) → (B, nh, T, hs)"""
    return t.view(t.size(0), t.size(1), nh, hs).transpose(1, 2)


causal = torch.ones(x.size(1), x.size(1), dtype=torch.bool).tril()  # (T, T), explained in section 4
with torch.no_grad():
    qh, kh, vh = split_heads(q), split_heads(k), split_heads(v)  # (B, nh, T, hs)
    head_scores = qh @ kh.transpose(-2, -1) / math.sqrt(hs)  # (B, nh, T, T)
    head_weights = head_scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)
    heads_out = (head_weights @ vh).transpose(1, 2).reshape(1, x.size(1), E)  # heads side by side
    by_hand = attention.out_proj(heads_out)  # (B, T, E): mix the heads back together
print("q split into heads (B, nh, T, hs):", tuple(qh.shape))

# %% [markdown]
# Now the library's module on the same input. `need_weights=True` makes it take its explicit code
# path and return the attention probabilities as well (the fast fused kernel does not expose them).

# %%
with torch.no_grad():
    library_out, library_weights, _ = attention(h, mask=None, is_causal=True, need_weights=True)
print("same output as by hand:", torch.allclose(by_hand, library_out, atol=1e-6))
print("same weights as by hand:", torch.allclose(head_weights, library_weights, atol=1e-6))
assert torch.allclose(by_hand, library_out, atol=1e-6)
plots.plot_attention_grid(
    [library_weights],
    sentence,
    title="Layer 0 at initialisation: nearly uniform attention over the tokens each one may see",
    path=OUT / "attention_by_hand.png",
)

# %% [markdown]
# The model is untrained, so each token spreads its attention almost evenly over the tokens it may
# see, and the upper triangle is empty: that is the causal mask at work.
#
# ## 4. The two masks
#
# **Causal mask.** A language model predicts token t+1 from tokens 1..t, so position i must not look
# at positions after i. The mask is the lower triangle of a T × T matrix (True = may attend); it is
# the same for every sentence, so the model builds it once (`backbone.causal_mask`) and slices it.

# %%
plots.plot_mask(
    backbone.causal_mask[:6, :6],
    sentence,
    title="Causal mask: each token sees itself and the tokens before it",
    path=OUT / "causal_mask.png",
)

# %% [markdown]
# **Key-padding mask.** Sentences in a batch have different lengths, so the short ones are padded to
# the longest with a `[PAD]` token. Nobody should attend *to* a padding token. Our convention is a
# `padding_mask` of shape `[B, T]` that is **True where a token is padding**; we draw its negation,
# the keys that may be looked at, so that blue means "may attend" in every figure.

# %%
batch_words = [sentence, short_sentence + ["[PAD]"] * (len(sentence) - len(short_sentence))]
batch_ids = torch.tensor([[vocab[w] for w in words] for words in batch_words])  # (B, T)
padding_mask = batch_ids == vocab["[PAD]"]  # (B, T), True = padding
plots.plot_mask(
    ~padding_mask,
    batch_words[1],
    title="Key-padding mask: sample 1 is padded to length 6",
    row_labels=["sample 0", "sample 1"],
    xlabel="position (tokens of sample 1 shown)",
    ylabel="sample in the batch",
    true_label="real token: may be attended",
    false_label="padding: never attended",
    path=OUT / "padding_mask.png",
)

# %% [markdown]
# The model combines both into one `(B, 1, T, S)` mask (the 1 broadcasts over heads): a query may
# look at a key if the key is not padding *and* not in the future. One detail: a padding query is
# still allowed to look at itself, so that no row of the attention matrix is empty (an all-blocked
# row would give a softmax over nothing, i.e. NaN). Those rows' outputs are never used.

# %%
combined, _ = backbone.attention_mask(padding_mask, x.size(1), x.size(1))  # (B, 1, T, S)
print("combined mask (B, 1, T, S):", tuple(combined.shape))
plots.plot_mask(
    combined,
    batch_words,
    title="Causal and padding masks combined, per sample",
    path=OUT / "combined_mask.png",
)

# %% [markdown]
# The property that matters: padding must not change the real tokens' results. In a causal model
# padding placed at the end is already invisible to the real tokens (it lies in their future), so we
# check a bidirectional model (`mlm=True`, BERT-style), where every token sees every other one:
# run "a dog ran" alone and inside the padded batch, with and without the padding mask.

# %%
bidirectional = TransformerWithLMHead(replace(config, mlm=True)).eval().transformer
n = len(short_sentence)
with torch.no_grad():
    alone = bidirectional(batch_ids[1:, :n]).last_hidden_state  # (1, 3, E): no padding at all
    masked = bidirectional(batch_ids, padding_mask=padding_mask).last_hidden_state[1:, :n]
    unmasked = bidirectional(batch_ids).last_hidden_state[1:, :n]
print("with the padding mask, real tokens unchanged:", torch.allclose(alone, masked, atol=1e-5))
print("without it, they change by up to", f"{(alone - unmasked).abs().max().item():.3f}")
assert torch.allclose(alone, masked, atol=1e-5) and not torch.allclose(alone, unmasked, atol=1e-3)

# %% [markdown]
# ## 5. One block, then the stack
#
# A block (`backbone.blocks[i]`, a `Block`) is two sub-blocks, each wrapped in a layer norm, dropout and
# a residual connection. In the hands-on's code (our `norm_placement="hands_on"`; "hands-on" always means
# the NAACL 2019 code, as opposed to these tutorials):
#
# ```
# h = layer_norm_1(h);  h = h + dropout(attention(h))
# h = layer_norm_2(h);  h = h + dropout(feed_forward(h))
# ```
#
# The feed-forward is applied to every position separately: Linear(E → hidden) → ReLU →
# Linear(hidden → E). Attention moves information *between* tokens; the feed-forward transforms
# each token's vector on its own. Let us write block 0 out and compare with the library.

# %%
with torch.no_grad():
    block = backbone.blocks[0]
    h = block.layer_norm_1(h0)
    h = h + block.attention(h, None, True)[0]
    h = block.layer_norm_2(h)
    block_0 = h + block.feed_forward(h)  # (B, T, E)
    stack = backbone(x, output_hidden_states=True)
print(
    "our block 0 == the library's layer 0 output:", torch.allclose(block_0, stack.hidden_states[1], atol=1e-5)
)
assert torch.allclose(block_0, stack.hidden_states[1], atol=1e-5)

# %% [markdown]
# The stack repeats the block `num_layers` times, each with its own weights. `hidden_states[0]` is
# the embedding output and `hidden_states[i]` the output of block i; the LM head then projects the
# top state back onto the vocabulary with the *same* matrix as the token embeddings (weight tying).

# %%
print("hidden states:", [tuple(s.shape) for s in stack.hidden_states])
print("LM head tied to the embeddings:", model.lm_head.decoder.weight is backbone.tokens_embeddings.weight)
print(f"this toy model: {model.num_parameters():,} parameters")
with torch.device("meta"):  # shapes only, no memory: the hands-on's 16-layer model
    full_size = TransformerWithLMHead(TransformerConfig())
print(
    f"the hands-on's model (embed 410, 16 layers, BERT vocabulary): {full_size.num_parameters():,} parameters"
)

# %% [markdown]
# ## 6. Where does the layer norm go?
#
# Three placements exist in the wild, and `minitransformer` implements all three:
#
# | `norm_placement` | sub-block | used by |
# | --- | --- | --- |
# | `"post"` | `h = ln(h + f(h))` | the original Transformer, BERT |
# | `"pre"` | `h = h + f(ln(h))`, plus a final norm at the top | GPT-2 and most recent models |
# | `"hands_on"` | `h = ln(h); h = h + f(h)` | the hands-on's code |
#
# The difference is what travels along the **residual stream**, the `h` that skips past each
# sub-block. Post-norm normalises the stream after every addition, so its size is pinned to
# $\sqrt{E}$. Pre-norm never normalises the stream itself: every sub-block *adds* to it, so it grows
# with depth, and the final norm rescales it at the top. The hands-on's placement overwrites the
# stream with its normalised value before adding, so each block restarts from size $\sqrt{E}$ plus
# one update: bounded like post-norm, but with the sub-block's output added *after* the norm.
# The diagram draws one layer of each, from the code of `Block.forward`: follow the red line,
# the residual stream, to see which tensor skips past each sub-block.

# %%
plots.plot_norm_placements(path=OUT / "norm_placements.png")

# %% [markdown]
# We measure it on random models. At the hands-on's initialisation (std 0.02) the sub-blocks'
# outputs are tiny, so the effect is small; weights grow during training, and we mimic that with
# std 0.1.

# %%
depth = 4 if SMOKE else 12
batch = torch.randint(0, 500, (4 if SMOKE else 16, 32), generator=torch.Generator().manual_seed(0))
residual_norms: dict[str, list[float]] = {}
gradient_norms: dict[str, list[float]] = {}
for placement in ("post", "pre", "hands_on"):
    torch.manual_seed(0)
    placement_config = TransformerConfig(
        embed_dim=64,
        hidden_dim=256,
        num_heads=4,
        num_layers=depth,
        vocab_size=500,
        num_max_positions=32,
        dropout=0.0,
        initializer_range=0.1,
        norm_placement=placement,
        final_layer_norm=placement == "pre",
    )
    placement_model = TransformerWithLMHead(placement_config)
    states = placement_model.transformer(batch, output_hidden_states=True).hidden_states
    residual_norms[placement] = [
        s.norm(dim=-1).mean().item() for s in states
    ]  # mean size of a token's vector
    _, loss = placement_model(batch, labels=batch)
    loss.backward()
    layers = placement_model.transformer
    gradient_norms[placement] = [
        torch.cat([p.grad.flatten() for p in block.parameters()]).norm().item() for block in layers.blocks
    ]
print({name: [round(v, 1) for v in values] for name, values in residual_norms.items()})
above = [v / math.sqrt(64) - 1 for v in residual_norms["hands_on"][1:]]
print(f"hands_on, after each layer: {min(above):.0%} to {max(above):.0%} above √E = 8")

plots.plot_layer_curves(
    residual_norms,
    ylabel="mean L2 norm of a token's hidden state",
    title=f"Residual stream size per layer (random init, std 0.1; √E = {math.sqrt(64):.0f})",
    path=OUT / "norm_placement_residual_norms.png",
)

# %% [markdown]
# The stream, in the first figure:
#
# - **post**: pinned at $\sqrt{E} = 8$ after every layer.
# - **pre**: it grows layer after layer, so each new layer changes it relatively less; the final norm
#   rescales it at the top.
# - **hands_on**: it restarts from $\sqrt{E}$ at every sub-block and ends each one *above* it, by the
#   margin printed above: the normalised state plus one update, and at std 0.1 the update is not small
#   (a quarter to a half of $\sqrt{E}$ in the full-size run).
#
# Now the gradient each layer's weights receive after one backward pass, in the second figure.

# %%
plots.plot_layer_curves(
    gradient_norms,
    ylabel="gradient norm of the layer's weights",
    title="Gradient reaching each layer after one backward pass (random init, std 0.1)",
    xlabel="layer (0 = bottom)",
    log_y=True,
    path=OUT / "norm_placement_gradients.png",
)

# %% [markdown]
# - **post**: the gradient is largest in the top layers and shrinks on its way down, because it has
#   to pass through every layer norm above; this is why post-norm models need a learning-rate warm-up
#   to train stably (Xiong et al., 2020, "On Layer Normalization in the Transformer Architecture").
# - **pre**: in this toy (std 0.1, a few layers) it is the other way round, largest at the bottom,
#   since the gradient flows straight down the un-normalised residual path. That is what *this* model
#   shows, not a law: Xiong et al. find pre-norm gradients of about the same size in every layer at
#   the usual initialisation, which is the point: no layer starves, and deep pre-norm models train
#   without a warm-up fuss, the reason GPT-2 and most later models use it.
# - **hands_on**: like post-norm, its gradients are largest at the top.
#
# The three are different functions of the same weights: a checkpoint only works with the
# placement it was trained with, which is why the hands-on's checkpoints load with `"hands_on"`.

# %% [markdown]
# ## 7. Going further: what attention costs, and the key/value cache
#
# **Cost.** The scores $QK^\top$ are a (T, T) matrix per head: time and memory grow as $T^2$, while the
# feed-forward treats each token on its own and grows as $T$. Double the context and the attention's
# work quadruples, the feed-forward's only doubles. We time both on one layer of a small model (times on
# a shared CPU are noisy: read the ratios, not the milliseconds).

# %%
import time  # noqa: E402


def best_time(fn, repeats=3):
    """The fastest of a few runs, in milliseconds: the least disturbed by other work on the machine."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


E_cost, heads_cost = 64, 4
cost_attention = torch.nn.MultiheadAttention(E_cost, heads_cost, batch_first=True)
cost_ff = torch.nn.Sequential(
    torch.nn.Linear(E_cost, 4 * E_cost), torch.nn.ReLU(), torch.nn.Linear(4 * E_cost, E_cost)
)
lengths = (128, 256, 512) if SMOKE else (256, 512, 1024, 2048)
print("    T  scores matrix (MB)  attention (ms)  feed-forward (ms)")
with torch.no_grad():
    for T in lengths:
        h_cost = torch.randn(1, T, E_cost)
        scores_mb = heads_cost * T * T * 4 / 1e6  # one float32 score per (head, query, key)
        t_att = best_time(lambda h=h_cost: cost_attention(h, h, h, need_weights=False))
        t_ff = best_time(lambda h=h_cost: cost_ff(h))
        print(f"{T:5d} {scores_mb:19.1f} {t_att:15.2f} {t_ff:18.2f}")

# %% [markdown]
# The scores matrix quadruples with each doubling of T, and the attention's time heads for ×4 per
# doubling while the feed-forward's stays near ×2. Counted in multiply-adds per token, the
# feed-forward costs 8E² (E → 4E → E) and the attention 4E² (its four projections) plus 2TE (the
# scores and the mix of the values): the attention overtakes the feed-forward once T > 2E, here 128.
# In a model with E = 768 that only happens past 1,536 tokens, which is why at short contexts big
# models spend most of their time in the feed-forward, and why long contexts made people look for
# cheaper attention.
#
# **The key/value cache.** A causal model generates one token at a time. Without a cache, each new
# token re-runs the whole model over the whole prefix: generating N tokens costs about
# $1 + 2 + \dots + N \approx N^2/2$ token passes. But the keys and values of earlier positions never
# change (a token only attends to the past), so `minitransformer.generation.generate` keeps them: each
# step feeds only the newest token, computes its query, key and value, appends the key and value to
# the cache (`past_key_values`, one (B, nh, S, hs) pair per layer) and attends over the cache. The
# outputs are the same; the work per step no longer grows with the prefix.

# %%
from minitransformer.generation import generate  # noqa: E402

torch.manual_seed(0)
gen_config = TransformerConfig(
    embed_dim=64,
    hidden_dim=256,
    num_heads=4,
    num_layers=4,
    vocab_size=100,
    num_max_positions=512,
    dropout=0.0,
)
gen_model = TransformerWithLMHead(gen_config).eval()
prompt = torch.randint(0, 100, (1, 8))
new_tokens = 64 if SMOKE else 256
with_cache = generate(gen_model, prompt, new_tokens, temperature=0)
without_cache = generate(gen_model, prompt, new_tokens, temperature=0, use_cache=False)
print("same tokens with and without the cache:", torch.equal(with_cache, without_cache))
t_cache = best_time(lambda: generate(gen_model, prompt, new_tokens, temperature=0), repeats=1)
t_no_cache = best_time(
    lambda: generate(gen_model, prompt, new_tokens, temperature=0, use_cache=False), repeats=1
)
print(
    f"{new_tokens} new tokens: {t_cache:.0f} ms with the cache, {t_no_cache:.0f} ms without "
    f"({t_no_cache / t_cache:.1f}× slower)"
)

# %% [markdown]
# ## Exercise: attention with a mask, in one function
#
# Put sections 2–4 together: write `masked_attention(q, k, v, allowed)` for queries `q`
# (B, nh, T, hs) and keys and values `k`, `v` (B, nh, S, hs), where `allowed` (broadcastable to (B, nh, T, S)) is True
# where a query may attend, like the combined mask of section 4. Scale the scores, forbid what is not
# allowed, softmax over the keys, mix the values. The cell after it checks your function against
# PyTorch's `scaled_dot_product_attention` on a causal + padding mask and names the usual mistakes.
# (Answer: `exercises.solution_attention`; try first.)


# %%
def masked_attention(q, k, v, allowed):
    """(B, nh, T, hs), (B, nh, S, hs), (B, nh, S, hs), bool (…, T, S) → (B, nh, T, hs)"""
    raise NotImplementedError  # your code here: four lines


# %%
if exercises.use_solutions():  # the tests run the reference answer; you run yours
    masked_attention = exercises.solution_attention
exercises.check_attention(masked_attention)

# %% [markdown]
# ## Exercise: layer normalisation
#
# Every block of section 5 starts with a layer norm. Write `layer_norm(x, weight, bias, eps)` for
# states `x` (B, T, E): over each token's E numbers subtract the mean, divide by √(variance + eps) with
# the *biased* variance (divide by E), then scale by `weight` and shift by `bias` (both (E,)). The check
# compares it with `F.layer_norm` using a large eps (0.1) so that where you put eps shows, and names
# the usual slips (torch.var's unbiased default, eps outside the root, the wrong dimension). (Answer:
# `exercises.solution_layer_norm`.)


# %%
def layer_norm(x, weight, bias, eps):
    """(B, T, E), (E,), (E,), float → (B, T, E)"""
    raise NotImplementedError  # your code here: three lines


# %%
if exercises.use_solutions():  # the tests run the reference answer; you run yours
    layer_norm = exercises.solution_layer_norm
exercises.check_layer_norm(layer_norm)

# %% [markdown]
# ## Exercise: write the Transformer yourself, block by block
#
# Section 5 wrote one block of the hands-on's placement; now write GPT-2's, for the whole stack. Write
# `pre_norm_forward(backbone, x)` for a pre-norm backbone (`norm_placement="pre"`, with a final norm)
# and token ids `x` (B, T), returning its last hidden state (B, T, E), using only its modules:
#
# 1. the embeddings: `backbone.tokens_embeddings(x)` plus `backbone.position_embeddings` of the
#    positions `torch.arange(T)`;
# 2. for each block of `backbone.blocks`, the pre-norm formulas of section 6's table, two lines with a
#    residual each: the attention `block.attention(z, None, True)[0]` (no padding mask,
#    `is_causal=True`, the output is the first of what it returns) applied to `block.layer_norm_1(h)`,
#    then the feed-forward `block.feed_forward` applied to `block.layer_norm_2(h)` (writing them out,
#    not calling `block(h)`, is the exercise);
# 3. the final norm, `backbone.final_layer_norm`.
#
# The check compares your function with the library on a 3-layer model whose weights and norms are
# far from their initial values (so that every slip shows), and names the usual ones: the residual
# added to the normed value instead of to h, post-norm, no residual, the two norms swapped, the final
# norm forgotten, no causal mask, no positions, one layer's weights used for every block. (Answer:
# `exercises.solution_pre_norm_forward`.)


# %%
def pre_norm_forward(backbone, x):
    """(B, T) token ids → (B, T, E), the last hidden state of a pre-norm backbone"""
    raise NotImplementedError  # your code here: about six lines


# %%
if exercises.use_solutions():  # the tests run the reference answer; you run yours
    pre_norm_forward = exercises.solution_pre_norm_forward
exercises.check_pre_norm_forward(pre_norm_forward)

# %% [markdown]
# ## For the test harness (not part of the lesson)
#
# What `tests/e2e/test_tutorials.py` reads from this file: the figures it must show, and the data
# files, optional packages and checkpoints it needs (the test is skipped when one is missing).

# %%
FIGURES = [
    "sinusoidal_positions.png",
    "learned_positions_at_init.png",
    "attention_by_hand.png",
    "causal_mask.png",
    "padding_mask.png",
    "combined_mask.png",
    "norm_placements.png",
    "norm_placement_residual_norms.png",
    "norm_placement_gradients.png",
]
for name in FIGURES:
    assert (OUT / name).is_file(), f"missing figure {name}"
    print(OUT / name)
