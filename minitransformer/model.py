"""The Transformer of the NAACL 2019 transfer-learning hands-on, written to be read top to bottom.

    tokens ─► token embeddings + position embeddings ─► dropout ─► N × Block ─► hidden states
              (with `rotary=True` no position table: each attention rotates its queries and keys)
    Block ("hands_on" placement):   h = ln1(h);  h = h + dropout(attention(h))
                                    h = ln2(h);  h = h + dropout(feed_forward(h))

Heads on top: `TransformerWithLMHead` (causal or masked LM, output weights tied to the token
embeddings) and `TransformerWithClfHead` (a linear classifier on the classification token).

Conventions: tensors are batch-first, `x: LongTensor[B, T]`; `padding_mask: BoolTensor[B, T]` is True
where a token is padding; labels equal to IGNORE_INDEX (-100) are ignored by the losses. Module names follow the
hands-on (`tokens_embeddings`, `attention`, `feed_forward`, `layer_norm_1`, ...) so the slides map onto the
code; the hands-on kept each kind of module in one list per model (`attentions[i]`), and its checkpoints
(and ours from before `Block`) load through one key-rename map, `checkpoint.rename_legacy_keys`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoint import LEGACY_LAYER_LISTS, PretrainedMixin
from .checks import check_labels, check_token_ids
from .config import IGNORE_INDEX, FineTuningConfig, TransformerConfig
from .generation import generate

KVCache = list[tuple[Tensor, Tensor]]  # per layer: keys and values, each (B, nh, S, hs)
BlockOutput = tuple[Tensor, Tensor | None, tuple[Tensor, Tensor]]  # h (B, T, E), probs, keys/values


# ----------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------


def sinusoidal_table(num_positions: int, dim: int) -> Tensor:
    """The fixed position encoding of "Attention is all you need": sin on even dims, cos on odd."""
    positions = torch.arange(num_positions, dtype=torch.float32).unsqueeze(1)  # (P, 1)
    frequencies = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(num_positions, dim)
    table[:, 0::2] = torch.sin(positions * frequencies)
    table[:, 1::2] = torch.cos(positions * frequencies)
    return table  # (P, dim)


ROTARY_BASE = 10000  # RoFormer's: pair i of a head turns base^(-2i/hs) radians per position


def rotary_angles(positions: Tensor, head_size: int) -> tuple[Tensor, Tensor]:
    """cos and sin of the rotary angles, each (T, hs/2): pair i of position p turns by p · 10000^(-2i/hs)."""
    half = head_size // 2
    exponents = -torch.arange(half, device=positions.device, dtype=torch.float32) / half  # (hs/2,)
    frequencies = float(ROTARY_BASE) ** exponents
    angles = positions.float()[:, None] * frequencies  # (T, hs/2)
    return angles.cos(), angles.sin()


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate each pair (x_i, x_{i+hs/2}) of x (B, nh, T, hs) by its angle (RoFormer's rotary positions).

    A query rotated by its position's angles and a key by theirs have a dot product that depends on the
    difference of the two positions only: attention sees how far back a token is, not where it sits.
    """
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    x1, x2 = x.chunk(2, dim=-1)  # 2 × (B, nh, T, hs/2)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class MultiHeadSelfAttention(nn.Module):
    """Self-attention from scratch, with the parameter layout of `nn.MultiheadAttention`.

    `in_proj_weight` stacks the query, key and value projections ([3E, E]); `out_proj` mixes the
    heads back. Two code paths compute the same thing: PyTorch's fused
    `scaled_dot_product_attention` (fast) and the explicit softmax(QKᵀ/√d)V, which can also return
    the attention probabilities for plots.
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.dropout = config.dropout
        self.impl = config.attention_impl
        self.rotary = config.rotary
        E = config.embed_dim
        self.in_proj_weight = nn.Parameter(torch.empty(3 * E, E))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * E)) if config.bias else None
        self.out_proj = nn.Linear(E, E, bias=config.bias)

    def forward(
        self,
        h: Tensor,
        mask: Tensor | None,
        is_causal: bool,
        past: tuple[Tensor, Tensor] | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None, tuple[Tensor, Tensor]]:
        """h: (B, T, E); mask: (B, 1, T, S) bool, True = may attend, or None (all allowed / is_causal).

        Returns the output (B, T, E), the attention probabilities (B, nh, T, S) if asked, and the
        keys/values (B, nh, S, hs) so that generation can cache them.
        """
        B, T, E = h.shape
        q, k, v = F.linear(h, self.in_proj_weight, self.in_proj_bias).split(E, dim=2)  # 3 × (B, T, E)
        q = q.view(B, T, self.num_heads, -1).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.num_heads, -1).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.num_heads, -1).transpose(1, 2)  # (B, nh, T, hs)
        if self.rotary:  # rotate by the absolute positions; cached keys were rotated by theirs
            start = past[0].size(2) if past is not None else 0
            cos, sin = rotary_angles(torch.arange(start, start + T, device=h.device), q.size(-1))
            q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        if past is not None:  # generation: prepend the cached keys/values of earlier positions
            k = torch.cat([past[0], k], dim=2)  # (B, nh, S, hs)
            v = torch.cat([past[1], v], dim=2)
        dropout_p = self.dropout if self.training else 0.0

        probs = None
        if need_weights or self.impl == "explicit":
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))  # (B, nh, T, S)
            if is_causal:  # only reached without padding and without a cache: T == S
                mask = torch.ones(T, T, dtype=torch.bool, device=h.device).tril()
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            probs = scores.softmax(dim=-1)
            y = F.dropout(probs, dropout_p, self.training) @ v  # (B, nh, T, hs)
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal
            )
        y = y.transpose(1, 2).reshape(B, T, E)  # (B, T, E): heads side by side again
        return self.out_proj(y), probs, (k, v)


_ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "gelu_tanh": lambda: nn.GELU(approximate="tanh"),
}


class FeedForward(nn.Sequential):
    """Position-wise feed-forward: Linear(E→H) → activation → Linear(H→E).

    An `nn.Sequential` so that parameter names (`0.weight`, `2.weight`) match the hands-on's.
    """

    def __init__(self, config: TransformerConfig):
        super().__init__(
            nn.Linear(config.embed_dim, config.hidden_dim, bias=config.bias),
            _ACTIVATIONS[config.activation](),
            nn.Linear(config.hidden_dim, config.embed_dim, bias=config.bias),
        )


class Adapter(nn.Sequential):
    """A bottleneck Linear(E→A) → ReLU → Linear(A→E), used with a residual (Houlsby et al., 2019)."""

    def __init__(self, embed_dim: int, adapters_dim: int):
        super().__init__(nn.Linear(embed_dim, adapters_dim), nn.ReLU(), nn.Linear(adapters_dim, embed_dim))


@torch.no_grad()
def init_module_weights(module: nn.Module, initializer_range: float) -> None:
    """The hands-on's initialisation: N(0, range) weights, zero biases, LayerNorm 1/0.

    Applied to a single module (use `model.apply(...)` for a whole tree); also used by the
    re-initialisation technique of few-sample fine-tuning.
    """
    if isinstance(module, (nn.Linear, nn.Embedding)):
        module.weight.normal_(mean=0.0, std=initializer_range)
    if isinstance(module, nn.Linear) and module.bias is not None:
        module.bias.zero_()
    if isinstance(module, nn.LayerNorm):
        module.weight.fill_(1.0)
        module.bias.zero_()
    if isinstance(module, MultiHeadSelfAttention):
        module.in_proj_weight.normal_(mean=0.0, std=initializer_range)
        if module.in_proj_bias is not None:
            module.in_proj_bias.zero_()


class Block(nn.Module):
    """One layer: self-attention and feed-forward, each added to the residual stream (the "+" below).

    attn(x) = dropout(attention(x)) and ff(x) = dropout(feed_forward(x)) are what the two sub-blocks add
    (each plus its bottleneck adapter, when the block has adapters). Where the layer norms sit is the
    config's `norm_placement`; `forward` shows the three as formulas.
    """

    def __init__(self, config: TransformerConfig, adapters_dim: int = 0):
        super().__init__()
        E = config.embed_dim
        self.norm_placement = config.norm_placement
        self.layer_norm_1 = nn.LayerNorm(E, eps=config.layer_norm_eps)
        self.attention = MultiHeadSelfAttention(config)
        with_ff = not config.attention_only  # attention-only blocks have no second sub-block
        self.layer_norm_2 = nn.LayerNorm(E, eps=config.layer_norm_eps) if with_ff else None
        self.feed_forward = FeedForward(config) if with_ff else None
        self.adapter_1 = Adapter(E, adapters_dim) if adapters_dim else None
        self.adapter_2 = Adapter(E, adapters_dim) if adapters_dim and with_ff else None
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        h: Tensor,
        mask: Tensor | None,
        is_causal: bool,
        past: tuple[Tensor, Tensor] | None = None,
        need_weights: bool = False,
    ) -> BlockOutput:
        """h: (B, T, E) → h (B, T, E), attention probabilities (B, nh, T, S) or None, keys/values.

        mask, is_causal, past, need_weights: as `MultiHeadSelfAttention.forward` takes them.
        """
        ln_1, ln_2 = self.layer_norm_1, self.layer_norm_2
        x = h if self.norm_placement == "post" else ln_1(h)  # (B, T, E): what the attention reads
        a, probs, kv = self.attention(x, mask, is_causal, past, need_weights)
        attn = self.residual_branch(a, self.adapter_1)  # (B, T, E): attn(x)
        match self.norm_placement:
            case "hands_on":  # the hands-on's code: h = ln(h); h = h + f(h), so h itself is normalised
                h = x + attn  # x = ln_1(h)
            case "pre":  # GPT-2: the sub-block reads a normalised copy; the residual stream is not normed
                h = h + attn  # attn read x = ln_1(h)
            case "post":  # BERT and the original Transformer: normalise after the residual addition
                h = ln_1(h + attn)  # attn read x = h
        if self.feed_forward is None:  # an attention-only block
            return h, probs, kv
        match self.norm_placement:  # the feed-forward sub-block, placed the same way
            case "hands_on":
                h = (n := ln_2(h)) + self.ff(n)
            case "pre":
                h = h + self.ff(ln_2(h))
            case "post":
                h = ln_2(h + self.ff(h))
        return h, probs, kv

    def ff(self, x: Tensor) -> Tensor:
        """What the feed-forward sub-block adds to the residual stream: dropout(feed_forward(x)) (+ adapter)."""
        return self.residual_branch(self.feed_forward(x), self.adapter_2)

    def residual_branch(self, y: Tensor, adapter: Adapter | None) -> Tensor:
        """dropout(y), plus its adapter's output with bottleneck adapters (Houlsby et al., 2019)."""
        y = self.dropout(y)
        return y if adapter is None else y + adapter(y)


