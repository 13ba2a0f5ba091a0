"""minitransformer: the NAACL 2019 transfer-learning Transformer, from scratch, teachable and real."""

from .checkpoint import from_hands_on_state_dict, load_checkpoint_state
from .config import FineTuningConfig, TransformerConfig
from .generation import generate
from .model import (
    Block,
    MultiHeadSelfAttention,
    Transformer,
    TransformerOutput,
    TransformerWithClfHead,
    TransformerWithLMHead,
    init_module_weights,
)

__all__ = [
    "Block",
    "FineTuningConfig",
    "MultiHeadSelfAttention",
    "Transformer",
    "TransformerConfig",
    "TransformerOutput",
    "TransformerWithClfHead",
    "TransformerWithLMHead",
    "from_hands_on_state_dict",
    "generate",
    "init_module_weights",
    "load_checkpoint_state",
]
__version__ = "0.1.0"
