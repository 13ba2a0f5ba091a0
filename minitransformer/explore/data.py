"""What the explorer page shows, computed with the library's own forward pass.

One forward pass of the backbone with `output_hidden_states=True, output_attentions=True` gives the
attention probabilities and the residual stream; forward hooks on each block's `attention` and
`feed_forward` record what those sub-blocks add to it (eval mode: no dropout). Every layer's hidden
state read through the final norm and the LM head is the "logit lens"; at the top layer it is the
model's own output. Nothing here re-implements the model.
"""

from __future__ import annotations

import base64
from contextlib import contextmanager

import torch
from torch import Tensor

from minitransformer import TransformerWithLMHead

from ..modes import evaluating
from ..teaching.circuits import copying_score, induction_targets, prefix_matching_score, uniform_attention
from ..teaching.inspection import attention_entropy, column_share, previous_token_share
from ..tokenization import Tokenizer, check_text

# What the per-block numbers mean for each norm placement (keyed by the two placements that differ;
# any other placement, such as the hands-on's, adds the block outputs to a layer-normed stream).
ADD_NOTES = {
    "pre": "Each block's output is added to the residual stream as it is (pre-norm: h = h + block(ln(h))).",
    "post": "Each block's output is added to the stream and the sum is then layer-normed "
    "(post-norm: h = ln(h + block(h))), so the norm after each layer is reset.",
}
DEFAULT_ADD_NOTE = (
    "The stream is layer-normed first and each block's output is added to the normed stream "
    "(the hands-on's h = ln(h); h = h + block(h))."
)


class ExplorerInputError(ValueError):
    """A text, a tokenizer or a model the explorer cannot show; the message says why and what to do."""


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------


def check_tokenizer(model: TransformerWithLMHead, tokenizer: Tokenizer) -> None:
    """Refuse a tokenizer whose vocabulary is not the model's (its ids would mean other tokens)."""
    if tokenizer.vocab_size != model.config.vocab_size:
        raise ExplorerInputError(
            f"the tokenizer has {tokenizer.vocab_size} tokens but the model's vocabulary has "
            f"{model.config.vocab_size}: they do not belong together; use the "
            "tokenizer saved with the model (tokenizer.json in its directory)"
        )


def encode_texts(
    tokenizer: Tokenizer,
    texts: list[str],
    max_positions: int,
    truncate: bool = False,
    add_special_tokens: bool = False,
) -> list[tuple[list[int], int | None]]:
    """Token ids of each text (and its length before truncation, or None), with clear refusals.

    add_special_tokens wraps a text in [CLS] ... [SEP], as BERT was trained.
    """
    encoded = []
    for number, text in enumerate(texts, start=1):
        label = f"text {number}" if len(texts) > 1 else "the text"
        ids = tokenizer.encode(check_text(text, label, ExplorerInputError))
        if not text.strip() or not ids:
            raise ExplorerInputError(
                f"{label} is empty (no tokens): give a sentence to look at, e.g. --text 'The cat sat'"
            )
        if add_special_tokens:
            ids = [tokenizer.cls_id, *ids, tokenizer.sep_id]
        original = None
        if len(ids) > max_positions:
            if not truncate:
                raise ExplorerInputError(
                    f"{label} has {len(ids)} tokens but the model reads at most {max_positions} positions "
                    "(num_max_positions): shorten it, or pass --truncate (truncate=True) to keep the "
                    f"first {max_positions}"
                )
            original = len(ids)
            # keep the first tokens; a closing [SEP] stays the last one
            ids = ids[: max_positions - 1] + ids[-1:] if add_special_tokens else ids[:max_positions]
        encoded.append((ids, original))
    return encoded


