"""Look inside a model: a self-contained, interactive HTML page of its attention, predictions and
residual stream for a text.

    from minitransformer.explore import explore
    explore(model, tokenizer, "The cat sat on the mat.")            # shows inline in Jupyter
    explore(model, tokenizer, text).save("page.html")                # or writes the page

    python -m minitransformer explore MODEL_DIR --text "The cat sat on the mat." --output page.html

The page needs nothing but a browser: data, script and styles are inside the one file.
"""

from __future__ import annotations

import os
from pathlib import Path

from minitransformer import TransformerWithLMHead

from ..tokenization import Tokenizer
from .data import ExplorerInputError, explorer_data, lens_probs
from .loading import load_model_dir
from .page import Explorer, render_page

__all__ = [
    "Explorer",
    "ExplorerInputError",
    "explore",
    "explorer_data",
    "lens_probs",
    "load_model_dir",
    "render_page",
    "write_page",
]


def explore(
    model: TransformerWithLMHead,
    tokenizer: Tokenizer,
    text: str | list[str],
    top_k: int = 5,
    truncate: bool = False,
    add_special_tokens: bool = False,
    name: str = "model",
) -> Explorer:
    """The explorer for `text` (a string, or several padded into one batch); displays inline in Jupyter.

    add_special_tokens wraps each text in [CLS] ... [SEP] (as BERT was trained); truncate keeps the
    first num_max_positions tokens of a longer text instead of refusing it.
    """
    data = explorer_data(model, tokenizer, text, top_k, truncate, add_special_tokens, name)
    return Explorer(data)


def write_page(
    model: TransformerWithLMHead,
    tokenizer: Tokenizer,
    text: str | list[str],
    path: str | os.PathLike,
    **options,
) -> Path:
    """Write the explorer page for `text` to `path` (atomically); `options` as for `explore`."""
    return explore(model, tokenizer, text, **options).save(path)
