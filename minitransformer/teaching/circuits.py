"""What a head does, measured: attention scores against their uniform baseline, the OV circuit's copying,
and experiments that switch one head off (ablation) or swap in its output from another input (patching).

    patterns = attention_patterns(model, x)                  # L × (B, nh, T, T)
    previous_token_share(patterns[0])                        # (nh,): 1.0 = a perfect previous-token head
    prefix_matching_score(patterns[1], x)                    # (nh,): 1.0 = a perfect induction head
    copying_score(model)[1]                                  # (nh,): +1 = the head copies what it reads
    with ablate_head(model, layer=1, head=0):                # the head's output set to zero
        logits = model(x)

Scores on attention come with a baseline: the same score of a head that spreads its weight evenly over
the tokens it may see (`uniform_attention`). A causal head that looks at nothing in particular still
puts 1/(t + 1) on the token before position t, so a previous-token share means something only beside it.

The functions work on every model of the project, including Hugging Face GPT-2 and BERT checkpoints
imported with `minitransformer.interop.hf.from_hf` (they become the same classes). Layers and heads are
numbered from 0. Head h owns the slice [h·hs, (h + 1)·hs) of the heads' concatenated outputs, the input
of the attention's output projection `out_proj`; ablation and patching replace that slice.

`hand_built_induction_model` is a two-layer induction circuit whose every weight is set by hand: the
answer these tools must find (tests/test_circuits.py, tutorial 7).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from itertools import accumulate

import torch
from torch import Tensor, nn

from ..config import TransformerConfig
from ..model import TransformerWithLMHead
from .inspection import previous_token_share

__all__ = [
    "ablate_head",
    "attention_of",
    "attention_patterns",
    "copied_token_loss",
    "copying_score",
    "hand_built_blocks",
    "hand_built_induction_model",
    "head_output",
    "head_scores",
    "induction_batch",
    "induction_targets",
    "next_token_losses",
    "patch_head",
    "pattern_scores",
    "prefix_matching_score",
    "previous_token_share",
    "repeated_random_tokens",
    "replace_head_output",
    "uniform_attention",
]


def attention_of(model: nn.Module, layer: int) -> nn.Module:
    """The self-attention module of `layer` (0 = bottom) in a model with a `.transformer` backbone."""
    return model.transformer.blocks[layer].attention


# ----------------------------------------------------------------------------------------------
# Attention patterns and the scores read off them
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def attention_patterns(model: nn.Module, x: Tensor) -> tuple[Tensor, ...]:
    """Every layer's attention probabilities for the token ids x (B, T): L × (B, nh, T, T).

    Run the model in eval mode (`model.eval()`) for the patterns it uses at inference (no dropout).
    """
    return model.transformer(x, output_attentions=True).attentions


def uniform_attention(T: int, causal: bool = True, device: torch.device | str | None = None) -> Tensor:
    """(1, 1, T, T): the head that spreads each row evenly over the tokens it may see (the baseline).

    Causal: row t puts 1/(t + 1) on tokens 0..t. Bidirectional (a masked LM): 1/T everywhere.
    """
    allowed = torch.ones(T, T, device=device)
    if causal:
        allowed = allowed.tril()
    return (allowed / allowed.sum(-1, keepdim=True))[None, None]


def induction_targets(tokens: Tensor) -> Tensor:
    """(B, T, T) bool: [b, i, k] True where key k follows an earlier occurrence of token i (k = j + 1 with
    j < i and tokens[j] == tokens[i]): where an induction head at i looks to copy what came next."""
    T = tokens.shape[-1]
    same = tokens[:, :, None] == tokens[:, None, :]  # (B, T, T): token j is token i
    earlier = same & torch.ones(T, T, dtype=torch.bool, device=tokens.device).tril(-1)  # j < i
    return nn.functional.pad(earlier, (1, 0))[..., :T]  # shift one key right: [i, j] → [i, j + 1]


def prefix_matching_score(attention: Tensor, tokens: Tensor) -> Tensor:
    """The attention each head puts on the token *after* an earlier occurrence of the current token.

    attention: (B, nh, T, T), or the (1, 1, T, T) of `uniform_attention` for the baseline; tokens: (B, T),
    unpadded. Averaged over the tokens that occurred before (the others have nothing to match) and
    the batch; (nh,). On a random sequence repeated twice, a token of the second copy at position i
    matches its first occurrence i - n and an induction head looks at i - n + 1 (the token that came
    next then, the one to predict now): 1.0 for a perfect induction head, 0.0 for one that looks at the
    occurrence itself (i - n). Olsson et al. (2022), "In-context learning and induction heads".
    """
    targets = induction_targets(tokens)  # (B, T, T)
    queries = targets.any(-1)  # (B, T): tokens seen before
    if not queries.any():
        raise ValueError("no token occurs twice in `tokens`: the prefix-matching score needs a repeated text")
    on_targets = (attention * targets[:, None]).sum(-1)  # (B, nh, T)
    on_targets = on_targets.expand(tokens.shape[0], -1, -1)  # the uniform baseline's batch of 1
    return on_targets.transpose(0, 1)[:, queries].mean(-1)  # (nh,)


def repeated_random_tokens(
    vocab_size: int, length: int, batch_size: int = 1, seed: int = 0, low: int = 0
) -> Tensor:
    """(batch_size, 2·length): random token ids in [low, vocab_size), the same `length` tokens twice.

    The test input of Olsson et al.: only a head that copies from the first half can predict the second.
    """
    generator = torch.Generator().manual_seed(seed)
    half = torch.randint(low, vocab_size, (batch_size, length), generator=generator)
    return torch.cat([half, half], dim=1)


# ----------------------------------------------------------------------------------------------
# The OV circuit
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def copying_score(model: nn.Module) -> Tensor:
    """Every head's copying score in [-1, 1], read off the weights: (L, nh).

    A head's OV circuit maps the token it attends to onto the logits it adds: W_E W_V W_O W_U, a (V, V)
    matrix (token embeddings, the head's value and output slices, the unembedding). A head that copies
    raises the logit of the token it reads: the matrix has positive eigenvalues. The score is
    Σλ / Σ|λ| over its eigenvalues, the measure of Elhage et al. (2021), "A Mathematical Framework for
    Transformer Circuits": +1 all positive (copying), -1 all negative (suppressing), near 0 for random
    weights. The (V, V) matrix has the non-zero eigenvalues of the small (hs, hs) W_O W_U W_E W_V, which
    is what is computed. Layer norms, other layers and a masked LM head's transform are left out (the
    direct path, as in Elhage et al.): on models with norms it is an approximation.
    """
    unembed_embed = model.lm_head.decoder.weight.T @ model.transformer.tokens_embeddings.weight  # (E, E)
    E = unembed_embed.shape[0]
    scores = torch.zeros(model.config.num_layers, model.config.num_heads)
    for layer in range(scores.shape[0]):
        attention = attention_of(model, layer)
        for head in range(scores.shape[1]):
            part = _head_slice(model, layer, head)
            value = attention.in_proj_weight[2 * E :][part]  # (hs, E): the head's value of h is value @ h
            output = attention.out_proj.weight[:, part]  # (E, hs): value ↦ what the head adds
            eigenvalues = torch.linalg.eigvals((output.T @ unembed_embed @ value.T).double())  # of (hs, hs)
            scores[layer, head] = eigenvalues.real.sum() / eigenvalues.abs().sum().clamp(min=1e-30)
    return scores


# ----------------------------------------------------------------------------------------------
# One head's output: read it, replace it (ablation, patching)
# ----------------------------------------------------------------------------------------------


def _head_slice(model: nn.Module, layer: int, head: int) -> slice:
    """The columns of head `head` in the input of `layer`'s out_proj (B, T, E), with range checks."""
    num_layers = model.config.num_layers
    if not 0 <= layer < num_layers:
        raise IndexError(f"layer {layer} out of range: the model has layers 0..{num_layers - 1}")
    attention = attention_of(model, layer)
    if not 0 <= head < attention.num_heads:
        raise IndexError(f"head {head} out of range: layer {layer} has heads 0..{attention.num_heads - 1}")
    hs = attention.out_proj.weight.shape[1] // attention.num_heads
    return slice(head * hs, (head + 1) * hs)


