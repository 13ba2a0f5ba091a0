"""minitransformer: the NAACL 2019 transfer-learning Transformer, from scratch, teachable and real."""

from .checkpoint import from_hands_on_state_dict, load_checkpoint_state
from .checkpoint import from_tutorial_state_dict as from_tutorial_state_dict  # the old name
from .config import FineTuningConfig, TransformerConfig
from .generation import generate
from .model import (
    Block,
    MultiHeadSelfAttention,
    Transformer,
    TransformerOutput,
    TransformerWithClfHead,
    TransformerWithLMHead,
    init_weights,
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
    "init_weights",
    "load_checkpoint_state",
]
__version__ = "0.1.0"

# Modules that lived directly in the package before it was grouped into training/, runs/, interop/ and
# teaching/: `from minitransformer import plots` (and the like) still works, imported on first use.
_MOVED = {
    "engine": "training.engine",
    "optim": "training.optimizers",
    "stability": "training.stability",
    "metrics": "training.metrics",
    "flops": "training.flops",
    "options": "runs.options",
    "run_dir": "runs.run_dir",
    "run_state": "runs.run_state",
    "io": "runs.io",
    "errors": "runs.errors",
    "tracking": "runs.tracking",
    "hf": "interop.hf",
    "hf_cli": "interop.hf_cli",
    "hands_on": "interop.hands_on",
    "plots": "teaching.plots",
    "inspection": "teaching.inspection",
    "exercises": "teaching.exercises",
}


def __getattr__(name: str):
    if name in _MOVED:
        import importlib

        return importlib.import_module(f".{_MOVED[name]}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
