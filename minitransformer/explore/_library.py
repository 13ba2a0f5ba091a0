"""The library pieces the explorer uses that live in modules being reorganised: imported here only,
so that a move changes this one file."""

from minitransformer.checkpoint import read_config
from minitransformer.errors import run_cli
from minitransformer.inspection import column_share, previous_token_share
from minitransformer.io import write_text_atomic
from minitransformer.tokenization import Tokenizer

__all__ = [
    "Tokenizer",
    "column_share",
    "hf",
    "read_config",
    "previous_token_share",
    "run_cli",
    "write_text_atomic",
]


def hf():
    """`minitransformer.hf`, imported when a Hugging Face directory is opened."""
    from minitransformer import hf as module

    return module
