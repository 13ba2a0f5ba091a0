"""Configurations: one dataclass for the Transformer, one for fine-tuning a classifier on top of it.

The field names and defaults of `TransformerConfig` are the NAACL 2019 hands-on's (embed 410, hidden
2100, 256 positions, 10 heads, 16 layers, dropout 0.1). The extra switches (activation, norm placement,
final/embedding layer norms, token types, biases, LM-head transform) exist so that GPT-2 and BERT
weights can be hosted by the very same code; their defaults reproduce the hands-on exactly.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

IGNORE_INDEX = -100  # a label the losses skip (PyTorch's cross-entropy default), e.g. padding
ACTIVATIONS = ("relu", "gelu", "gelu_tanh")
NORM_PLACEMENTS = ("hands_on", "pre", "post")
ATTENTION_IMPLS = ("sdpa", "explicit")
INIT_SCHEMES = ("hands_on", "gpt2")
POOLINGS = ("clf", "mean", "max", "weighted")


class _JsonConfig:
    """JSON round trip shared by both configs; unknown keys are an error, not silently dropped."""

    # Fields renamed since config.json files were written with them (old key → field): still read.
    RENAMED_FIELDS: ClassVar[dict[str, str]] = {}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[arg-type]

    @classmethod
    def current_names(cls, values: dict[str, Any]) -> dict[str, Any]:
        """`values` with the old names of renamed fields (`RENAMED_FIELDS`) read as the new ones."""
        values = dict(values)
        for old, new in cls.RENAMED_FIELDS.items():
            if old in values:
                if new in values:
                    raise ValueError(f"{cls.__name__}: {old!r} is the old name of {new!r}; give only {new!r}")
                values[new] = values.pop(old)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        values = cls.current_names(values)
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}; known fields are {sorted(known)}")
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str):
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, path: str | os.PathLike):
        path = Path(path)
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"config file not found: {path}") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON ({e}); re-save the model directory") from None
        return cls.from_dict(values)


# Values renamed since files and command lines were written with them: still read, with a note.
# "tutorial" meant the NAACL hands-on's code, not this project's tutorials/.
RENAMED_VALUES = {"tutorial": "hands_on"}
_noted: set[str] = set()


def renamed(value: str, what: str, renames: dict[str, str] = RENAMED_VALUES) -> str:
    """`value`, or its new name when it is an old one (saying so once per process, on stderr)."""
    if value not in renames:
        return value
    new = renames[value]
    if what not in _noted:
        _noted.add(what)
        print(f"note: {what} {value!r} is now called {new!r}; reading it as {new!r}", file=sys.stderr)
    return new


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass
class TransformerConfig(_JsonConfig):
    """Shape and architecture of the Transformer backbone and its LM head.

    norm_placement:
      - "hands_on": the hands-on's code, which overwrites the hidden state with its normalised value
        before the residual: h = ln(h); h = attn(h) + h   (the residual carries the *normed* h)
      - "pre": GPT-2's, h = h + attn(ln(h)); usually with final_layer_norm=True
      - "post": BERT's (and the original Transformer's), h = ln(h + attn(h))
    """

    embed_dim: int = 410
    hidden_dim: int = 2100
    num_max_positions: int = 256
    vocab_size: int = 28996  # BERT-base-cased WordPiece, the hands-on's tokenizer
    num_heads: int = 10
    num_layers: int = 16
    dropout: float = 0.1
    initializer_range: float = 0.02
    mlm: bool = False  # True: bidirectional attention + masked-LM loss; False: causal LM
    sinusoidal_embeddings: bool = False  # fixed sin/cos position table instead of learned positions
    # Rotary positions (Su et al. 2021, "RoFormer"): no position table; each query and key is rotated by
    # an angle proportional to its position, so attention scores depend on how far apart two tokens are
    rotary: bool = False
    # Attention-only blocks (no feed-forward, no second norm): the toy models of Elhage et al. (2021),
    # "A Mathematical Framework for Transformer Circuits"
    attention_only: bool = False
    # Switches for hosting other checkpoints (defaults = the hands-on).
    activation: str = "relu"
    layer_norm_eps: float = 1e-12
    norm_placement: str = "hands_on"  # "tutorial" in files written before the rename: still read
    final_layer_norm: bool = False
    embedding_layer_norm: bool = False
    token_type_vocab_size: int = 0  # 0 = no token-type (segment) embeddings
    bias: bool = True  # biases in attention projections and feed-forward layers
    lm_head_transform: bool = (
        False  # BERT's MLM transform (dense + activation + LayerNorm) before the decoder
    )
    lm_head_bias: bool = False  # an output bias on the (tied) LM decoder, as BERT has
    attention_impl: str = "sdpa"  # "sdpa": fused kernel; "explicit": written out, can return probabilities
    # "hands_on": every weight N(0, initializer_range); "gpt2": the same, but the two projections that
    # write into the residual stream (attention output, feed-forward output) use
    # initializer_range / sqrt(2 * num_layers), GPT-2's scaling, so the stream's variance does not grow
    # with depth at init. Missing from old config.json files, which therefore load as "hands_on".
    init_scheme: str = "hands_on"

    RENAMED_FIELDS = {"num_embeddings": "vocab_size"}  # the hands-on's name, in older config.json files

    def __post_init__(self) -> None:
        self.norm_placement = renamed(self.norm_placement, "norm_placement")
        for name in (
            "embed_dim",
            "hidden_dim",
            "num_max_positions",
            "vocab_size",
            "num_heads",
            "num_layers",
        ):
            value = getattr(self, name)
            _require(isinstance(value, int) and value > 0, f"{name}={value!r} must be a positive integer")
        if self.embed_dim % self.num_heads:  # the suggestion is worked out only when it is needed
            raise ValueError(
                f"embed_dim={self.embed_dim} must be divisible by num_heads={self.num_heads} "
                f"(each head gets embed_dim / num_heads dimensions); e.g. use num_heads="
                f"{_divisors_near(self.embed_dim, self.num_heads)}"
            )
        _require(0.0 <= self.dropout < 1.0, f"dropout={self.dropout} must be in [0, 1)")
        _require(self.initializer_range > 0, f"initializer_range={self.initializer_range} must be > 0")
        _require(self.layer_norm_eps > 0, f"layer_norm_eps={self.layer_norm_eps} must be > 0")
        _require(self.token_type_vocab_size >= 0, "token_type_vocab_size must be >= 0 (0 = none)")
        _require(
            self.activation in ACTIVATIONS,
            f"activation={self.activation!r} is not one of {ACTIVATIONS}",
        )
        _require(
            self.norm_placement in NORM_PLACEMENTS,
            f"norm_placement={self.norm_placement!r} is not one of {NORM_PLACEMENTS}",
        )
        _require(
            self.attention_impl in ATTENTION_IMPLS,
            f"attention_impl={self.attention_impl!r} is not one of {ATTENTION_IMPLS}",
        )
        _require(
            self.init_scheme in INIT_SCHEMES,
            f"init_scheme={self.init_scheme!r} is not one of {INIT_SCHEMES}",
        )
        _require(
            not (self.sinusoidal_embeddings and self.embed_dim % 2),
            f"sinusoidal_embeddings needs an even embed_dim, got {self.embed_dim}",
        )
        _require(
            not (self.rotary and self.sinusoidal_embeddings),
            "rotary and sinusoidal_embeddings are two ways to give positions: choose one",
        )
        _require(
            not (self.rotary and self.head_dim % 2),
            f"rotary needs an even head size (embed_dim / num_heads), got {self.head_dim}",
        )

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def causal(self) -> bool:
        return not self.mlm


def _divisors_near(n: int, k: int) -> list[int]:
    """Head counts close to `k` that divide `n`, to suggest in an error message."""
    divisors = [d for d in range(1, min(n, 2 * k + 16) + 1) if n % d == 0]  # 1 always divides
    return sorted(divisors, key=lambda d: abs(d - k))[:3]


@dataclass
class FineTuningConfig(_JsonConfig):
    """How the classification model is built on top of a backbone (the hands-on's fine-tuning config).

    pooling chooses what feeds the classifier: "clf" the classification token's final state (the
    hands-on), "mean"/"max" over non-padding tokens, "weighted" a learned weighted sum of the
    classification token's state in layers pooling_layer_start..top (embedding output = layer 0).
    """

    num_classes: int = 6
    dropout: float = 0.1  # replaces the backbone's dropout while fine-tuning, as in the hands-on
    initializer_range: float = 0.02
    clf_loss_coef: float = 1.0
    lm_loss_coef: float = 0.0  # > 0: multi-task fine-tuning with the LM loss on the same inputs
    adapters_dim: int = 0  # > 0: bottleneck adapters after attention and feed-forward in every layer
    pooler: bool = False  # BERT's pooler (dense + tanh) between the pooled state and the classifier
    pooling: str = "clf"
    pooling_layer_start: int = 0

    def __post_init__(self) -> None:
        _require(
            isinstance(self.num_classes, int) and self.num_classes >= 2,
            f"num_classes={self.num_classes!r}: a classifier needs at least 2 classes",
        )
        _require(0.0 <= self.dropout < 1.0, f"dropout={self.dropout} must be in [0, 1)")
        _require(self.adapters_dim >= 0, f"adapters_dim={self.adapters_dim} must be >= 0 (0 = no adapters)")
        _require(self.pooling in POOLINGS, f"pooling={self.pooling!r} is not one of {POOLINGS}")
        _require(self.pooling_layer_start >= 0, "pooling_layer_start must be >= 0")
        _require(self.clf_loss_coef >= 0 and self.lm_loss_coef >= 0, "loss coefficients must be >= 0")
