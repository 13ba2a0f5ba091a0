"""Classification data: TREC parsing, user TSV/CSV files, splits, encoding, dynamic padding, bucketing."""

import logging
import os
from collections import Counter
from pathlib import Path

import pytest
import torch

from minitransformer.data.classification import (
    ClassificationDataset,
    LabeledTexts,
    LengthBucketSampler,
    collate_classification,
    encode_for_classification,
    load_trec,
    read_labeled_file,
    stratified_split,
    tokens_per_epoch,
)
from minitransformer.tokenization import Tokenizer

COARSE = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]


@pytest.fixture(scope="module")
def trec_dir():
    """The shared data folder holding trec/ (tests using it skip without it)."""
    data = os.environ.get("MINITRANSFORMER_DATA")
    if not data or not Path(data, "trec").is_dir():
        pytest.skip("MINITRANSFORMER_DATA with trec/ not set")
    return Path(data)


@pytest.fixture(scope="module")
def trec(trec_dir):
    return load_trec(trec_dir)


@pytest.fixture(scope="module")
def tokenizer():
    texts = ["What is the capital of France ?", "Who wrote Hamlet ?", "How far is the moon ?"] * 5
    return Tokenizer.train(texts, vocab_size=200, min_frequency=1)


def test_trec_coarse_rows_and_counts(trec):
    train, test = trec
    assert (len(train), len(test)) == (5452, 500)
    assert train.label_names == test.label_names == COARSE
    assert train.counts() == {"ABBR": 86, "DESC": 1162, "ENTY": 1250, "HUM": 1223, "LOC": 835, "NUM": 896}
    assert test.counts() == {"ABBR": 9, "DESC": 138, "ENTY": 94, "HUM": 65, "LOC": 81, "NUM": 113}
    assert train.texts[0] == "How did serfdom develop in and then leave Russia ?" and train.labels[0] == 1


def test_trec_fine_labels(trec_dir):
    train, test = load_trec(trec_dir, fine=True)
    assert len(train.label_names) == 50 and train.label_names == sorted(train.label_names)
    assert train.label_names[train.labels[0]] == "DESC:manner"
    assert set(test.label_names[i] for i in test.labels) <= set(train.label_names)


def test_trec_utf8_subset_reads(trec_dir):
    train, _ = load_trec(trec_dir, train_file="train_2000.label")
    assert len(train) == 2000


def test_stratified_split_keeps_proportions(trec):
    train, _ = trec
    kept, valid = stratified_split(train, fraction=0.1, seed=0)
    assert len(kept) + len(valid) == len(train) and abs(len(valid) - 545) <= 3
    for name, count in train.counts().items():
        assert abs(valid.counts()[name] - 0.1 * count) <= 0.5
    assert not set(valid.texts) - set(train.texts)
    again, other = stratified_split(train, seed=0)[1], stratified_split(train, seed=1)[1]
    assert again.texts == valid.texts and other.texts != valid.texts


def test_dynamic_padding_with_buckets_halves_tokens_per_epoch(trec, capsys):
    train, _ = trec
    tok = Tokenizer.train(train.texts, vocab_size=4000)
    ids = encode_for_classification(train.texts, tok, max_len=256)
    lengths = [len(x) for x in ids]
    batch_size = 32
    pad_to_max = tokens_per_epoch(lengths, LengthBucketSampler(lengths, batch_size), pad_to=max(lengths))
    sequential = [list(range(i, min(i + batch_size, len(ids)))) for i in range(0, len(ids), batch_size)]
    dynamic = tokens_per_epoch(lengths, sequential)
    bucketed = tokens_per_epoch(lengths, LengthBucketSampler(lengths, batch_size, seed=0))
    with capsys.disabled():
        print(
            f"\nTREC train tokens per epoch (batch {batch_size}, mean length {sum(lengths) / len(lengths):.1f},"
            f" max {max(lengths)}): pad-to-max {pad_to_max:,}, dynamic {dynamic:,} "
            f"({dynamic / pad_to_max:.2f}x), dynamic + buckets {bucketed:,} ({bucketed / pad_to_max:.2f}x)"
        )
    assert pad_to_max == len(ids) * max(lengths)
    assert bucketed <= dynamic <= pad_to_max
    assert bucketed <= 0.5 * pad_to_max


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_tsv_with_header_and_blank_lines(tmp_path, caplog):
    path = write(
        tmp_path / "train.tsv", "label\ttext\npos\tgreat film\n\nneg\tdull plot\n  \npos\tloved it\n"
    )
    with caplog.at_level(logging.INFO):
        data = read_labeled_file(path)
    assert data.texts == ["great film", "dull plot", "loved it"]
    assert data.labels == [1, 0, 1] and data.label_names == ["neg", "pos"]
    assert "skipped 2 blank lines" in caplog.text


