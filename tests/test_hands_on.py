"""`interop.hands_on`: the NAACL hands-on's own checkpoint (a saved state dict and its pickled args)
loads into our model with the same outputs."""

from __future__ import annotations

import argparse

import pytest
import torch
from conftest import padded_batch, randomize
from torch import nn

from minitransformer.interop import hands_on


class HandsOnTransformer(nn.Module):
    """The hands-on's model as it was written: sequence-first, nn.MultiheadAttention, ReLU MLP."""

    def __init__(
        self, embed_dim, hidden_dim, num_embeddings, num_max_positions, num_heads, num_layers, causal
    ):
        super().__init__()
        self.causal = causal
        self.tokens_embeddings = nn.Embedding(num_embeddings, embed_dim)
        self.position_embeddings = nn.Embedding(num_max_positions, embed_dim)
        self.attentions = nn.ModuleList(
            nn.MultiheadAttention(embed_dim, num_heads) for _ in range(num_layers)
        )
        self.feed_forwards = nn.ModuleList(
            nn.Sequential(nn.Linear(embed_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, embed_dim))
            for _ in range(num_layers)
        )
        self.layer_norms_1 = nn.ModuleList(nn.LayerNorm(embed_dim, eps=1e-12) for _ in range(num_layers))
        self.layer_norms_2 = nn.ModuleList(nn.LayerNorm(embed_dim, eps=1e-12) for _ in range(num_layers))

    def forward(self, x, padding_mask=None):  # x: (T, B)
        positions = torch.arange(len(x)).unsqueeze(-1)  # (T, 1)
        h = self.tokens_embeddings(x) + self.position_embeddings(positions)  # (T, B, E)
        attn_mask = torch.full((len(x), len(x)), float("-inf")).triu(diagonal=1) if self.causal else None
        for ln_1, attention, ln_2, feed_forward in zip(
            self.layer_norms_1, self.attentions, self.layer_norms_2, self.feed_forwards
        ):
            h = ln_1(h)
            a, _ = attention(h, h, h, attn_mask=attn_mask, need_weights=False, key_padding_mask=padding_mask)
            h = a + h
            h = ln_2(h)
            h = feed_forward(h) + h
        return h


class HandsOnLM(nn.Module):
    def __init__(self, **config):
        super().__init__()
        self.transformer = HandsOnTransformer(**config)
        self.lm_head = nn.Linear(config["embed_dim"], config["num_embeddings"], bias=False)
        self.lm_head.weight = self.transformer.tokens_embeddings.weight

    def forward(self, x, padding_mask=None):
        return self.lm_head(self.transformer(x, padding_mask))


HANDS_ON = dict(
    embed_dim=20, hidden_dim=36, num_embeddings=45, num_max_positions=12, num_heads=5, num_layers=2
)


@pytest.mark.parametrize("mlm", [False, True])
def test_hands_on_checkpoint_gives_the_same_outputs(tmp_path, mlm):
    reference = randomize(HandsOnLM(**HANDS_ON, causal=not mlm), std=0.3)
    torch.save(reference.state_dict(), tmp_path / "model_checkpoint.pth")
    model = hands_on.from_hands_on_checkpoint(tmp_path / "model_checkpoint.pth", num_heads=5, mlm=mlm)
    ids, mask = padded_batch(45) if mlm else (torch.randint(45, (2, 12)), torch.ones(2, 12, dtype=torch.long))
    real = mask.bool()
    with torch.no_grad():
        expected = reference(ids.t(), padding_mask=~real if mlm else None).transpose(0, 1)  # (B, T, V)
        got = model(ids, padding_mask=~real if mlm else None)
    assert float((got - expected).abs()[real].max()) <= 1e-5


def test_hands_on_args_file_needs_trust_pickle(tmp_path):
    torch.save(randomize(HandsOnLM(**HANDS_ON, causal=True)).state_dict(), tmp_path / "model_checkpoint.pth")
    args = argparse.Namespace(**HANDS_ON, mlm=False, dropout=0.15, lr=2.5e-4)
    torch.save(args, tmp_path / "model_training_args.bin")
    pth, args_file = tmp_path / "model_checkpoint.pth", tmp_path / "model_training_args.bin"
    with pytest.raises(ValueError, match="trust_pickle=True") as error:
        hands_on.from_hands_on_checkpoint(pth, args_file)
    assert "--trust-pickle" not in str(error.value)  # issue 27 item 29: no program has that flag
    with pytest.raises(ValueError, match="num_heads"):
        hands_on.from_hands_on_checkpoint(pth)
    with pytest.raises(ValueError, match="num_layers=3 contradicts"):
        hands_on.from_hands_on_checkpoint(pth, num_heads=5, mlm=False, num_layers=3)
    model = hands_on.from_hands_on_checkpoint(pth, args_file, trust_pickle=True)
    assert (model.config.num_heads, model.config.dropout, model.config.causal) == (5, 0.15, True)
