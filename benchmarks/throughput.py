"""Item 1: training-step throughput (forward + backward + AdamW) at identical dimensions.

Sides, all causal LMs with tied output weights, ReLU feed-forward, dropout 0.1, in training mode:
  - ours: `minitransformer.TransformerWithLMHead`;
  - hands-on: the NAACL 2019 hands-on's formulation, rebuilt below from standard torch modules
    (seq-first `nn.MultiheadAttention`, a float -inf causal mask rebuilt on every forward);
  - GPT-2 sdpa / eager: `transformers.GPT2LMHeadModel` with the same shape.
Masked LM (item 1 of issue 18): ours (LM head on the 15 % scored positions only), ours with the
full projection, `transformers.BertForMaskedLM` (sdpa, ReLU), BERT's head transform on both.
Every side uses the same `torch.optim.AdamW` settings. MFU divides the achieved FLOP rate by the
fp32 matmul rate this machine reaches in the same run (a large square matmul, same threads), timed
interleaved with the models so that contention lowers both alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks import Result, interleaved, machine_line
from minitransformer import TransformerConfig
from minitransformer.config import IGNORE_INDEX
from minitransformer.model import TransformerWithLMHead
from minitransformer.presets import PRETRAIN_PRESETS, TINY_V2
from minitransformer.training.flops import flops_per_token


@dataclass(frozen=True)
class Shape:
    """Model and batch dimensions shared by every side."""

    name: str
    embed_dim: int
    hidden_dim: int
    num_heads: int
    num_layers: int
    seq_len: int
    vocab_size: int
    batch_size: int

    @classmethod
    def from_preset(cls, name: str, preset: dict | None = None, **overrides) -> Shape:
        """The model and batch of `python -m pretrain --preset NAME` (minitransformer.presets), or of the
        given preset values under that name."""
        p = preset or PRETRAIN_PRESETS[name]
        dims = (p["embed_dim"], p["hidden_dim"], p["num_heads"], p["num_layers"], p["num_max_positions"])
        values = dict(zip(("embed_dim", "hidden_dim", "num_heads", "num_layers", "seq_len"), dims))
        values.update(vocab_size=p["vocab_size"], batch_size=p["batch_size"])
        return cls(name, **{**values, **overrides})

    def flops_per_token(self, head_fraction: float = 1.0, **config_overrides) -> int:
        """Training FLOPs per token of our model at this shape (`minitransformer.training.flops.flops_per_token`:
        6·N + 12·L·T·E, attention over the full T×T square)."""
        return flops_per_token(self.config(**config_overrides), self.seq_len, head_fraction)

    def config(self, **overrides) -> TransformerConfig:
        """Our model's config at these dimensions (dropout 0.1, the hands-on's), with `overrides`."""
        dims = dict(
            embed_dim=self.embed_dim,
            hidden_dim=self.hidden_dim,
            num_heads=self.num_heads,
            num_layers=self.num_layers,
            num_max_positions=self.seq_len,
            vocab_size=self.vocab_size,
            dropout=0.1,
        )
        return TransformerConfig(**{**dims, **overrides})


TINY = Shape.from_preset("tiny", TINY_V2)  # the 256-dim tiny of before issue 32: the documented numbers
# 4× the non-embedding parameters of TINY_MODEL (the 256-dim tiny shape before issue 32)
LARGE = Shape("4x", 512, 2048, 8, 4, 128, 8000, 16)
QUICK = Shape("quick", 64, 256, 2, 2, 32, 1000, 4)  # for the crash test only


class HandsOnTransformer(nn.Module):
    """The hands-on's causal LM as its code was written: seq-first, `nn.MultiheadAttention` blocks."""

    def __init__(self, s: Shape, dropout: float = 0.1):
        super().__init__()
        E = s.embed_dim
        self.tokens_embeddings = nn.Embedding(s.vocab_size, E)
        self.position_embeddings = nn.Embedding(s.seq_len, E)
        self.dropout = nn.Dropout(dropout)
        self.attentions = nn.ModuleList(
            nn.MultiheadAttention(E, s.num_heads, dropout=dropout) for _ in range(s.num_layers)
        )
        self.feed_forwards = nn.ModuleList(
            nn.Sequential(nn.Linear(E, s.hidden_dim), nn.ReLU(), nn.Linear(s.hidden_dim, E))
            for _ in range(s.num_layers)
        )
        self.layer_norms_1 = nn.ModuleList(nn.LayerNorm(E, eps=1e-12) for _ in range(s.num_layers))
        self.layer_norms_2 = nn.ModuleList(nn.LayerNorm(E, eps=1e-12) for _ in range(s.num_layers))
        self.lm_head = nn.Linear(E, s.vocab_size, bias=False)
        self.lm_head.weight = self.tokens_embeddings.weight

    def forward(self, x: Tensor) -> Tensor:
        """x: (T, B) token ids → next-token cross-entropy."""
        positions = torch.arange(len(x), device=x.device).unsqueeze(-1)  # (T, 1)
        h = self.tokens_embeddings(x)  # (T, B, E)
        h = h + self.position_embeddings(positions).expand_as(h)
        h = self.dropout(h)
        attn_mask = torch.full((len(x), len(x)), -float("Inf"), device=h.device, dtype=h.dtype)
        attn_mask = torch.triu(attn_mask, diagonal=1)  # (T, T)
        for ln_1, attention, ln_2, feed_forward in zip(
            self.layer_norms_1, self.attentions, self.layer_norms_2, self.feed_forwards
        ):
            h = ln_1(h)
            a, _ = attention(h, h, h, attn_mask=attn_mask, need_weights=False)
            h = self.dropout(a) + h
            h = ln_2(h)
            h = self.dropout(feed_forward(h)) + h
        logits = self.lm_head(h)  # (T, B, V)
        return F.cross_entropy(logits[:-1].reshape(-1, logits.size(-1)), x[1:].reshape(-1))