@dataclass
class TransformerOutput:
    """What the backbone returns. `hidden_states` and `attentions` only when asked for.

    hidden_states[0] is the embedding output and hidden_states[i] the output of layer i, before any
    final layer norm; last_hidden_state has the final norm applied (when the config has one).
    """

    last_hidden_state: Tensor  # (B, T, E)
    hidden_states: tuple[Tensor, ...] | None = None  # num_layers + 1 × (B, T, E)
    attentions: tuple[Tensor, ...] | None = None  # num_layers × (B, nh, T, S)
    past_key_values: KVCache | None = None


# ----------------------------------------------------------------------------------------------
# The backbone
# ----------------------------------------------------------------------------------------------


class Transformer(nn.Module):
    """Embeddings + a stack of `num_layers` blocks; batch-first."""

    def __init__(self, config: TransformerConfig, adapters_dim: int = 0):
        super().__init__()
        self.config = config
        E, P = config.embed_dim, config.num_max_positions
        self.tokens_embeddings = nn.Embedding(config.vocab_size, E)
        self.position_embeddings = None if config.rotary else nn.Embedding(P, E)  # rotary: in attention
        if config.sinusoidal_embeddings:
            self.position_embeddings.weight.requires_grad_(False)  # fixed, never trained
        self.token_type_embeddings = (
            nn.Embedding(config.token_type_vocab_size, E) if config.token_type_vocab_size else None
        )
        self.embeddings_layer_norm = (
            nn.LayerNorm(E, eps=config.layer_norm_eps) if config.embedding_layer_norm else None
        )
        self.dropout = nn.Dropout(config.dropout)

        self.blocks = nn.ModuleList(Block(config, adapters_dim) for _ in range(config.num_layers))
        self.final_layer_norm = (
            nn.LayerNorm(E, eps=config.layer_norm_eps) if config.final_layer_norm else None
        )

        # The causal mask is the same for every sample: build it once for the longest sequence and
        # slice it per call. True = query i may attend to key j (j <= i).
        causal = torch.ones(P, P, dtype=torch.bool).tril()
        self.register_buffer("causal_mask", causal, persistent=False)  # (P, P)

    # -- the parts (used by weight init and the fine-tuning stability techniques) ---------------

    def embedding_modules(self) -> list[nn.Module]:
        """Token/position/type embeddings and the embedding layer norm (what sits below layer 0)."""
        mods = [self.tokens_embeddings, self.position_embeddings, self.token_type_embeddings]
        return [m for m in mods + [self.embeddings_layer_norm] if m is not None]

    @torch.no_grad()
    def scale_residual_projections(self) -> None:
        """GPT-2's init: the projections that add to the residual stream get std range / sqrt(2L).

        Each of the 2L branches adds a term to the stream; shrinking them keeps its variance at init
        close to that of the embeddings whatever the depth (GPT-2 paper, section 2.3).
        """
        std = self.config.initializer_range / math.sqrt(2 * self.config.num_layers)
        for block in self.blocks:
            block.attention.out_proj.weight.normal_(mean=0.0, std=std)
            if block.feed_forward is not None:
                block.feed_forward[2].weight.normal_(mean=0.0, std=std)

    def reset_sinusoidal(self) -> None:
        """(Re)write the fixed position table; called after weight init, which would overwrite it."""
        if self.config.sinusoidal_embeddings:
            with torch.no_grad():
                self.position_embeddings.weight.copy_(
                    sinusoidal_table(self.config.num_max_positions, self.config.embed_dim)
                )

    # -- forward --------------------------------------------------------------------------------

    def check_inputs(self, x: Tensor, padding_mask: Tensor | None, past_length: int = 0) -> None:
        """Cheap checks for the mistakes users make, without a device sync or a torch.compile graph break.

        The token-id range needs the ids' values: it is checked here only for ids on the CPU (where
        reading them costs no device sync) and outside `torch.compile`; GPU runs check their batches on
        the CPU before the transfer (`check_token_ids`).
        """
        cfg = self.config
        if x.dim() != 2 or x.dtype not in (torch.long, torch.int):
            raise ValueError(f"x must be a LongTensor [batch, seq], got {tuple(x.shape)} of {x.dtype}")
        if x.device.type == "cpu" and not torch.compiler.is_compiling():
            check_token_ids(x, cfg.vocab_size)
        if past_length + x.size(1) > cfg.num_max_positions:
            raise ValueError(
                f"sequence length {past_length + x.size(1)} exceeds num_max_positions="
                f"{cfg.num_max_positions}: truncate or split the input"
            )
        if padding_mask is not None and (padding_mask.shape != x.shape or padding_mask.dtype != torch.bool):
            raise ValueError(
                f"padding_mask must be a BoolTensor of the same shape as x {tuple(x.shape)} "
                f"(True = padding), got {tuple(padding_mask.shape)} of {padding_mask.dtype}"
            )

    def attention_mask(self, padding_mask: Tensor | None, T: int, S: int) -> tuple[Tensor | None, bool]:
        """Combine the causal mask and the key-padding mask into one (B, 1, T, S) bool mask.

        Returns (mask, is_causal). Without padding and without a cache, the fused kernel applies the
        causal mask itself (is_causal=True) and no mask tensor is built at all. A token may always
        attend to itself, so no row of the attention matrix is empty: an all-padding row stays finite.
        """
        causal = self.config.causal
        if padding_mask is None:
            if causal and T == S:
                return None, True
            if causal:  # T new queries after S - T cached positions
                return self.causal_mask[S - T : S, :S][None, None], False
            return None, False
        allowed = ~padding_mask[:, None, None, :]  # (B, 1, 1, S): keys that are real tokens
        if causal:
            allowed = allowed & self.causal_mask[S - T : S, :S]  # (B, 1, T, S)
        diagonal = torch.zeros(T, S, dtype=torch.bool, device=padding_mask.device)
        diagonal[torch.arange(T), torch.arange(S - T, S)] = True  # query i ↔ its own key
        return allowed | diagonal, False

    def forward(
        self,
        x: Tensor,
        padding_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        past_key_values: KVCache | None = None,
        use_cache: bool = False,
    ) -> TransformerOutput:
        """x: (B, T) token ids; padding_mask: (B, T) True = padding (covering cached positions too)."""
        past_length = past_key_values[0][0].size(2) if past_key_values else 0
        self.check_inputs(x, None if past_length else padding_mask, past_length)
        B, T = x.shape
        S = past_length + T

        h = self.tokens_embeddings(x)  # (B, T, E)
        if self.position_embeddings is not None:
            h = h + self.position_embeddings(torch.arange(past_length, S, device=x.device))
        if self.token_type_embeddings is not None:
            types = token_type_ids if token_type_ids is not None else torch.zeros_like(x)
            h = h + self.token_type_embeddings(types)
        if self.embeddings_layer_norm is not None:
            h = self.embeddings_layer_norm(h)
        h = self.dropout(h)

        mask, is_causal = self.attention_mask(padding_mask, T, S)  # (B, 1, T, S) or None
        all_hidden = [h] if output_hidden_states else None
        all_probs = [] if output_attentions else None
        new_cache: KVCache | None = [] if use_cache else None
        for i, block in enumerate(self.blocks):
            past = past_key_values[i] if past_key_values else None
            h, probs, kv = block(h, mask, is_causal, past, output_attentions)
            if all_hidden is not None:
                all_hidden.append(h)
            if all_probs is not None:
                all_probs.append(probs)
            if new_cache is not None:
                new_cache.append(kv)

        if self.final_layer_norm is not None:
            h = self.final_layer_norm(h)
        return TransformerOutput(
            last_hidden_state=h,
            hidden_states=tuple(all_hidden) if all_hidden is not None else None,
            attentions=tuple(all_probs) if all_probs is not None else None,
            past_key_values=new_cache,
        )


