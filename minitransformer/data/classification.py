"""Labelled text for classification: TREC and user TSV/CSV files, encoding, dynamic-padding batches.

Label ids are the positions of the label names sorted alphabetically over the training file
(TREC coarse: ABBR=0, DESC=1, ENTY=2, HUM=3, LOC=4, NUM=5; fine labels are "COARSE:fine", sorted
the same way), so a given training file always gives the same map.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from minitransformer.data.paths import locate
from minitransformer.tokenization import Tokenizer

logger = logging.getLogger(__name__)

Row = tuple[int, str, str]  # (line number, label, text)


@dataclass
class LabeledTexts:
    """Texts with integer labels; `label_names[i]` is the name of label id i."""

    texts: list[str]
    labels: list[int]
    label_names: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def counts(self) -> dict[str, int]:
        """Examples per label name, in label-id order."""
        counter = Counter(self.labels)
        return {name: counter[i] for i, name in enumerate(self.label_names)}

    def subset(self, indices: Sequence[int]) -> LabeledTexts:
        return LabeledTexts(
            [self.texts[i] for i in indices], [self.labels[i] for i in indices], self.label_names
        )


def _read_text(path: Path) -> str:
    """File contents as text: UTF-8 without its byte-order mark (Excel and Notepad write one). A line that
    is not UTF-8 is read as latin-1 (which decodes any byte), that line alone, with a warning naming it."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        lines, bad = [], []
        for number, raw in enumerate(data.split(b"\n"), start=1):
            try:
                lines.append(raw.decode("utf-8"))
            except UnicodeDecodeError as error:
                lines.append(raw.decode("latin-1"))
                bad.append(f"{number} ({error.reason})")
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        logger.warning(
            "%s is not UTF-8 at line %s%s: read those lines as latin-1", path, ", ".join(bad[:5]), more
        )
        text = "\n".join(lines)
    return text.removeprefix("\ufeff")


def _nonblank_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) for each non-blank line; blank lines are skipped and logged."""
    lines = _read_text(path).split("\n")
    if lines[-1] == "":
        lines.pop()  # the piece after the final newline
    blank = 0
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if line.strip():
            yield number, line
        else:
            blank += 1
    if blank:
        logger.info("%s: skipped %d blank lines", path, blank)


def _malformed(path: Path, number: int, line: str, expected: str) -> ValueError:
    return ValueError(f"{path}:{number}: malformed line, expected {expected}, got {line[:60]!r}")


def _labeled(rows: list[Row], path: Path, label_names: list[str] | None) -> LabeledTexts:
    """Map label names to ids (sorted names unless `label_names` is given); unknown label -> error."""
    if not rows:
        raise ValueError(f"{path} holds no examples")
    if label_names is None:
        label_names = sorted({label for _, label, _ in rows})
    ids = {name: i for i, name in enumerate(label_names)}
    labels = []
    for number, label, _ in rows:
        if label not in ids:
            raise ValueError(
                f"{path}:{number}: label {label!r} is not one of the training labels {label_names}"
            )
        labels.append(ids[label])
    return LabeledTexts([text for _, _, text in rows], labels, list(label_names))


def _trec_rows(path: Path, fine: bool) -> list[Row]:
    rows = []
    for number, line in _nonblank_lines(path):
        label, _, text = line.partition(" ")
        coarse, colon, _ = label.partition(":")
        if not colon or not coarse or not text.strip():
            raise _malformed(path, number, line, "'COARSE:fine question'")
        rows.append((number, label if fine else coarse, text.strip()))
    return rows


def load_trec(
    data_dir: str | Path | None = None,
    fine: bool = False,
    train_file: str = "train_5500.label",
    test_file: str = "TREC_10.label",
) -> tuple[LabeledTexts, LabeledTexts]:
    """TREC question classification: (train, test), 6 coarse labels or 50 fine ones (`fine=True`).

    Files are found as `trec/<file>` in the data directories (see `paths.find_data_dir`).
    """
    fix = "or drop --no-download, or call minitransformer.data.download.download_trec()"
    train_path = locate(f"trec/{train_file}", data_dir, fix=fix)
    test_path = locate(f"trec/{test_file}", data_dir, fix=fix)
    train = _labeled(_trec_rows(train_path, fine), train_path, None)
    return train, _labeled(_trec_rows(test_path, fine), test_path, train.label_names)


def _csv_rows(path: Path) -> list[Row]:
    """Rows of a CSV file: with a header naming `label` and `text` columns (others ignored), or headerless
    `label,text`, recognised by its first row's label appearing again further down (a header's would not)."""
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    records = [
        (reader.line_num, [f.strip() for f in record]) for record in reader if any(map(str.strip, record))
    ]
    if not records:
        return []
    first = records[0][1]
    if {"label", "text"} <= set(first):
        (label_at, text_at), records = (first.index("label"), first.index("text")), records[1:]
    elif len(first) == 2 and first[0] in {record[0] for _, record in records[1:]}:
        label_at, text_at = 0, 1
    else:
        raise ValueError(
            f"{path}:1: CSV header must name 'label' and 'text' columns, got {first} (a file without a header "
            "has two columns label,text and its first row's label appears again below)"
        )
    rows = []
    for number, record in records:
        label, text = [record[i] if i < len(record) else "" for i in (label_at, text_at)]
        if record == first and number != 1 or (label, text) == ("label", "text"):
            logger.warning("%s:%d: skipped a repeated header line (two files joined?)", path, number)
            continue
        if not label or not text:
            raise _malformed(path, number, ",".join(record), "label,text")
        rows.append((number, label, text))
    return rows


def _tsv_rows(path: Path) -> list[Row]:
    rows = []
    for number, line in _nonblank_lines(path):
        label, tab, text = line.partition("\t")
        if (label.strip(), text.strip()) == ("label", "text"):
            if number != 1:  # a repeated header: two files joined
                logger.warning("%s:%d: skipped a repeated header line (two files joined?)", path, number)
            continue
        if not tab or not label.strip() or not text.strip():
            raise _malformed(path, number, line, "'label<TAB>text'")
        rows.append((number, label.strip(), text.strip()))
    return rows


def read_labeled_file(path: str | Path, label_names: list[str] | None = None) -> LabeledTexts:
    """A user dataset: TSV `label<TAB>text` (an optional first line `label<TAB>text` is a header), or `.csv`
    with a header naming `label` and `text` columns, or headerless `label,text` (see `_csv_rows`).
    Pass the training `label_names` when reading a validation or test file so ids agree."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"labelled data file not found: {path}")
    rows = _csv_rows(path) if path.suffix.lower() == ".csv" else _tsv_rows(path)
    return _labeled(rows, path, label_names)