def build_ours(s: Shape) -> nn.Module:
    return TransformerWithLMHead(s.config())


def build_gpt2(s: Shape, attn_implementation: str) -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=s.vocab_size,
        n_positions=s.seq_len,
        n_embd=s.embed_dim,
        n_inner=s.hidden_dim,
        n_head=s.num_heads,
        n_layer=s.num_layers,
        activation_function="relu",
        bos_token_id=0,
        eos_token_id=0,
        attn_implementation=attn_implementation,
    )
    return GPT2LMHeadModel(config)


def build_bert(s: Shape) -> nn.Module:
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(
        vocab_size=s.vocab_size,
        hidden_size=s.embed_dim,
        num_hidden_layers=s.num_layers,
        num_attention_heads=s.num_heads,
        intermediate_size=s.hidden_dim,
        hidden_act="relu",
        max_position_embeddings=s.seq_len,
        attn_implementation="sdpa",
    )
    return BertForMaskedLM(config)


MLM_CONFIG = dict(mlm=True, lm_head_transform=True, lm_head_bias=True)  # BERT's head: dense + norm, bias


def mlm_sides(s: Shape, x: Tensor) -> dict[str, Callable[[], None]]:
    """Masked-LM training steps on x: (B, T) with 15 % of positions scored: ours (the LM head on the
    scored positions only), ours with the full projection (as before), `BertForMaskedLM`."""
    generator = torch.Generator().manual_seed(1)
    labels = torch.where(torch.rand(x.shape, generator=generator) < 0.15, x, torch.full_like(x, IGNORE_INDEX))
    torch.manual_seed(0)
    ours, full = (TransformerWithLMHead(s.config(**MLM_CONFIG)) for _ in range(2))
    bert = build_bert(s)

    def full_loss() -> Tensor:  # every position through the head, then the loss over the scored ones
        return F.cross_entropy(full(x).flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)

    return {
        "ours": train_step(ours, lambda: ours(x, labels=labels)[1]),
        "ours-full-head": train_step(full, full_loss),
        "bert": train_step(bert, lambda: bert(input_ids=x, labels=labels).loss),
    }


