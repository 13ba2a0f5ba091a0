"""WikiText: locating splits, word counts, memmap binarization and its cache, LM blocks."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from minitransformer.data.wikitext import (
    LMBlockDataset,
    binarize,
    count_words,
    read_lines,
    wikitext_path,
)
from minitransformer.tokenization import Tokenizer

DATA = os.environ.get("MINITRANSFORMER_DATA")
needs_wikitext = pytest.mark.skipif(
    not DATA or not Path(DATA, "wikitext-2").is_dir(), reason="MINITRANSFORMER_DATA with wikitext-2/ not set"
)

TEXT = (
    " = Valkyria Chronicles = \n"
    " \n"
    " Senjō no Valkyria 3 : <unk> Chronicles is a tactical role @-@ playing game .\n"
    " The game began development in 2010 , carrying over a large portion of the work .\n"
)


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.train(list(read_lines_of(TEXT)) * 10, vocab_size=300, min_frequency=1)


def read_lines_of(text):
    return [line.replace("<unk>", "[UNK]") for line in text.splitlines(keepends=True)]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "wiki.train.tokens"
    path.write_text(TEXT * 50, encoding="utf-8")
    return path


def expected_ids(path, tokenizer):
    ids = []
    for line in read_lines(path):
        ids += tokenizer.encode(line.rstrip("\n")) + [tokenizer.sep_id]
    return ids


@needs_wikitext
@pytest.mark.parametrize("split, words", [("valid", 217_646), ("test", 245_569)])
def test_official_word_counts(split, words):
    assert count_words(wikitext_path("wikitext-2", split)) == words


@needs_wikitext
def test_binarize_real_validation_split(tmp_path):
    path = wikitext_path("wikitext-2", "valid")
    tok = Tokenizer.train(read_lines(path), vocab_size=4000)
    token_file = binarize(path, tok, cache_dir=tmp_path)
    assert token_file.num_words == 217_646
    assert token_file.meta["num_lines"] == 3760
    assert token_file.ids.dtype == np.uint16
    assert np.array_equal(token_file.ids, expected_ids(path, tok))
    assert int((token_file.ids == tok.unk_id).sum()) > 0  # <unk> became the tokenizer's [UNK]
    assert 1.0 < token_file.tokens_per_word < 2.0


def test_missing_split_names_every_path_searched(tmp_path, monkeypatch):
    monkeypatch.setenv("MINITRANSFORMER_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(FileNotFoundError) as error:
        wikitext_path("wikitext-103", "train")
    message = str(error.value)
    for folder in ("env", "home/.cache/minitransformer"):
        assert str(tmp_path / folder / "wikitext-103" / "wiki.train.tokens") in message
    assert "--data-dir" in message and "download_wikitext" in message


def test_an_explicit_data_dir_is_the_only_one_searched_and_must_exist(tmp_path, monkeypatch):
    (tmp_path / "env" / "wikitext-2").mkdir(parents=True)
    (tmp_path / "env" / "wikitext-2" / "wiki.test.tokens").write_text("env")
    (tmp_path / "arg").mkdir()
    monkeypatch.setenv("MINITRANSFORMER_DATA", str(tmp_path / "env"))
    with pytest.raises(FileNotFoundError, match="--data-dir .*typo is not an existing folder"):
        wikitext_path("wikitext-2", "test", data_dir=tmp_path / "typo")
    with pytest.raises(FileNotFoundError) as error:  # the env folder has it, but --data-dir was explicit
        wikitext_path("wikitext-2", "test", data_dir=tmp_path / "arg")
    assert str(tmp_path / "env") not in str(error.value)


def test_search_order_and_custom_datasets(tmp_path, monkeypatch, corpus):
    for folder in ("arg", "env"):
        (tmp_path / folder / "wikitext-2-raw").mkdir(parents=True)
        (tmp_path / folder / "wikitext-2-raw" / "wiki.test.raw").write_text(folder)
    monkeypatch.setenv("MINITRANSFORMER_DATA", str(tmp_path / "env"))
    assert wikitext_path("wikitext-2-raw", "test").read_text() == "env"
    assert wikitext_path("wikitext-2-raw", "test", data_dir=tmp_path / "arg").read_text() == "arg"
    assert wikitext_path(str(tmp_path), "train") == corpus  # a directory in the official layout
    assert wikitext_path(str(corpus), "valid") == corpus  # a single file serves any split
    with pytest.raises(ValueError, match="unknown split"):
        wikitext_path("wikitext-2", "dev")
    with pytest.raises(ValueError, match="unknown dataset 'wikitext-7'"):
        wikitext_path("wikitext-7", "train")


def test_binarize_matches_direct_encoding(corpus, tokenizer, tmp_path):
    token_file = binarize(corpus, tokenizer, cache_dir=tmp_path / "cache", chunk_lines=7)
    assert np.array_equal(token_file.ids, expected_ids(corpus, tokenizer))
    assert token_file.ids.dtype == np.uint16 and not token_file.from_cache
    assert token_file.num_words == count_words(corpus) == 50 * (4 + 0 + 15 + 16 + 4)  # words + one per line
    assert token_file.path.stat().st_size == 2 * token_file.num_tokens


def test_cache_reused_then_rebuilt_when_inputs_change(corpus, tokenizer, tmp_path):
    cache = tmp_path / "cache"
    first = binarize(corpus, tokenizer, cache_dir=cache)
    mtime = first.path.stat().st_mtime_ns
    again = binarize(corpus, tokenizer, cache_dir=cache)
    assert again.from_cache and again.path == first.path and again.path.stat().st_mtime_ns == mtime

    other = Tokenizer.train(read_lines_of(TEXT) * 10, kind="bpe", vocab_size=300, min_frequency=1)
    rebuilt = binarize(corpus, other, cache_dir=cache)
    assert not rebuilt.from_cache and np.array_equal(rebuilt.ids, expected_ids(corpus, other))

    with open(corpus, "a", encoding="utf-8") as f:
        f.write(" A new line .\n")
    changed = binarize(corpus, tokenizer, cache_dir=cache)
    assert not changed.from_cache and changed.num_tokens > first.num_tokens
    assert np.array_equal(changed.ids, expected_ids(corpus, tokenizer))


@pytest.mark.parametrize("damage", ["truncate", "flip", "meta"])
def test_damaged_cache_is_detected_and_rebuilt(corpus, tokenizer, tmp_path, damage):
    first = binarize(corpus, tokenizer, cache_dir=tmp_path)
    expected = np.array(first.ids)
    del first.ids  # release the memmap before damaging the file
    if damage == "truncate":
        with open(first.path, "r+b") as f:
            f.truncate(first.path.stat().st_size - 10)
    elif damage == "flip":
        with open(first.path, "r+b") as f:
            f.seek(100)
            byte = f.read(1)
            f.seek(100)
            f.write(bytes([byte[0] ^ 0xFF]))
    else:
        first.path.with_suffix(".json").write_text("{not json")
    rebuilt = binarize(corpus, tokenizer, cache_dir=tmp_path)
    assert not rebuilt.from_cache and np.array_equal(rebuilt.ids, expected)


def test_large_vocabulary_uses_uint32(corpus, tmp_path):
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(70_000)] + ["game"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    tok = Tokenizer.from_vocab(tmp_path / "vocab.txt", lowercase=False)
    token_file = binarize(corpus, tok, cache_dir=tmp_path)
    assert token_file.ids.dtype == np.uint32 and 70_005 in token_file.ids


def test_bad_bytes_and_empty_files(tmp_path, tokenizer):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b" caf\xe9 game .\n")
    assert binarize(bad, tokenizer, cache_dir=tmp_path).num_words == 4
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty"):
        binarize(empty, tokenizer, cache_dir=tmp_path)


def test_lm_blocks_are_contiguous_and_fixed_for_validation(corpus, tokenizer, tmp_path):
    token_file = binarize(corpus, tokenizer, cache_dir=tmp_path)
    data = LMBlockDataset(token_file, block_size=32)
    assert len(data) == token_file.num_tokens // 32
    blocks = torch.stack([data[i] for i in range(len(data))])  # (num_blocks, 32)
    assert blocks.dtype == torch.long and blocks.shape == (len(data), 32)
    assert torch.equal(blocks.flatten(), torch.from_numpy(token_file.ids[: len(data) * 32].astype(np.int64)))
    data.set_epoch(3)
    assert torch.equal(data[0], blocks[0])
    with pytest.raises(IndexError):
        data[len(data)]
    with pytest.raises(ValueError, match="too few"):
        LMBlockDataset(token_file, block_size=token_file.num_tokens + 1)


def test_random_offsets_change_by_epoch_and_are_seeded(corpus, tokenizer, tmp_path):
    token_file = binarize(corpus, tokenizer, cache_dir=tmp_path)
    ids = torch.from_numpy(token_file.ids.astype(np.int64))
    data = LMBlockDataset(token_file, block_size=16, random_offset=True, seed=1)
    twin = LMBlockDataset(token_file, block_size=16, random_offset=True, seed=1)
    offsets = []
    for epoch in range(8):
        data.set_epoch(epoch)
        twin.set_epoch(epoch)
        assert len(data) == (token_file.num_tokens - 15) // 16
        start = data.offset
        assert torch.equal(data[0], ids[start : start + 16]) and torch.equal(
            data[1], ids[start + 16 : start + 32]
        )
        assert torch.equal(data[len(data) - 1], twin[len(twin) - 1])
        offsets.append(start)
    assert len(set(offsets)) > 1 and all(0 <= o < 16 for o in offsets)


def test_token_file_pickles_without_copying_ids(corpus, tokenizer, tmp_path):
    token_file = binarize(corpus, tokenizer, cache_dir=tmp_path)
    payload = pickle.dumps(LMBlockDataset(token_file, block_size=8))
    assert len(payload) < token_file.num_tokens  # the ids are not in the pickle
    restored = pickle.loads(payload)
    assert torch.equal(restored[2], LMBlockDataset(token_file, block_size=8)[2])


def test_read_lines_drops_a_byte_order_mark(tmp_path):
    """Issue 27 item 4: a BOM is not part of the first word."""
    path = tmp_path / "wiki.train.tokens"
    path.write_bytes("\ufeff = Title = \n text <unk> here \n".encode())
    assert list(read_lines(path)) == [" = Title = \n", " text [UNK] here \n"]
