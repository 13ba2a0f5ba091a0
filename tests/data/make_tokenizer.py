"""Build `tests/data/tokenizer.json`, the suite's fixed tokenizer (run once; the file is committed).

The suite reads this file: a 600-token WordPiece vocabulary trained on the first 600 lines of WikiText-2
valid (the text of the `corpus` fixture in conftest.py). It was trained before `Tokenizer.train` was
deterministic (huggingface/tokenizers#1794, issue 33): running this script now gives the same vocabulary
every time, but not this one (6 of 600 pieces differ), which would move the suite's thresholds.

    python tests/data/make_tokenizer.py [DATA_DIR]   # DATA_DIR: default $MINITRANSFORMER_DATA
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

from minitransformer.data.wikitext import read_lines
from minitransformer.tokenization import Tokenizer

CORPUS_LINES = 600  # the first lines of wiki.valid.tokens the corpus fixture uses
VOCAB_SIZE = 600


def main(data_dir: Path) -> None:
    lines = itertools.islice(read_lines(data_dir / "wikitext-2" / "wiki.valid.tokens"), CORPUS_LINES)
    tokenizer = Tokenizer.train(list(lines), vocab_size=VOCAB_SIZE)
    tokenizer.save_pretrained(Path(__file__).parent)
    print(f"wrote {Path(__file__).parent / 'tokenizer.json'} ({tokenizer.vocab_size} tokens)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else os.environ["MINITRANSFORMER_DATA"]))