def pad_batch(encoded: list[list[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """(x, padding_mask), both (B, T): the texts right-padded to the longest, True where padding."""
    T = max(len(ids) for ids in encoded)
    x = torch.full((len(encoded), T), pad_id, dtype=torch.long)
    padding_mask = torch.ones(len(encoded), T, dtype=torch.bool)
    for row, ids in enumerate(encoded):
        x[row, : len(ids)] = torch.tensor(ids)
        padding_mask[row, : len(ids)] = False
    return x, padding_mask


# ----------------------------------------------------------------------------------------------
# The forward pass and what is read off it
# ----------------------------------------------------------------------------------------------


@contextmanager
def record_block_outputs(model: TransformerWithLMHead):
    """Record the output of every layer's attention and feed-forward (each (B, T, E)) during a forward.

    Yields {"attention": [...], "feed_forward": [...]}, filled layer by layer.
    """
    outputs: dict[str, list[Tensor]] = {"attention": [], "feed_forward": []}
    transformer = model.transformer
    handles = [m.register_forward_hook(lambda _m, _i, out: outputs["attention"].append(out[0]))
               for m in (block.attention for block in transformer.blocks)]  # fmt: skip
    handles += [m.register_forward_hook(lambda _m, _i, out: outputs["feed_forward"].append(out))
                for m in (block.feed_forward for block in transformer.blocks) if m is not None]  # fmt: skip
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def lens_probs(model: TransformerWithLMHead, hidden: Tensor) -> Tensor:
    """The logit lens: next-token probabilities read off a residual-stream state (B, T, E) → (B, T, V).

    The state goes through the model's final layer norm (if it has one) and its LM head (tied to the
    token embeddings); for the top layer's state this is exactly the model's own output distribution.
    """
    norm = model.transformer.final_layer_norm
    return model.lm_head(norm(hidden) if norm is not None else hidden).softmax(dim=-1)


def allowed_attention(model: TransformerWithLMHead, padding_mask: Tensor) -> Tensor:
    """(B, T, T) bool, True where query i may attend to key j: the model's own mask (causal + padding)."""
    B, T = padding_mask.shape
    mask, is_causal = model.transformer.attention_mask(padding_mask, T, T)
    if mask is None:
        full = torch.ones(T, T, dtype=torch.bool, device=padding_mask.device)
        mask = full.tril() if is_causal else full
    return mask.expand(B, 1, T, T)[:, 0]


def masked_copies(ids: Tensor, n: int, mask_id: int) -> Tensor:
    """(n, T): row t is `ids` (T,) with position t replaced by [MASK] (a masked model's question)."""
    rows = ids.repeat(n, 1)
    rows[torch.arange(n), torch.arange(n)] = mask_id
    return rows


def top_predictions(probs: Tensor, k: int, targets: Tensor) -> dict[str, list]:
    """Top-k ids and probabilities (T, V) → per position, and the probability and rank of each target."""
    values, ids = probs.topk(k, dim=-1)  # (T, k)
    valid = targets >= 0
    target_prob = probs.gather(1, targets.clamp(min=0)[:, None])[:, 0]  # (T,)
    rank = (probs > target_prob[:, None]).sum(-1) + 1  # (T,): 1 = the top prediction
    return {
        "ids": ids.tolist(),
        "probs": [[round(p, 4) for p in row] for row in values.tolist()],
        "target_prob": [round(p, 4) if v else None for p, v in zip(target_prob.tolist(), valid.tolist())],
        "target_rank": [r if v else None for r, v in zip(rank.tolist(), valid.tolist())],
    }


def quantize(attention: Tensor) -> str:
    """Attention probabilities in [0, 1] as base64 bytes (round(255 p)): 1 byte a weight, ±0.002."""
    data = (attention.clamp(0, 1) * 255).round().to(torch.uint8).flatten().cpu().numpy().tobytes()
    return base64.b64encode(data).decode("ascii")


def head_summaries(attentions: list[Tensor], tokens: Tensor, causal: bool) -> dict:
    """Per layer and head, over one text's n real tokens (each attention (nh, n, n), tokens (n,)).

    Each measure is a list (layer) of lists (head); "uniform" holds what a head that spreads its weight
    evenly over the tokens it may see scores on the same text (`circuits.uniform_attention`), the
    baseline a number means something beside. prefix_matching only when the text repeats a token.
    """
    n = tokens.shape[0]
    measures = {
        "previous_token": previous_token_share if n > 1 else lambda a: torch.zeros(a.shape[1]),
        "first_token": lambda a: column_share(a, 0),
        "self": lambda a: a.diagonal(dim1=-2, dim2=-1).mean(dim=(0, -1)),
        "entropy": attention_entropy,
    }
    if induction_targets(tokens[None]).any():
        measures["prefix_matching"] = lambda a: prefix_matching_score(a, tokens[None])
    uniform = uniform_attention(n, causal, tokens.device)  # (1, 1, n, n)
    summary: dict = {
        name: [_rounded(measure(a[None]), 4) for a in attentions] for name, measure in measures.items()
    }
    summary["uniform"] = {name: round(measure(uniform).item(), 4) for name, measure in measures.items()}
    return summary


def token_label(tokenizer: Tokenizer, index: int) -> str:
    """How a token is shown: its vocabulary entry, with byte-level BPE's space/newline marks made visible."""
    token = tokenizer.id_to_token(index)
    if token is None:
        return f"<{index}>"
    return token.replace("Ġ", "␣").replace("Ċ", "⏎")


# ----------------------------------------------------------------------------------------------
# Everything the page needs
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def explorer_data(
    model: TransformerWithLMHead,
    tokenizer: Tokenizer,
    texts: str | list[str],
    top_k: int = 5,
    truncate: bool = False,
    add_special_tokens: bool = False,
    name: str = "model",
) -> dict:
    """The page's data (JSON-ready) for `texts` (one or several; several are padded into one batch)."""
    texts = list(texts) if isinstance(texts, (list, tuple)) else [texts]  # one text (or not text: refused)
    if not texts:
        raise ExplorerInputError("no text given: pass at least one text to look at")
    check_tokenizer(model, tokenizer)
    config = model.config
    if config.mlm and "mask" not in tokenizer.special_ids:
        raise ExplorerInputError("a masked model needs a tokenizer with a [MASK] token; this one has none")
    encoded = encode_texts(tokenizer, texts, config.num_max_positions, truncate, add_special_tokens)
    top_k = max(1, min(top_k, config.vocab_size))
    pad_id = tokenizer.special_ids.get("pad", 0)
    mask_id = tokenizer.special_ids.get("mask")
    x, padding_mask = pad_batch([ids for ids, _ in encoded], pad_id)  # (B, T) each
    device = next(model.parameters()).device
    x, padding_mask = x.to(device), padding_mask.to(device)

    with evaluating(model):
        with record_block_outputs(model) as blocks:
            out = model.transformer(
                x, padding_mask=padding_mask, output_hidden_states=True, output_attentions=True
            )
        allowed = allowed_attention(model, padding_mask)  # (B, T, T)
        copying = [_rounded(row, 4) for row in copying_score(model)]  # (L, nh)
        pages = []
        for b, (ids, original) in enumerate(encoded):
            text = _text_data(model, b, len(ids), x, padding_mask, out, blocks, allowed[b], top_k, mask_id)
            text["heads"]["copying"] = copying  # read off the weights: the same for every text
            pages.append({"text": texts[b], "length": len(ids), "truncated_from": original, **text})

    used = {i for page in pages for i in page["ids"]}
    used |= {i for page in pages for layer in page["lens"] for row in layer["ids"] if row for i in row}
    return {
        "model": _model_info(model, name),
        "top_k": top_k,
        "add_note": ADD_NOTES.get(config.norm_placement, DEFAULT_ADD_NOTE),
        "vocab": {str(i): token_label(tokenizer, i) for i in sorted(used)},
        "texts": pages,
    }


def _model_info(model: TransformerWithLMHead, name: str) -> dict:
    c = model.config
    return {
        "name": name,
        "layers": c.num_layers,
        "heads": c.num_heads,
        "embed_dim": c.embed_dim,
        "hidden_dim": c.hidden_dim,
        "positions": c.num_max_positions,
        "vocab_size": c.vocab_size,
        "causal": c.causal,
        "norm_placement": c.norm_placement,
        "final_layer_norm": c.final_layer_norm,
        "parameters": model.num_parameters(),
    }


def _text_data(model, b, n, x, padding_mask, out, blocks, allowed, k, mask_id) -> dict:
    """Row b of the batch (x, padding_mask: (B, T)), a text of n real tokens; see `explorer_data`."""
    attention = torch.stack([a[b] for a in out.attentions])  # (L, nh, T, T)
    residual = {
        "norm": [_rounded(h[b].norm(dim=-1)) for h in out.hidden_states],  # L + 1 × (T,)
        "attention": [_rounded(a[b].norm(dim=-1)) for a in blocks["attention"]],  # L × (T,)
        "feed_forward": [_rounded(f[b].norm(dim=-1)) for f in blocks["feed_forward"]]
        or [_rounded(torch.zeros_like(a[b, :, 0])) for a in blocks["attention"]],  # attention-only: adds 0
    }
    lens, targets = logit_lens(model, x[b], padding_mask[b], n, [h[b] for h in out.hidden_states], k, mask_id)
    return {
        "ids": x[b].tolist(),
        "pad": padding_mask[b].tolist(),
        "targets": targets.tolist(),
        "allowed": ["".join("1" if v else "0" for v in row) for row in allowed.tolist()],
        # only the cells the mask allows (row by row): masked ones are exactly 0, half of a causal matrix
        "attention": quantize(attention[:, :, allowed]),  # (L, nh, allowed cells)
        "attention_shape": list(attention.shape),
        "heads": head_summaries([a[:, :n, :n] for a in attention], x[b, :n], model.config.causal),
        "residual": residual,
        "lens": lens,
    }


def logit_lens(
    model: TransformerWithLMHead,
    ids: Tensor,
    padding: Tensor,
    n: int,
    hidden: list[Tensor],
    k: int,
    mask_id: int | None = None,
) -> tuple[list[dict], Tensor]:
    """Top-k predictions read off every layer for the n real positions of one text, and the targets.

    ids, padding: (T,); hidden: L + 1 × (T, E), the text's states from the unmasked pass. A causal
    model predicts the next token at each position (target: ids[t + 1]). A masked model is asked
    about each position with that token replaced by [MASK] (one extra pass of n masked copies; target:
    the token itself), and the lens reads the masked position's state in that copy.
    Returns (L + 1 × top_k dict over n positions, targets (n,) with -1 where there is none).
    """
    if model.config.causal:
        targets = torch.full((n,), -1, dtype=torch.long, device=ids.device)
        targets[: n - 1] = ids[1:n]
        states = [h[None, :n] for h in hidden]  # L + 1 × (1, n, E)
    else:
        targets = ids[:n].clone()
        states = masked_states(model, masked_copies(ids, n, mask_id), padding)
    lens = [top_predictions(lens_probs(model, h)[0], k, targets) for h in states]
    return lens, targets


def masked_states(
    model: TransformerWithLMHead, copies: Tensor, padding: Tensor, chunk: int = 32
) -> list[Tensor]:
    """Every layer's state at the masked position of each copy: copies (n, T), row t masked at t.

    Returns L + 1 × (1, n, E). The copies run `chunk` at a time, so a long text needs little memory.
    """
    per_layer: list[list[Tensor]] = [[] for _ in range(model.config.num_layers + 1)]
    for start in range(0, copies.shape[0], chunk):
        rows = torch.arange(start, min(start + chunk, copies.shape[0]))  # the masked positions
        part = copies[rows]  # (c, T)
        out = model.transformer(part, padding_mask=padding.expand(len(rows), -1), output_hidden_states=True)
        for layer, h in enumerate(out.hidden_states):  # h: (c, T, E)
            per_layer[layer].append(h[torch.arange(len(rows)), rows])  # (c, E)
    return [torch.cat(parts)[None] for parts in per_layer]


def _rounded(values: Tensor, digits: int = 3) -> list[float]:
    return [round(v, digits) for v in values.tolist()]