def train_step(model: nn.Module, loss_fn: Callable[[], Tensor]) -> Callable[[], None]:
    """A closure running one forward + backward + AdamW step of `model`."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn().backward()
        optimizer.step()

    return step


def sides(s: Shape, x: Tensor) -> dict[str, Callable[[], None]]:
    """One training-step closure per side, all on the same batch x: (B, T)."""
    torch.manual_seed(0)
    ours, hands_on = build_ours(s), HandsOnTransformer(s)
    gpt2_sdpa, gpt2_eager = build_gpt2(s, "sdpa"), build_gpt2(s, "eager")
    x_seq_first = x.t().contiguous()  # (T, B)
    return {
        "ours": train_step(ours, lambda: ours(x, labels=x)[1]),
        "hands-on": train_step(hands_on, lambda: hands_on(x_seq_first)),
        "gpt2-sdpa": train_step(gpt2_sdpa, lambda: gpt2_sdpa(x, labels=x).loss),
        "gpt2-eager": train_step(gpt2_eager, lambda: gpt2_eager(x, labels=x).loss),
    }


def matmul_peak(n: int = 2048, iterations: int = 4) -> tuple[Callable[[], None], float]:
    """A closure running `iterations` n×n fp32 matmuls, and the FLOPs it performs."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)

    def run() -> None:
        for _ in range(iterations):
            torch.mm(a, b, out=out)

    return run, 2.0 * n**3 * iterations


def profile_ours(s: Shape, x: Tensor, steps: int = 3, top: int = 12) -> str:
    """torch.profiler table of our training step's top ops by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    model = build_ours(s)
    step = train_step(model, lambda: model(x, labels=x)[1])
    step()  # warm-up outside the trace
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top)


def table(title: str, seconds: dict[str, float], tokens: int, flops_per_token: int, peak: float) -> None:
    """Print ms/step, tokens/s, MFU and the time ratio to ours for every side."""
    print(f"{title} | FLOPs/token (6N + 12LTE): {flops_per_token:,}")
    print(f"{'side':<15} {'ms/step':>8} {'tokens/s':>9} {'MFU':>6} {'ours vs':>8}")
    for name, t in seconds.items():
        mfu = flops_per_token * tokens / t / peak
        print(f"{name:<15} {t * 1e3:8.1f} {tokens / t:9.0f} {mfu:6.1%} {t / seconds['ours']:7.2f}x")


def run(quick: bool = False, profile: bool = False) -> list[Result]:
    """Benchmark each shape, causal then masked LM; print a table each, return the headline results."""
    shapes = [QUICK] if quick else [TINY, LARGE]
    repeats = 2 if quick else 5
    results = []
    for s in shapes:
        x = torch.randint(
            0, s.vocab_size, (s.batch_size, s.seq_len), generator=torch.Generator().manual_seed(0)
        )
        peak_fn, peak_flops = matmul_peak(256 if quick else 2048)
        seconds = interleaved({**sides(s, x), "matmul-peak": peak_fn}, repeats=repeats)
        peak = peak_flops / seconds.pop("matmul-peak")
        tokens = s.batch_size * s.seq_len
        print(f"\n[throughput] shape {s} | {machine_line()}")
        print(f"fp32 matmul peak measured: {peak / 1e9:.1f} GFLOP/s")
        table("causal LM", seconds, tokens, s.flops_per_token(), peak)
        fastest_baseline = min(seconds[n] for n in seconds if n != "ours")
        results.append(
            Result(f"throughput-{s.name}", tokens / seconds["ours"], tokens / fastest_baseline, "tokens/s")
        )
        mlm = interleaved(mlm_sides(s, x), repeats=repeats)
        table("masked LM, 15 % scored", mlm, tokens, s.flops_per_token(0.15, **MLM_CONFIG), peak)
        full = mlm["ours-full-head"]
        gain = f"full head {tokens / full:.4g} tokens/s: {full / mlm['ours']:.2f}x"
        results.append(
            Result(
                f"mlm-throughput-{s.name}", tokens / mlm["ours"], tokens / mlm["bert"], "tokens/s", note=gain
            )
        )
        if profile:
            print(f"\ntop ops of our training step ({s.name}):\n{profile_ours(s, x)}")
    return results
