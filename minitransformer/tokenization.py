"""Tokenizers: train, load and save them with the Hugging Face `tokenizers` library.

`Tokenizer` is a thin wrapper: the real work (normalization, pre-tokenization, WordPiece / BPE) is
done by `tokenizers.Tokenizer`, kept as `.backend`. The wrapper fixes the conventions the rest of
minitransformer relies on:

- tokenizers we train reserve `SPECIAL_TOKENS` at ids 0..4 (`[PAD]` is 0, `[MASK]` is 4);
- `encode` never adds special tokens, never truncates and never pads: the data pipeline decides
  where `[CLS]` / `[SEP]` go and how batches are padded;
- a model directory holds `tokenizer.json` (or, for BERT checkpoints, `vocab.txt`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from tokenizers import Tokenizer as BackendTokenizer
from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

from minitransformer.runs.io import write_text_atomic

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SPECIAL_NAMES = ["pad", "unk", "cls", "sep", "mask"]  # keys of `Tokenizer.special_ids`, same order
KINDS = ("wordpiece", "bpe")


def _file_list(files: Iterable) -> list[Path] | None:
    """Return `files` as paths when every item names an existing file, else None (they are texts)."""
    if isinstance(files, (str, os.PathLike)):
        raise TypeError(
            f"Tokenizer.train expects a list of files or texts, got a single {type(files).__name__}"
        )
    if not isinstance(files, (list, tuple)) or not files:
        return None
    paths = [Path(f) for f in files if isinstance(f, os.PathLike) or (isinstance(f, str) and "\n" not in f)]
    if len(paths) == len(files) and all(p.is_file() for p in paths):
        return paths
    if any(isinstance(f, os.PathLike) for f in files):
        missing = [str(p) for p in paths if not p.is_file()]
        raise FileNotFoundError(f"Tokenizer.train: training files not found: {missing}")
    return None


def _wordpiece(lowercase: bool, vocab: dict[str, int] | None = None) -> BackendTokenizer:
    """BERT-style pipeline: BertNormalizer -> BertPreTokenizer -> WordPiece with '##' continuations
    (an empty model to train, or the model of `vocab`, whose special tokens are then added)."""
    model = models.WordPiece(vocab or {}, unk_token="[UNK]", max_input_chars_per_word=100)
    backend = BackendTokenizer(model)
    backend.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=None)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    if vocab:
        backend.add_special_tokens([t for t in SPECIAL_TOKENS if t in vocab])
    return backend


def check_text(text: object, label: str, error: type[ValueError] = ValueError) -> str:
    """`text` itself if it is a `str` that UTF-8 can write; else `error` naming `label` (e.g. "stdin line 3").

    Bytes, None or a number are not text; a lone surrogate (what Python makes of an argument or a file
    that was not UTF-8: `'abc\\udcff'`) cannot be encoded, and the Rust tokenizer would fail on it."""
    if not isinstance(text, str):
        fix = "decode bytes first (data.decode('utf-8'))" if isinstance(text, bytes) else "pass a string"
        raise error(f"{label} is {type(text).__name__}, not text: {fix}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise error(
            f"{label} is not valid UTF-8 (character {e.start + 1} is {text[e.start]!r}): give UTF-8 text"
        ) from None
    return text


def _wordpiece_trainer(vocab_size: int, min_frequency: int, pieces: list[str]) -> trainers.WordPieceTrainer:
    """The `tokenizers` WordPiece trainer; `pieces` are numbered right after `SPECIAL_TOKENS`."""
    return trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS + pieces,
        continuing_subword_prefix="##",
        show_progress=False,
    )


def _train_wordpiece(
    fit: Callable[[BackendTokenizer, trainers.Trainer], None],
    lowercase: bool,
    vocab_size: int,
    min_frequency: int,
) -> BackendTokenizer:
    """WordPiece training that gives the same vocabulary, with the same ids, in every process.

    Why the `tokenizers` trainer alone does not (huggingface/tokenizers#1794): it numbers the special
    tokens, then the characters (sorted), then each `##c` piece (a character inside a word) when it first
    meets it while walking its word counts, a hash map whose order changes from one training to the next,
    even in one process. A tie between two candidate merges of equal count goes to the pair of smaller
    ids, so the piece numbers decide ties: the ids, and at ties the merges themselves, changed between
    trainings (four trainings of WikiText-2 valid, 8,000 tokens, in four processes: four tokenizer.json,
    three different vocabularies).

    The fix: a first pass with no merges (vocab_size 0) lists the `##c` pieces the text has; the real
    training then gets them, sorted, as extra special tokens, so the trainer numbers them first, in that
    order, and every id and tie follows from the text alone (the same check in five processes: one
    tokenizer.json). The vocabulary is then put in a fresh WordPiece model whose only added tokens are
    `SPECIAL_TOKENS`. The price is a second pass over the text (WikiText-2 valid: 0.9 s → 1.8 s on a
    loaded 2-core machine); encoding is the library's WordPiece model, as before, and as fast.
    """
    counting = _wordpiece(lowercase)
    fit(counting, _wordpiece_trainer(0, min_frequency, []))
    seen = counting.get_vocab(with_added_tokens=False)  # special tokens, characters, `##c` pieces
    pieces = sorted(t for t in seen if t.startswith("##") and len(t) == 3)
    trained = _wordpiece(lowercase)
    fit(trained, _wordpiece_trainer(vocab_size, min_frequency, pieces))
    return _wordpiece(lowercase, trained.get_vocab(with_added_tokens=False))


class Tokenizer:
    """Encode text to ids and back; see the module docstring for the conventions."""

    def __init__(self, backend: BackendTokenizer):
        backend.no_truncation()  # HF tokenizer.json files often carry truncation/padding settings
        backend.no_padding()
        self.backend = backend

    # ----------------------------------------------------------------------------- construction
    @classmethod
    def train(
        cls,
        files: list[str | Path] | Iterable[str],
        kind: str = "wordpiece",
        vocab_size: int = 8000,
        lowercase: bool = False,
        min_frequency: int = 2,
    ) -> Tokenizer:
        """Train a new tokenizer on text files (a list of existing paths) or on an iterable of texts.

        kind="wordpiece" is BERT-style (the hands-on used BERT's cased WordPiece); kind="bpe" is
        GPT-2-style byte-level BPE (no unknown tokens). `SPECIAL_TOKENS` get ids 0..4. To apply the
        WikiText preprocessing (`<unk>` -> `[UNK]`), pass `minitransformer.data.wikitext.read_lines(path)`
        as texts rather than the raw file.

        Training is deterministic: the same texts and settings give the same tokenizer.json in any
        process (WordPiece: see `_train_wordpiece`; byte-level BPE needs nothing, as every symbol it
        starts from is in its initial alphabet, which the trainer numbers in sorted order). A generator
        of texts is read into a list first: WordPiece reads the texts twice.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown tokenizer kind {kind!r}: choose one of {KINDS}")
        if vocab_size <= len(SPECIAL_TOKENS):
            raise ValueError(f"vocab_size={vocab_size} must exceed the {len(SPECIAL_TOKENS)} special tokens")
        paths = _file_list(files)
        texts = None if paths is not None else files if isinstance(files, (list, tuple)) else list(files)

        def fit(backend: BackendTokenizer, trainer: trainers.Trainer) -> None:
            if paths is not None:
                backend.train([str(p) for p in paths], trainer=trainer)
            else:
                backend.train_from_iterator(texts, trainer=trainer)

        if kind == "wordpiece":
            backend = _train_wordpiece(fit, lowercase, vocab_size, min_frequency)
        else:
            backend = BackendTokenizer(models.BPE())
            if lowercase:
                backend.normalizer = normalizers.Lowercase()
            backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            backend.decoder = decoders.ByteLevel()
            trainer = trainers.BpeTrainer(
                vocab_size=vocab_size,
                min_frequency=min_frequency,
                special_tokens=SPECIAL_TOKENS,
                initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                show_progress=False,
            )
            fit(backend, trainer)
        if backend.get_vocab_size() <= len(SPECIAL_TOKENS):
            raise ValueError("Tokenizer.train: the training corpus is empty (only special tokens learned)")
        return cls(backend)

    @classmethod
    def from_file(cls, path: str | Path) -> Tokenizer:
        """Load a `tokenizer.json` (ours or any Hugging Face one)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer file not found: {path}")
        try:
            return cls(BackendTokenizer.from_file(str(path)))
        except Exception as e:  # the Rust library raises a bare Exception ("expected value at line 1 ...")
            raise ValueError(
                f"{path} is not a readable tokenizer file ({str(e).splitlines()[0] if str(e) else type(e).__name__}): "
                "it is damaged or not a tokenizer.json; copy the model's own tokenizer.json back"
            ) from None

    @classmethod
    def from_vocab(cls, vocab_txt: str | Path, lowercase: bool = True) -> Tokenizer:
        """Build a BERT WordPiece tokenizer from a `vocab.txt` (one token per line, id = line number)."""
        vocab_txt = Path(vocab_txt)
        if not vocab_txt.is_file():
            raise FileNotFoundError(f"BERT vocabulary not found: {vocab_txt}")
        with open(vocab_txt, encoding="utf-8") as f:  # like BERT: id = line number, a repeat overrides
            vocab = {token.rstrip("\n"): index for index, token in enumerate(f)}
        if "[UNK]" not in vocab:
            raise ValueError(f"{vocab_txt} has no [UNK] token: not a BERT WordPiece vocabulary")
        backend = _wordpiece(lowercase, vocab)
        return cls(backend)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> Tokenizer:
        """Load `directory/tokenizer.json`, else `directory/vocab.txt` (lowercasing read from
        `tokenizer_config.json` / `config.json` key `do_lower_case`, default True like BERT uncased)."""
        directory = Path(directory)
        if (directory / "tokenizer.json").is_file():
            return cls.from_file(directory / "tokenizer.json")
        if (directory / "vocab.txt").is_file():
            lowercase = True
            for name in ("tokenizer_config.json", "config.json"):
                config_path = directory / name
                if config_path.is_file():
                    try:
                        config = json.loads(config_path.read_text(encoding="utf-8"))
                    except ValueError as e:
                        raise ValueError(f"{config_path} is not valid JSON ({e}): re-save it") from None
                    if isinstance(config, dict) and "do_lower_case" in config:
                        lowercase = bool(config["do_lower_case"])
                        break
            return cls.from_vocab(directory / "vocab.txt", lowercase=lowercase)
        raise FileNotFoundError(
            f"no tokenizer in {directory}: expected {directory / 'tokenizer.json'} or {directory / 'vocab.txt'}"
            " — save one with Tokenizer.save_pretrained(directory)"
        )

    def save_pretrained(self, directory: str | Path) -> None:
        """Write `directory/tokenizer.json` atomically (the checkpoint directory layout)."""
        write_text_atomic(Path(directory) / "tokenizer.json", self.backend.to_str(pretty=True))

    # ----------------------------------------------------------------------------- encoding
    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, with no special tokens added."""
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """`encode` for many texts at once (parallel in Rust)."""
        return [e.ids for e in self.backend.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """Text of `ids` (a list or a 1-D tensor)."""
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    def id_to_token(self, index: int) -> str | None:
        return self.backend.id_to_token(index)

    def add_special_tokens(self, tokens: list[str]) -> None:
        """Add special tokens (e.g. `[CLS]` to a GPT-2 tokenizer); new ones get ids after the vocabulary."""
        self.backend.add_special_tokens(tokens)

    # ----------------------------------------------------------------------------- properties
    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included: the model config's `vocab_size` too."""
        return self.backend.get_vocab_size(with_added_tokens=True)

    def __len__(self) -> int:
        return self.vocab_size

    @property
    def special_ids(self) -> dict[str, int]:
        """{"pad", "unk", "cls", "sep", "mask"} -> id, for those of `SPECIAL_TOKENS` the vocabulary has."""
        ids = {name: self.backend.token_to_id(token) for name, token in zip(SPECIAL_NAMES, SPECIAL_TOKENS)}
        return {name: i for name, i in ids.items() if i is not None}

    def _special(self, name: str) -> int:
        ids = self.special_ids
        if name not in ids:
            token = SPECIAL_TOKENS[SPECIAL_NAMES.index(name)]
            raise ValueError(
                f"this tokenizer has no {token} token — add it with tokenizer.add_special_tokens([{token!r}])"
            )
        return ids[name]

    pad_id = property(lambda self: self._special("pad"), doc="id of [PAD]")
    unk_id = property(lambda self: self._special("unk"), doc="id of [UNK]")
    cls_id = property(lambda self: self._special("cls"), doc="id of [CLS]")
    sep_id = property(lambda self: self._special("sep"), doc="id of [SEP]")
    mask_id = property(lambda self: self._special("mask"), doc="id of [MASK]")

    def fingerprint(self) -> str:
        """sha256 of the canonical (key-sorted) tokenizer JSON: equal fingerprints encode identically."""
        canonical = json.dumps(json.loads(self.backend.to_str()), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def vocab_fingerprint(self) -> str:
        """sha256 of the vocabulary (every token and its id, added tokens included): what a model's
        embeddings are indexed by. Saved with a model (`save_pretrained(tokenizer=...)`), compared on load."""
        vocab = sorted(self.backend.get_vocab(with_added_tokens=True).items(), key=lambda kv: kv[1])
        return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode("utf-8")).hexdigest()

    def __repr__(self) -> str:
        model = type(self.backend.model).__name__
        return f"Tokenizer({model}, vocab_size={self.vocab_size}, special_ids={self.special_ids})"