# ----------------------------------------------------------------------------------------------
# Heads
# ----------------------------------------------------------------------------------------------


class LMHead(nn.Module):
    """Hidden states → vocabulary logits. `decoder.weight` is tied to the token embeddings.

    With `lm_head_transform` (BERT's MLM head) a dense + activation + LayerNorm comes first.
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        E = config.embed_dim
        self.transform = (
            nn.Sequential(
                nn.Linear(E, E), _ACTIVATIONS[config.activation](), nn.LayerNorm(E, eps=config.layer_norm_eps)
            )
            if config.lm_head_transform
            else None
        )
        self.decoder = nn.Linear(E, config.vocab_size, bias=config.lm_head_bias)

    def forward(self, h: Tensor) -> Tensor:
        if self.transform is not None:
            h = self.transform(h)
        return self.decoder(h)  # (B, T, V)


def lm_loss(logits: Tensor, labels: Tensor, causal: bool) -> Tensor:
    """Cross-entropy over tokens, IGNORE_INDEX ignored. logits: (..., V), labels: (...); causal: (B, T, V) and
    (B, T), position t predicts token t + 1.

    The causal shift moves the labels (one column, cheap) rather than slicing the logits, which would
    copy the whole (B, T, V) tensor forward and backward.
    """
    if causal:
        labels = F.pad(
            labels[:, 1:], (0, 1), value=IGNORE_INDEX
        )  # (B, T): the last position predicts nothing
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=IGNORE_INDEX)


class _TransformerModel(PretrainedMixin, nn.Module):
    """What both heads share: the backbone, the tied LM head, weight init and the tying itself."""

    config: TransformerConfig
    transformer: Transformer
    lm_head: LMHead

    def _build(self, config: TransformerConfig, adapters_dim: int = 0) -> None:
        self.config = config
        self.transformer = Transformer(config, adapters_dim=adapters_dim)
        self.lm_head = LMHead(config)

    def init_weights(self) -> None:
        """Initialise every parameter the hands-on's way (GPT-2's residual scaling on top with
        `init_scheme="gpt2"`), then re-tie and rewrite fixed tables.

        The random draws go in the order of the hands-on's layout (every layer's attention, then every
        layer's feed-forward, ...), so that a seed gives the same weights as before there was a `Block`.
        """
        t = self.transformer
        parts = [getattr(block, part) for part in LEGACY_LAYER_LISTS.values() for block in t.blocks]
        heads = [m for m in self.children() if m is not t]  # LM head, pooler, classifier
        for module in [*t.embedding_modules(), *parts, t.final_layer_norm, *heads]:
            if module is not None:
                module.apply(lambda m: init_module_weights(m, self.config.initializer_range))
        if self.config.init_scheme == "gpt2":
            self.transformer.scale_residual_projections()
        self.transformer.reset_sinusoidal()
        self.tie_weights()

    def tie_weights(self) -> None:
        """The LM decoder *is* the token-embedding matrix: one tensor, one set of gradients."""
        self.lm_head.decoder.weight = self.transformer.tokens_embeddings.weight

    def _apply(self, fn, recurse=True):
        # .to()/.half()/... may replace parameter tensors; keep the decoder tied afterwards.
        result = super()._apply(fn, recurse)
        self.tie_weights()
        return result

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Parameter count, each tied tensor counted once."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def lm_logits_and_loss(self, h: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """LM logits and loss from the last hidden states h: (B, T, E) and labels: (B, T).

        Causal: logits (B, T, V). Masked LM: the head (transform + vocabulary projection) runs on the
        scored positions only, logits (N, V) for the N labels != IGNORE_INDEX in row-major order: the same loss
        for ~15 % of the head's work (BERT computes all T positions and ignores 85 % of them).
        """
        if self.config.causal:
            logits = self.lm_head(h)  # (B, T, V)
            return logits, lm_loss(logits, labels, causal=True)
        scored = labels != IGNORE_INDEX  # (B, T)
        logits = self.lm_head(h[scored])  # (N, V); N is read from the device once per batch
        return logits, lm_loss(logits, labels[scored], causal=False)

    def head_modules(self) -> list[nn.Module]:
        """Modules above the last layer (final norm and heads); the embeddings are not included."""
        mods = [self.transformer.final_layer_norm, self.lm_head.transform]
        return [m for m in mods if m is not None]


class TransformerWithLMHead(_TransformerModel):
    """Causal (GPT-style) or masked (BERT-style, `config.mlm=True`) language model."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self._build(config)
        self.init_weights()

    def forward(
        self,
        x: Tensor,
        labels: Tensor | None = None,
        padding_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """x, labels: (B, T). Returns logits (B, T, V), or (logits, loss) when labels are given.

        Causal: labels are usually x itself (the shift happens here). MLM: labels hold the original
        token at masked positions and -100 elsewhere; only those positions (~15 %) go through the LM
        head, so with labels the logits are those of the scored positions only (see `lm_logits_and_loss`).
        """
        if labels is not None:
            check_labels(labels, self.config.vocab_size, "labels")
        h = self.transformer(x, padding_mask=padding_mask, token_type_ids=token_type_ids).last_hidden_state
        return self.lm_head(h) if labels is None else self.lm_logits_and_loss(h, labels)

    def generate(self, prompt_ids: Tensor, max_new_tokens: int, **kwargs) -> Tensor:
        """Sample a continuation with a key/value cache; see `minitransformer.generation.generate`."""
        return generate(self, prompt_ids, max_new_tokens, **kwargs)


class ClassificationPooler(nn.Module):
    """Turns hidden states into one vector per sequence (see FineTuningConfig.pooling).

    For "weighted" pooling, one learnable weight per layer from `pooling_layer_start` to the top; the
    weights are a registered parameter, so the optimizer trains them. With a final layer norm
    (pre-norm models), the same norm is applied to every intermediate state so all layers are on the
    scale the classifier sees at the top.
    """

    def __init__(self, config: TransformerConfig, ft: FineTuningConfig):
        super().__init__()
        self.mode = ft.pooling
        self.layer_start = ft.pooling_layer_start
        if self.mode == "weighted":
            if self.layer_start > config.num_layers:
                raise ValueError(
                    f"pooling_layer_start={self.layer_start} > num_layers={config.num_layers} "
                    "(layer 0 is the embedding output, layer num_layers the top)"
                )
            self.layer_weights = nn.Parameter(torch.ones(config.num_layers + 1 - self.layer_start))
        self.dense = nn.Linear(config.embed_dim, config.embed_dim) if ft.pooler else None

    def forward(
        self, out: TransformerOutput, clf_tokens_mask: Tensor, padding_mask: Tensor | None, final_norm
    ) -> Tensor:
        if self.mode == "weighted":
            states = torch.stack(out.hidden_states[self.layer_start :])  # (L', B, T, E)
            if final_norm is not None:
                states = final_norm(states)
            w = self.layer_weights[:, None, None, None]
            h = (w * states).sum(0) / self.layer_weights.sum()  # (B, T, E)
        else:
            h = out.last_hidden_state
        if self.mode in ("clf", "weighted"):
            pooled = (h * clf_tokens_mask.unsqueeze(-1).to(h.dtype)).sum(dim=1)  # (B, E)
        else:
            real = ~padding_mask if padding_mask is not None else torch.ones_like(clf_tokens_mask)
            real = real.unsqueeze(-1)  # (B, T, 1)
            if self.mode == "mean":
                pooled = (h * real).sum(1) / real.sum(1).clamp(min=1)
            else:
                pooled = h.masked_fill(~real, float("-inf")).max(dim=1).values
        if self.dense is not None:
            pooled = torch.tanh(self.dense(pooled))
        return pooled  # (B, E)


class TransformerWithClfHead(_TransformerModel):
    """A classifier on the classification token, optionally multi-task with the LM loss."""

    def __init__(self, config: TransformerConfig, fine_tuning_config: FineTuningConfig | None = None):
        super().__init__()
        ft = fine_tuning_config or FineTuningConfig()
        self.fine_tuning_config = ft
        # The hands-on fine-tunes with the fine-tuning config's dropout in the whole backbone.
        self._build(replace(config, dropout=ft.dropout), adapters_dim=ft.adapters_dim)
        self.pooler = ClassificationPooler(config, ft)
        self.clf_dropout = nn.Dropout(ft.dropout)
        self.classification_head = nn.Linear(config.embed_dim, ft.num_classes)
        self.init_weights()
        init_module_weights(self.classification_head, ft.initializer_range)

    def head_modules(self) -> list[nn.Module]:
        return super().head_modules() + [self.pooler, self.classification_head]

    def forward(
        self,
        x: Tensor,
        clf_tokens_mask: Tensor,
        clf_labels: Tensor | None = None,
        padding_mask: Tensor | None = None,
        lm_labels: Tensor | None = None,
        token_type_ids: Tensor | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """x: (B, T); clf_tokens_mask: (B, T) bool, True at the one classification token of each row.

        Returns classification logits (B, C), or (logits, loss) with labels; the loss is
        clf_loss_coef × cross-entropy + lm_loss_coef × LM loss (when lm_labels are given).
        """
        counts = clf_tokens_mask.sum(dim=1)
        if clf_tokens_mask.shape != x.shape or bool((counts != 1).any()):
            row = int((counts != 1).nonzero()[0]) if clf_tokens_mask.shape == x.shape else -1
            raise ValueError(
                f"clf_tokens_mask must mark exactly one classification token per row (shape {tuple(x.shape)}); "
                f"row {row} has {int(counts[row]) if row >= 0 else 'a wrong shape'}: append the "
                "classification token once to every input (after truncation)"
            )
        ft = self.fine_tuning_config
        out = self.transformer(
            x,
            padding_mask=padding_mask,
            token_type_ids=token_type_ids,
            output_hidden_states=ft.pooling == "weighted",
        )
        pooled = self.pooler(out, clf_tokens_mask, padding_mask, self.transformer.final_layer_norm)
        logits = self.classification_head(self.clf_dropout(pooled))  # (B, C)
        if clf_labels is None and lm_labels is None:
            return logits
        loss = logits.new_zeros(())
        if clf_labels is not None:
            check_labels(clf_labels, logits.size(-1), "clf_labels")
            loss = loss + ft.clf_loss_coef * F.cross_entropy(logits, clf_labels, ignore_index=IGNORE_INDEX)
        if lm_labels is not None:
            check_labels(lm_labels, self.config.vocab_size, "lm_labels")
            loss = loss + ft.lm_loss_coef * self.lm_logits_and_loss(out.last_hidden_state, lm_labels)[1]
        return logits, loss
