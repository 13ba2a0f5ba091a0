"""WikiText for language modelling: locate the splits, count words, binarize to a memmap, cut blocks.

The corpus is tokenized once into a flat array of ids on disk (`binarize`) and read back through a
`numpy.memmap`, so memory stays flat whatever the corpus size. Line ends are kept as separators:
each line's trailing newline becomes the tokenizer's `[SEP]` id (or, for a tokenizer without
`[SEP]`, the single id that encodes "\\n"). Word counts follow the official WikiText counts
(space-separated words plus one end-of-line per line) so that pretraining can report word-level
perplexity: `exp(nll_per_token * num_tokens / num_words)`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from minitransformer.data.paths import default_cache_dir, locate
from minitransformer.runs.io import atomic_path, write_json_atomic
from minitransformer.tokenization import Tokenizer

SPLITS = ("train", "valid", "test")
CACHE_VERSION = 1


@dataclass(frozen=True)
class WikiTextSpec:
    """One WikiText variant: its folder (in the data dir and in the official zip), file suffix, archive."""

    folder: str
    extension: str  # "tokens" (word-level, <unk> replaced) or "raw" (original characters)
    archive: str  # official zip name, relative to the download base URL
    archive_sha256: str  # published sha256 of the official zip (see the README's data sources)
    sha256: dict[str, str] = field(default_factory=dict)  # known hashes of extracted files, by split

    def relative(self, split: str) -> str:
        return f"{self.folder}/wiki.{split}.{self.extension}"


WIKITEXT = {
    "wikitext-2": WikiTextSpec(
        "wikitext-2",
        "tokens",
        "wikitext-2-v1.zip",
        "92675f1d63015c1c8b51f1656a52d5bdbc33aafa60cc47a218a66e7ee817488c",
        {
            "valid": "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8",
            "test": "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0",
        },
    ),
    "wikitext-103": WikiTextSpec(
        "wikitext-103",
        "tokens",
        "wikitext-103-v1.zip",
        "242ba0f20b329cfdf1ccc61e9e9e5b59becf189db7f7a81cd2a0e2fc31539590",
    ),
    "wikitext-2-raw": WikiTextSpec(
        "wikitext-2-raw",
        "raw",
        "wikitext-2-raw-v1.zip",
        "ef7edb566e3e2b2d31b29c1fdb0c89a4cc683597484c3dc2517919c615435a11",
    ),
    "wikitext-103-raw": WikiTextSpec(
        "wikitext-103-raw",
        "raw",
        "wikitext-103-raw-v1.zip",
        "91c00ae287f0d699e18605c84afc9e45c192bc6b7797ff8837e5474655a33794",
    ),
}


def wikitext_path(dataset: str, split: str, data_dir: str | Path | None = None) -> Path:
    """Path of `split` of `dataset`.

    `dataset` is a name in `WIKITEXT` (searched in the data directories, see `paths.find_data_dir`),
    a directory holding `wiki.{split}.tokens`, `wiki.{split}.raw` or `{split}.txt`, or a single
    text file (used as is whatever the split: continued pretraining on your own text).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: choose one of {SPLITS}")
    if dataset in WIKITEXT:
        fix = f"or drop --no-download, or call minitransformer.data.download.download_wikitext({dataset!r})"
        return locate(WIKITEXT[dataset].relative(split), data_dir, fix=fix)
    path = Path(dataset).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        searched = [path / f"wiki.{split}.tokens", path / f"wiki.{split}.raw", path / f"{split}.txt"]
        for candidate in searched:
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"split {split!r} not found: searched {', '.join(map(str, searched))}")
    raise ValueError(
        f"unknown dataset {dataset!r}: use one of {sorted(WIKITEXT)}, a directory or a text file that exists"
    )


def read_lines(path: str | Path, unk_token: str = "[UNK]") -> Iterator[str]:
    """Lines of a WikiText file with `<unk>` replaced by `unk_token`; line ends kept.

    Undecodable bytes become U+FFFD rather than stopping a long run.
    """
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for line in f:
            yield line.replace("<unk>", unk_token)


def _line_words(line: str) -> int:
    return len(line.split()) + 1  # words + the end of line, as the official WikiText counts


def count_words(path: str | Path) -> int:
    """Space-separated words plus one per line (WikiText-2 valid: 217,646; test: 245,569)."""
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        return sum(_line_words(line) for line in f)


def word_perplexity(nll_per_token: float, tokens_per_word: float) -> float:
    """Word-level perplexity from the mean NLL per token (nats): `exp(nll_per_token × tokens / words)`.

    Every language model of the project reports it this way, so that models with different tokenizers
    (or none: an n-gram over the same tokens) compare; capped at e^50 for a diverged model."""
    return math.exp(min(nll_per_token * tokens_per_word, 50.0))


def line_separator_id(tokenizer: Tokenizer) -> int:
    """The id appended after each line: `[SEP]`, else the single id that encodes a newline."""
    if "sep" in tokenizer.special_ids:
        return tokenizer.sep_id
    newline = tokenizer.encode("\n")
    if len(newline) != 1:
        raise ValueError("tokenizer has neither [SEP] nor a newline token to separate lines: add [SEP]")
    return newline[0]