def test_csv_with_named_columns_and_quotes(tmp_path):
    path = write(
        tmp_path / "data.csv", 'id,text,label\n1,"Hello, world",greeting\n2,"Bye ""now""",farewell\n'
    )
    data = read_labeled_file(path, label_names=["farewell", "greeting", "other"])
    assert data.texts == ["Hello, world", 'Bye "now"'] and data.labels == [1, 0]


def test_headerless_csv_is_recognised_by_its_first_label_recurring(tmp_path):
    path = write(tmp_path / "plain.csv", 'pos,great film\nneg,"dull, long plot"\npos,loved it\n')
    data = read_labeled_file(path)
    assert data.texts == ["great film", "dull, long plot", "loved it"] and data.labels == [1, 0, 1]
    # a first row whose label never comes back is taken for a header, which must name label and text
    unique = write(tmp_path / "unique.csv", "joy,what a day\nneg,dull plot\npos,loved it\n")
    with pytest.raises(
        ValueError, match=r"unique.csv:1: CSV header must name 'label' and 'text'.*without a header"
    ):
        read_labeled_file(unique)


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("bad.tsv", "pos\tfine\nno tab here\n", r"bad.tsv:2: malformed line.*'no tab here'"),
        ("bad.label", "DESC:def What ?\nWhat is this\n", r"bad.label:2: malformed.*'What is this'"),
        ("cols.csv", "sentence,label\nhi,x\n", r"cols.csv:1: CSV header.*'sentence'"),
        ("empty.tsv", "\n\n", "holds no examples"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, name, content, match):
    path = write(tmp_path / name, content)
    with pytest.raises(ValueError, match=match):
        if name.endswith(".label"):
            (tmp_path / "trec").mkdir()
            path.rename(tmp_path / "trec" / name)
            load_trec(data_dir=tmp_path, train_file=name, test_file=name)
        else:
            read_labeled_file(path)


def test_trec_latin1_and_unknown_test_label(tmp_path):
    (tmp_path / "trec").mkdir()
    write(
        tmp_path / "trec" / "train.label", "HUM:ind Who is Pel\xe9 ?\nLOC:city Where is Paris ?\n", "latin-1"
    )
    write(tmp_path / "trec" / "test.label", "LOC:city Where is Rome ?\nNUM:date When ?\n")
    with pytest.raises(ValueError, match=r"test.label:2: label 'NUM' is not one of .*\['HUM', 'LOC'\]"):
        load_trec(data_dir=tmp_path, train_file="train.label", test_file="test.label")
    train, test = load_trec(data_dir=tmp_path, train_file="train.label", test_file="train.label")
    assert train.texts[0] == "Who is Pelé ?"


def test_encode_truncation_keeps_the_classification_token(tokenizer):
    texts = ["What is the capital of France ?", "Who ?"]
    end = encode_for_classification(texts, tokenizer, max_len=4)
    assert end[0] == tokenizer.encode(texts[0])[:3] + [tokenizer.cls_id]
    assert end[1] == tokenizer.encode("Who ?") + [tokenizer.cls_id]
    start = encode_for_classification(texts, tokenizer, max_len=4, clf_position="start")
    assert start[0] == [tokenizer.cls_id, *tokenizer.encode(texts[0])[:2], tokenizer.sep_id]
    with pytest.raises(ValueError, match="clf_position"):
        encode_for_classification(texts, tokenizer, max_len=4, clf_position="middle")


def test_collate_pads_to_batch_max_with_correct_masks(tokenizer):
    texts = ["What is the capital of France ?", "Who ?", "How far is the moon ?"]
    ids = encode_for_classification(texts, tokenizer, max_len=64)
    dataset = ClassificationDataset(ids, [0, 1, 2])
    pad, cls = tokenizer.pad_id, tokenizer.cls_id
    batch = collate_classification([dataset[i] for i in range(3)], pad_id=pad, cls_id=cls)
    lengths = [len(x) for x in ids]
    assert batch["input_ids"].shape == (3, max(lengths))
    assert batch["padding_mask"].sum(1).tolist() == [max(lengths) - n for n in lengths]
    assert (batch["input_ids"][batch["padding_mask"]] == pad).all()
    assert batch["clf_tokens_mask"].nonzero()[:, 1].tolist() == [n - 1 for n in lengths]
    assert batch["labels"].tolist() == [0, 1, 2] and batch["labels"].dtype == torch.long

    fixed = collate_classification([dataset[1]], pad_id=pad, cls_id=cls, pad_to=40)
    assert fixed["input_ids"].shape == (1, 40)
    with pytest.raises(ValueError, match="pad_to=3"):
        collate_classification([dataset[0]], pad_id=pad, cls_id=cls, pad_to=3)
    with pytest.raises(ValueError, match="2 classification tokens"):
        collate_classification([{"input_ids": [cls, 7, cls], "label": 0}], pad_id=pad, cls_id=cls)


