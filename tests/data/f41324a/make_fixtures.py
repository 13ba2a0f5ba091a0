"""Writes the tiny model folders beside this file with the code of commit f41324a (before `Block`):

    git worktree add /tmp/old f41324a && PYTHONPATH=/tmp/old python tests/data/f41324a/make_fixtures.py tests/data/f41324a

Each folder gets the logits that code computed for a fixed input (expected.safetensors), which
tests/test_checkpoint.py compares with today's model loaded from the folder.
"""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from minitransformer import TransformerConfig
from minitransformer.config import FineTuningConfig
from minitransformer.model import TransformerWithClfHead, TransformerWithLMHead

out = Path(sys.argv[1])
small = dict(
    embed_dim=8, hidden_dim=12, num_heads=2, num_layers=2, num_embeddings=20, num_max_positions=8, dropout=0.0
)
models = {
    "pre": TransformerWithLMHead(
        TransformerConfig(**small, norm_placement="pre", final_layer_norm=True, init_scheme="gpt2")
    ),
    "post": TransformerWithLMHead(
        TransformerConfig(**small, norm_placement="post", embedding_layer_norm=True)
    ),
    "hands_on": TransformerWithClfHead(
        TransformerConfig(**small), FineTuningConfig(num_classes=3, adapters_dim=4, dropout=0.0)
    ),
    "masked": TransformerWithLMHead(
        TransformerConfig(
            **small,
            mlm=True,
            norm_placement="post",
            lm_head_transform=True,
            lm_head_bias=True,
            activation="gelu",
        )
    ),
}
x = torch.tensor([[1, 5, 7, 3, 2, 9], [4, 4, 8, 1, 0, 0]])
for name, model in models.items():
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    model.eval()
    model.save_pretrained(out / name)
    with torch.no_grad():
        clf = torch.zeros(2, 6, dtype=torch.bool)
        clf[0, 5] = clf[1, 3] = True
        y = model(x, clf, padding_mask=x == 0) if name == "hands_on" else model(x)
    save_file({"x": x, "logits": y.contiguous()}, str(out / name / "expected.safetensors"))