def stratified_split(
    data: LabeledTexts, fraction: float = 0.1, seed: int = 0, what: str = "validation", fix: str = ""
) -> tuple[LabeledTexts, LabeledTexts]:
    """(train, valid) with `fraction` of each label, chosen with `seed`, moved to valid (order kept).

    A split that would hold out nothing (too few examples per class) is a ValueError saying how many
    examples a class needs; `what` names the held-out part and `fix` the option that avoids it."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction={fraction} must be in (0, 1)")
    rng = np.random.default_rng(seed)
    by_label: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(data.labels):
        by_label[label].append(index)
    valid: list[int] = []
    for label in sorted(by_label):
        indices = by_label[label]
        take = min(round(len(indices) * fraction), len(indices) - 1)
        valid += rng.permutation(indices)[:take].tolist()
    if not valid and data.labels:
        needed = next(n for n in range(2, 10**9) if min(round(n * fraction), n - 1) >= 1)
        largest = max(len(indices) for indices in by_label.values())
        raise ValueError(
            f"holding out {fraction:.0%} of each class for {what} leaves none: a class needs at least {needed} "
            f"examples for one to be held out, the largest has {largest}; add examples"
            + (f", or {fix}" if fix else "")
        )
    chosen = set(valid)
    train = [i for i in range(len(data)) if i not in chosen]
    return data.subset(train), data.subset(sorted(valid))


def readable_prefix(text: str, tokenizer: Tokenizer, max_tokens: int) -> str:
    """The start of `text` that holds its first `max_tokens` tokens, found without tokenizing the rest:
    a line of megabytes costs about what its first words cost, not memory in proportion to its length.

    The cut falls just before a whitespace, where no token spans (the word before it is whole, and a
    byte-level BPE's "Ġword" starts after it), so the first `max_tokens` tokens are the text's own. A
    prefix with too few tokens (e.g. long runs of spaces) is doubled until it has enough. Only a first
    word longer than the window is cut inside the word."""
    size = 16 * max_tokens
    while size < len(text):
        head = text[:size]
        last_space = re.search(r".*\s", head, re.S)
        prefix = head[: last_space.end() - 1] if last_space else head
        if len(tokenizer.encode(prefix)) >= max_tokens:
            return prefix
        size *= 2
    return text


def encode_for_classification(
    texts: list[str], tokenizer: Tokenizer, max_len: int, clf_position: str = "end"
) -> list[list[int]]:
    """Token ids with the classification token added, at most `max_len` long.

    "end": ids + [CLS] (the hands-on; a causal model sees the whole text before the token).
    "start": [CLS] + ids + [SEP] (BERT). Long texts lose their end; the special tokens are kept.
    """
    if clf_position not in ("end", "start"):
        raise ValueError(f"clf_position={clf_position!r} must be 'end' or 'start'")
    cls = tokenizer.cls_id
    if clf_position == "end" and max_len < 2:
        raise ValueError(f"max_len={max_len} leaves no room for text before the classification token")
    if clf_position == "start" and max_len < 3:
        raise ValueError(f"max_len={max_len} leaves no room for text between [CLS] and [SEP]")
    encoded = tokenizer.encode_batch([readable_prefix(text, tokenizer, max_len) for text in texts])
    # a literal "[CLS]" in the text would be a second classification token: it is read as [UNK]
    unk = tokenizer.special_ids.get("unk")
    escaped = 0
    for i, ids in enumerate(encoded):
        if cls in ids and unk is not None:
            encoded[i] = [unk if t == cls else t for t in ids]
            escaped += 1
    if escaped:
        logger.warning("%d text(s) contain the classification token literally: read as [UNK] there", escaped)
    if clf_position == "end":
        return [ids[: max_len - 1] + [cls] for ids in encoded]
    sep = tokenizer.sep_id
    return [[cls] + ids[: max_len - 2] + [sep] for ids in encoded]


class ClassificationDataset(torch.utils.data.Dataset):
    """Encoded texts and their labels; items are {"input_ids": list[int], "label": int}."""

    def __init__(self, ids: list[list[int]], labels: list[int]):
        if len(ids) != len(labels):
            raise ValueError(f"{len(ids)} encoded texts but {len(labels)} labels")
        self.ids = ids
        self.labels = labels

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        return {"input_ids": self.ids[index], "label": self.labels[index]}

    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.ids]


def collate_classification(batch: list[dict], pad_id: int, cls_id: int, pad_to: int | None = None) -> dict:
    """Pad a list of dataset items into tensors, to the longest row (dynamic padding) or to `pad_to`.

    Returns input_ids Long[B, T], padding_mask Bool[B, T] (True = pad), clf_tokens_mask Bool[B, T]
    (True at each row's single classification token) and labels Long[B].
    """
    lengths = torch.tensor([len(item["input_ids"]) for item in batch])  # (B,)
    width = pad_to if pad_to is not None else int(lengths.max())
    if int(lengths.max()) > width:
        raise ValueError(
            f"a row has {int(lengths.max())} tokens, more than pad_to={pad_to}: encode with max_len"
        )
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)  # (B, T)
    for row, item in enumerate(batch):
        input_ids[row, : len(item["input_ids"])] = torch.tensor(item["input_ids"], dtype=torch.long)
    padding_mask = torch.arange(width)[None, :] >= lengths[:, None]  # (B, T)
    clf_tokens_mask = (input_ids == cls_id) & ~padding_mask  # (B, T)
    per_row = clf_tokens_mask.sum(dim=1)
    if (per_row != 1).any():
        row = int((per_row != 1).nonzero()[0])
        raise ValueError(
            f"batch row {row} has {int(per_row[row])} classification tokens (id {cls_id}), expected exactly 1:"
            " encode with encode_for_classification and keep the [CLS] string out of the text"
        )
    labels = torch.tensor([item["label"] for item in batch], dtype=torch.long)  # (B,)
    return {
        "input_ids": input_ids,
        "padding_mask": padding_mask,
        "clf_tokens_mask": clf_tokens_mask,
        "labels": labels,
    }


class LengthBucketSampler(torch.utils.data.Sampler):
    """Batch sampler grouping rows of similar length, so dynamic padding adds little.

    Each epoch: shuffle the indices (seeded by `seed` and the epoch), sort them by length inside pools
    of `pool_batches * batch_size`, cut batches, shuffle the batch order. Use as
    `DataLoader(dataset, batch_sampler=sampler, collate_fn=...)`; call `set_epoch` every epoch.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        pool_batches: int = 50,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1")
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.pool = pool_batches * batch_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths)) if self.shuffle else np.arange(len(self.lengths))
        pools = [order[i : i + self.pool] for i in range(0, len(order), self.pool)]
        order = np.concatenate([pool[np.argsort(self.lengths[pool], kind="stable")] for pool in pools])
        batches = [order[i : i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size)]
        if self.drop_last and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        yield from batches

    def __len__(self) -> int:
        rounding = math.floor if self.drop_last else math.ceil
        return rounding(len(self.lengths) / self.batch_size)


def tokens_per_epoch(lengths: Sequence[int], batches: Iterable[list[int]], pad_to: int | None = None) -> int:
    """Positions the model processes in one epoch, padding included (the cost of a padding strategy)."""
    return sum(len(batch) * (pad_to or max(lengths[i] for i in batch)) for batch in batches)


def write_lm_corpus(
    data: LabeledTexts, directory: str | Path, valid_fraction: float = 0.1, seed: int = 0
) -> Path:
    """Write the texts of `data` (labels stripped) as `train.txt` / `valid.txt`, one per line.

    This is the target-domain text for ULMFiT's middle step: continued LM pretraining on the task's
    own (unlabelled) questions before fine-tuning. The valid split is a stratified, seeded hold-out.
    """
    from minitransformer.runs.io import write_text_atomic

    directory = Path(directory)
    train, valid = stratified_split(data, fraction=valid_fraction, seed=seed)
    for name, part in (("train", train), ("valid", valid)):
        write_text_atomic(directory / f"{name}.txt", "".join(text + "\n" for text in part.texts))
    return directory