def test_bucket_sampler_groups_lengths_and_is_seeded():
    lengths = [(i * 37) % 50 + 1 for i in range(1000)]
    sampler = LengthBucketSampler(lengths, batch_size=10, seed=3, pool_batches=10)
    first = list(sampler)
    assert len(first) == len(sampler) == 100
    assert sorted(i for batch in first for i in batch) == list(range(1000))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in first) / len(first)
    assert spread < 5  # random batches of 10 from 1..50 would spread ~40
    assert first == list(LengthBucketSampler(lengths, batch_size=10, seed=3, pool_batches=10))
    sampler.set_epoch(1)
    assert list(sampler) != first
    assert len(LengthBucketSampler(lengths[:995], batch_size=10, drop_last=True)) == 99
    assert all(len(b) == 10 for b in LengthBucketSampler(lengths[:995], batch_size=10, drop_last=True))


def test_labeled_texts_counts_in_label_order():
    data = LabeledTexts(["a", "b", "c"], [1, 1, 0], ["x", "y", "z"])
    assert data.counts() == {"x": 1, "y": 2, "z": 0}
    assert Counter(stratified_split(data, 0.5)[1].labels) == Counter({1: 1})


@pytest.mark.parametrize("name", ["excel.tsv", "excel.csv", "noheader.tsv"])
def test_a_byte_order_mark_is_not_part_of_the_first_label(tmp_path, name):
    """Issue 27 item 4: a BOM made a 3-class model of 2-class data."""
    sep = "," if name.endswith(".csv") else "\t"
    header = "" if name.startswith("noheader") else f"label{sep}text\n"
    path = write(tmp_path / name, f"\ufeff{header}pos{sep}great film\nneg{sep}dull plot\npos{sep}loved it\n")
    data = read_labeled_file(path)
    assert data.label_names == ["neg", "pos"] and data.labels == [1, 0, 1]


@pytest.mark.parametrize("sep, name", [("\t", "joined.tsv"), (",", "joined.csv"), (",", "plain.csv")])
def test_a_repeated_header_line_is_skipped_not_a_class(tmp_path, caplog, sep, name):
    """Issue 27 item 5: two files joined added a class "label"."""
    header = "" if name == "plain.csv" else f"label{sep}text\n"
    text = f"{header}pos{sep}great\nneg{sep}dull\nlabel{sep}text\npos{sep}loved it\n"
    data = read_labeled_file(write(tmp_path / name, text))
    assert data.label_names == ["neg", "pos"] and len(data) == 3
    assert "skipped a repeated header line" in caplog.text


def test_one_bad_byte_is_named_by_line_and_the_rest_read_as_utf8(tmp_path, caplog):
    """Issue 27 item 29: one bad byte decoded the whole file as latin-1 (mojibake), no line named."""
    path = tmp_path / "mixed.tsv"
    path.write_bytes("pos\tcafé au lait\nneg\tPel\xe9\n".encode().replace(b"\xc3\xa9\n", b"\xe9\n"))
    data = read_labeled_file(path)
    assert data.texts == ["café au lait", "Pelé"]
    assert "mixed.tsv is not UTF-8 at line 2" in caplog.text


def test_a_split_that_holds_out_nothing_says_how_many_examples_a_class_needs():
    """Issue 27 item 25: too little data for a validation split gave "Input data has zero size"."""
    data = LabeledTexts(["a", "b", "c", "d", "e", "f"], [0, 0, 0, 1, 1, 1], ["x", "y"])
    with pytest.raises(
        ValueError, match=r"a class needs at least 6 examples .* the largest has 3; add .*, or use X"
    ):
        stratified_split(data, fraction=0.1, what="validation", fix="use X")
    assert len(stratified_split(data, fraction=0.34)[1]) == 2