@torch.no_grad()
def head_output(model: nn.Module, x: Tensor, layer: int, head: int) -> Tensor:
    """What head `head` of `layer` outputs for the token ids x (B, T), before out_proj: (B, T, hs)."""
    part, recorded = _head_slice(model, layer, head), []

    def record(_module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        recorded.append(inputs[0][..., part].clone())  # inputs[0]: (B, T, E), the heads side by side

    handle = attention_of(model, layer).out_proj.register_forward_pre_hook(record)
    try:
        model.transformer(x)
    finally:
        handle.remove()
    return recorded[0]


@contextmanager
def replace_head_output(model: nn.Module, layer: int, head: int, value: Tensor) -> Iterator[None]:
    """Inside the block, head `head` of `layer` outputs `value` (broadcast to (B, T, hs)) instead of its own.

    The other heads and layers run as usual; the hook is removed on leaving, even after an error.
    """
    part = _head_slice(model, layer, head)

    def replace(_module: nn.Module, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        heads = inputs[0].clone()  # (B, T, E): the heads side by side
        own = heads[..., part].shape  # (B, T, hs)
        try:
            torch.broadcast_shapes(value.shape, own)
        except RuntimeError:
            raise ValueError(
                f"head {head} of layer {layer} outputs {tuple(own)} here, but the replacement has shape "
                f"{tuple(value.shape)}: give (hs,) or the (B, T, hs) of an input of the same batch and length"
            ) from None
        heads[..., part] = value.to(heads)
        return (heads, *inputs[1:])

    handle = attention_of(model, layer).out_proj.register_forward_pre_hook(replace)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def ablate_head(model: nn.Module, layer: int, head: int, mean_over: Tensor | None = None) -> Iterator[None]:
    """Switch one head off inside the block. Zero ablation by default: its output is 0.

    Mean ablation with `mean_over` (token ids (B, T)): its output is replaced by its mean output over those
    inputs (all rows and positions), which keeps what the head adds on average and removes only what it
    does differently for each token (zero can push later layers off the inputs they were trained on).
    """
    if mean_over is None:
        value = torch.zeros(())  # broadcast to every entry
    else:
        value = head_output(model, mean_over, layer, head).mean(dim=(0, 1))  # (hs,)
    with replace_head_output(model, layer, head, value):
        yield


@contextmanager
def patch_head(model: nn.Module, layer: int, head: int, source: Tensor) -> Iterator[None]:
    """Activation patching: inside the block, the head outputs what it output for the `source` token ids.

    The model then runs on a target input of the same shape as `source` (B, T); what changes is caused
    by this one head's output alone. Typical: patch a head from a clean input into a corrupted one and
    see how much of the clean answer comes back.
    """
    with replace_head_output(model, layer, head, head_output(model, source, layer, head)):
        yield


# ----------------------------------------------------------------------------------------------
# Every head at once
# ----------------------------------------------------------------------------------------------


def head_scores(model: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """Every head's scores on the token ids x (B, T), each (L, nh), and the uniform baselines (scalars).

    Keys: those of `pattern_scores`, and copying (read off the weights).
    """
    scores = pattern_scores(attention_patterns(model, x), x, model.config.causal)
    scores["copying"] = copying_score(model)
    return scores


def pattern_scores(patterns: tuple[Tensor, ...], x: Tensor, causal: bool = True) -> dict[str, Tensor]:
    """The scores read off attention patterns L × (B, nh, T, T) of the token ids x (B, T): each (L, nh).

    Keys: previous_token, prefix_matching (when x repeats a token; else absent), and
    previous_token_uniform, prefix_matching_uniform: the same scores of a uniform head (scalars).
    """
    uniform = uniform_attention(x.shape[1], causal, x.device)
    scores = {
        "previous_token": torch.stack([previous_token_share(a) for a in patterns]),
        "previous_token_uniform": previous_token_share(uniform)[0],
    }
    if induction_targets(x).any():
        scores["prefix_matching"] = torch.stack([prefix_matching_score(a, x) for a in patterns])
        scores["prefix_matching_uniform"] = prefix_matching_score(uniform, x)[0]
    return scores


# ----------------------------------------------------------------------------------------------
# An induction circuit built by hand: the answer every tool above must find
# ----------------------------------------------------------------------------------------------


def hand_built_blocks(n: int = 5, V: int = 10) -> dict[str, slice]:
    """The residual-stream dims of `hand_built_induction_model(n, V)`, by what they hold.

    position: one-hot position (2n + 1 dims); token: one-hot token (V); previous: the token before,
    one-hot (V), written by layer 0; balance: one dim of -1 that keeps every embedding's mean at 0.
    """
    sizes = {"position": 2 * n + 1, "token": V, "previous": V, "balance": 1}
    ends = list(accumulate(sizes.values()))
    return {name: slice(end - size, end) for (name, size), end in zip(sizes.items(), ends)}


@torch.no_grad()
def hand_built_induction_model(n: int = 5, V: int = 10) -> TransformerWithLMHead:
    """A two-layer induction circuit set by hand, for sequences [0, half, half] of `induction_batch`.

    The residual stream has the four blocks of `hand_built_blocks`; the balancing dim keeps every
    embedding's mean at 0, so that each layer norm only scales (by the same factor at every position).
    Feed-forwards are zero. Head 0 of layer 0 is a previous-token head: the query of position p is
    position p - 1, the key of j is j, and it writes the token it reads into the previous-token block.
    Head 0 of layer 1 is the induction head: its query is the current token, its key the previous-token
    block, so position i looks at the keys whose previous token is token i, and it writes the token it
    reads into the token block, ×10, which the tied unembedding turns into that token's logit. Both
    heads 1 are zero: flat attention, no output. Eval mode.
    """
    blocks = hand_built_blocks(n, V)
    T, E = 2 * n + 1, blocks["balance"].stop
    pos, tok, prev, bal = (blocks[name] for name in ("position", "token", "previous", "balance"))
    config = TransformerConfig(embed_dim=E, hidden_dim=4, num_heads=2, num_layers=2, vocab_size=V,
                               num_max_positions=T, norm_placement="pre", final_layer_norm=True, dropout=0.0)  # fmt: skip
    model = TransformerWithLMHead(config).eval()
    for parameter in model.parameters():
        parameter.zero_()
    for module in model.modules():
        if isinstance(module, nn.LayerNorm):
            module.weight.fill_(1.0)
    model.transformer.position_embeddings.weight[:, pos] = torch.eye(T)
    model.transformer.tokens_embeddings.weight[:, tok] = torch.eye(V)
    model.transformer.position_embeddings.weight[:, bal] = -1.0
    model.transformer.tokens_embeddings.weight[:, bal] = -1.0
    layer_0, layer_1 = attention_of(model, 0), attention_of(model, 1)
    query, key, value = layer_0.in_proj_weight.view(3, E, E)  # rows 0..hs-1: head 0
    query[: T - 1, 1:T] = 10 * torch.eye(T - 1)  # position p asks for position p - 1
    key[:T, pos] = torch.eye(T)
    value[:V, tok] = torch.eye(V)
    layer_0.out_proj.weight[prev, :V] = torch.eye(V)
    query, key, value = layer_1.in_proj_weight.view(3, E, E)
    query[:V, tok] = 10 * torch.eye(V)  # token i asks for a key whose previous token is i
    key[:V, prev] = torch.eye(V)
    value[:V, tok] = torch.eye(V)
    layer_1.out_proj.weight[tok, :V] = 10 * torch.eye(V)
    return model


def induction_batch(batch_size: int = 4, n: int = 5, V: int = 10, seed: int = 0) -> Tensor:
    """(B, 2n + 1): token 0, then n distinct tokens of 1..V-1 twice (the input of the hand-built model)."""
    generator = torch.Generator().manual_seed(seed)
    halves = torch.stack([torch.randperm(V - 1, generator=generator)[:n] + 1 for _ in range(batch_size)])
    return torch.cat([torch.zeros(batch_size, 1, dtype=torch.long), halves, halves], dim=1)


@torch.no_grad()
def next_token_losses(model: nn.Module, x: Tensor, labels: Tensor | None = None) -> Tensor:
    """(B, T - 1): the loss of predicting labels[:, t + 1] at position t, for the token ids x (B, T).

    `labels` default to x; give the clean input as labels when x is a corrupted copy of it.
    """
    labels = x if labels is None else labels
    logits = model(x)[:, :-1]  # (B, T - 1, V)
    return nn.functional.cross_entropy(logits.transpose(1, 2), labels[:, 1:], reduction="none")


def copied_token_loss(model: nn.Module, x: Tensor, labels: Tensor, n: int) -> float:
    """Mean loss on the tokens of the second copy that the first copy predicts, in a batch laid out as
    `induction_batch` makes it (token 0, then n tokens twice): positions n + 2 .. 2n of `labels`.

    `x` is what the model reads, `labels` what it should predict (the same tensor, or the clean input
    when `x` is a corrupted one). The first token of the second copy (position n + 1) is left out:
    nothing before it says that the copy starts there.
    """
    return next_token_losses(model, x, labels)[:, n + 1 :].mean().item()