@dataclass
class TokenFile:
    """A binarized corpus: `ids` is a read-only memmap of `num_tokens` ids stored in `path`."""

    path: Path
    ids: np.memmap
    num_tokens: int
    num_words: int
    meta: dict
    from_cache: bool = False  # True when `binarize` reused an existing file

    @property
    def tokens_per_word(self) -> float:
        """Ratio turning per-token NLL into per-word NLL for word-level perplexity."""
        return self.num_tokens / self.num_words

    def __getstate__(self) -> dict:  # DataLoader workers reopen the memmap instead of copying it
        return {k: v for k, v in self.__dict__.items() if k != "ids"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.ids = _open_memmap(self.path, self.meta)


def _open_memmap(path: Path, meta: dict) -> np.memmap:
    return np.memmap(path, dtype=np.dtype(meta["dtype"]), mode="r", shape=(meta["num_tokens"],))


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _reuse(bin_path: Path, meta_path: Path, expected: dict) -> dict | None:
    """The cached meta if the cache matches `expected` and the .bin is complete and intact, else None."""
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if any(meta.get(key) != value for key, value in expected.items()):
        return None
    if (
        not bin_path.is_file()
        or bin_path.stat().st_size != meta["num_tokens"] * np.dtype(meta["dtype"]).itemsize
    ):
        return None
    return meta if _sha256_file(bin_path) == meta["bin_sha256"] else None


def binarize(
    text_path: str | Path,
    tokenizer: Tokenizer,
    cache_dir: str | Path | None = None,
    chunk_lines: int = 10_000,
) -> TokenFile:
    """Tokenize `text_path` once into `cache_dir/<name>.<key>.bin` (+ `.json` meta) and memory-map it.

    Lines are streamed through `encode_batch` `chunk_lines` at a time, so peak memory depends on the
    chunk, not the corpus. ids are `uint16` when the vocabulary fits, else `uint32`. The cache is
    reused only if the tokenizer fingerprint and the source size and mtime match and the .bin has the
    recorded size and sha256; otherwise it is rebuilt. Both files are written atomically.
    Default `cache_dir`: `~/.cache/minitransformer/binarized`.
    """
    source = Path(text_path).resolve()
    if not source.is_file():
        raise FileNotFoundError(f"text file to binarize not found: {source}")
    stat = source.stat()
    if stat.st_size == 0:
        raise ValueError(f"{source} is empty: nothing to binarize")
    fingerprint = tokenizer.fingerprint()
    dtype = np.dtype(np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.uint32)
    expected = {
        "version": CACHE_VERSION,
        "source": str(source),
        "source_size": stat.st_size,
        "source_mtime_ns": stat.st_mtime_ns,
        "tokenizer_fingerprint": fingerprint,
        "dtype": dtype.name,
    }
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "binarized"
    key = hashlib.sha256(f"{source}\n{fingerprint}".encode()).hexdigest()[:16]
    bin_path = cache_dir / f"{source.name}.{key}.bin"
    meta_path = bin_path.with_suffix(".json")

    meta = _reuse(bin_path, meta_path, expected)
    from_cache = meta is not None
    if meta is None:
        separator = line_separator_id(tokenizer)
        unk = "[UNK]" if "unk" in tokenizer.special_ids else "<unk>"  # keep <unk> text if no [UNK]
        num_tokens = num_words = num_lines = 0
        digest = hashlib.sha256()
        with atomic_path(bin_path) as tmp, open(tmp, "wb") as out:
            lines = read_lines(source, unk_token=unk)
            while chunk := list(itertools.islice(lines, chunk_lines)):
                texts = [line.rstrip("\r\n") for line in chunk]
                encoded = tokenizer.encode_batch(texts)
                count = sum(map(len, encoded)) + len(encoded)
                flat = itertools.chain.from_iterable(itertools.chain(ids, (separator,)) for ids in encoded)
                ids = np.fromiter(flat, dtype=dtype, count=count)  # (count,)
                ids.tofile(out)
                digest.update(memoryview(ids))
                num_tokens += count
                num_words += sum(map(_line_words, texts))
                num_lines += len(texts)
        meta = {
            **expected,
            "num_tokens": num_tokens,
            "num_words": num_words,
            "num_lines": num_lines,
            "vocab_size": tokenizer.vocab_size,
            "separator_id": separator,
            "bin_sha256": digest.hexdigest(),
        }
        write_json_atomic(meta_path, meta)
    return TokenFile(
        path=bin_path,
        ids=_open_memmap(bin_path, meta),
        num_tokens=meta["num_tokens"],
        num_words=meta["num_words"],
        meta=meta,
        from_cache=from_cache,
    )


class LMBlockDataset(torch.utils.data.Dataset):
    """Contiguous, non-overlapping blocks of `block_size` ids (the hands-on's reshape of the corpus).

    With `random_offset`, the block grid starts at a seeded offset in [0, block_size) that changes with
    `set_epoch`, so successive epochs see different block boundaries; the number of blocks stays the
    same. Without it (validation), blocks start at 0 and never move.
    """

    def __init__(self, token_file: TokenFile, block_size: int, random_offset: bool = False, seed: int = 0):
        slack = block_size - 1 if random_offset else 0
        if block_size < 1 or token_file.num_tokens < block_size + slack:
            raise ValueError(
                f"{token_file.path} has {token_file.num_tokens} tokens, too few for one block of "
                f"block_size={block_size}{' with random offsets' if random_offset else ''}: use a smaller block size"
            )
        self.token_file = token_file
        self.block_size = block_size
        self.random_offset = random_offset
        self.seed = seed
        self.num_blocks = (token_file.num_tokens - slack) // block_size
        self.offset = 0
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Move the block grid to this epoch's seeded offset (no-op without `random_offset`)."""
        if self.random_offset:
            self.offset = int(np.random.default_rng([self.seed, epoch]).integers(self.block_size))

    def __len__(self) -> int:
        return self.num_blocks

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < self.num_blocks:
            raise IndexError(f"block {index} out of range [0, {self.num_blocks})")
        start = self.offset + index * self.block_size
        block = self.token_file.ids[start : start + self.block_size]
        return torch.from_numpy(block.astype(np.int64))  # (block_size,)
