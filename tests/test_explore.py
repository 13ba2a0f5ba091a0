"""The explorer page's numbers (logit lens, contributions, attention, summaries), its refusals and its file.

The page's behaviour in a real browser is tested in tests/test_explore_browser.py.
"""

from __future__ import annotations

import html
import json
import math
import re
import subprocess
import sys

import pytest
import torch
from conftest import REPO

from minitransformer import TransformerConfig, TransformerWithLMHead
from minitransformer.explore import ExplorerInputError, explore, explorer_data, lens_probs, write_page
from minitransformer.explore.__main__ import main
from minitransformer.explore.data import allowed_attention, masked_copies, record_block_outputs
from minitransformer.runs.errors import run_cli
from minitransformer.teaching.circuits import copying_score, prefix_matching_score, uniform_attention
from minitransformer.teaching.inspection import previous_token_share
from minitransformer.tokenization import Tokenizer

TOKENIZER = REPO / "tests" / "data" / "tokenizer.json"
TEXT = "The cat sat on the mat."


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.from_file(TOKENIZER)


def tiny_model(**overrides) -> TransformerWithLMHead:
    """2 layers, 3 heads, the test tokenizer's 600 tokens, 16 positions; dropout on (the explorer turns it off)."""
    values = dict(embed_dim=24, hidden_dim=40, num_heads=3, num_layers=2, vocab_size=600,
                  num_max_positions=16, dropout=0.1)  # fmt: skip
    torch.manual_seed(0)
    return TransformerWithLMHead(TransformerConfig(**{**values, **overrides}))


PLACEMENTS = [
    dict(norm_placement="pre", final_layer_norm=True),  # GPT-2's
    dict(norm_placement="post"),  # BERT's
    dict(),  # the hands-on's
]


def decode_attention(page: dict) -> torch.Tensor:
    """The page's attention bytes back to probabilities (L, nh, T, T)."""
    import base64

    L, nh, T, _ = page["attention_shape"]
    allowed = torch.tensor([[c == "1" for c in row] for row in page["allowed"]])  # (T, T)
    raw = torch.frombuffer(bytearray(base64.b64decode(page["attention"])), dtype=torch.uint8)
    full = torch.zeros(L, nh, T, T)
    full[:, :, allowed] = raw.float().div(255).view(L, nh, -1)  # only allowed cells are stored
    return full


# ----------------------------------------------------------------------------------------------
# The logit lens
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("switches", PLACEMENTS)
def test_last_layer_lens_is_the_models_own_output_distribution(tokenizer, switches):
    model = tiny_model(**switches).eval()
    x = torch.tensor([tokenizer.encode(TEXT)])  # (1, T)
    with torch.no_grad():
        hidden = model.transformer(x, output_hidden_states=True).hidden_states
        lens = lens_probs(model, hidden[-1])  # (1, T, V)
        own = model(x).softmax(-1)  # (1, T, V)
    torch.testing.assert_close(lens, own, rtol=0, atol=1e-6)

    data = explorer_data(model.train(), tokenizer, TEXT, top_k=4)
    top = data["texts"][0]["lens"][model.config.num_layers]
    values, ids = own[0].topk(4, dim=-1)
    assert top["ids"] == ids.tolist()
    torch.testing.assert_close(torch.tensor(top["probs"]), values, rtol=0, atol=1e-4)
    # the true next token's probability and rank, as the model gives them
    targets = x[0, 1:]
    expected = own[0, :-1].gather(1, targets[:, None])[:, 0]
    torch.testing.assert_close(torch.tensor(top["target_prob"][:-1]), expected, rtol=0, atol=1e-4)
    assert top["target_prob"][-1] is None  # nothing follows the last token
    assert model.training, "the explorer must hand the model back in the mode it found it"


def test_lens_of_lower_layers_reads_them_through_the_final_norm(tokenizer):
    model = tiny_model(norm_placement="pre", final_layer_norm=True).eval()
    x = torch.tensor([tokenizer.encode(TEXT)])
    with torch.no_grad():
        hidden = model.transformer(x, output_hidden_states=True).hidden_states
        expected = model.lm_head(model.transformer.final_layer_norm(hidden[1])).softmax(-1)[0]
    lens = explorer_data(model, tokenizer, TEXT, top_k=3)["texts"][0]["lens"][1]
    assert lens["ids"] == expected.topk(3, dim=-1).indices.tolist()


def test_masked_model_predicts_each_position_with_that_token_masked(tokenizer):
    model = tiny_model(mlm=True, norm_placement="post", lm_head_transform=True, lm_head_bias=True).eval()
    ids = tokenizer.encode(TEXT)
    x = torch.tensor(ids)
    copies = masked_copies(x, len(ids), tokenizer.mask_id)  # row t: position t masked
    assert (copies.diagonal() == tokenizer.mask_id).all() and copies[0, 1:].tolist() == ids[1:]
    with torch.no_grad():
        own = model(copies).softmax(-1)  # (T, T, V)
    expected = own[torch.arange(len(ids)), torch.arange(len(ids))]  # (T, V): position t of copy t
    page = explorer_data(model, tokenizer, TEXT, top_k=5)["texts"][0]
    top = page["lens"][model.config.num_layers]
    assert top["ids"] == expected.topk(5, dim=-1).indices.tolist()
    assert page["targets"] == ids  # a masked model is asked for the token itself
    torch.testing.assert_close(
        torch.tensor(top["target_prob"]), expected.gather(1, x[:, None])[:, 0], rtol=0, atol=1e-4
    )


# ----------------------------------------------------------------------------------------------
# Residual stream, attention, head summaries
# ----------------------------------------------------------------------------------------------


def test_recorded_block_outputs_are_exactly_what_a_pre_norm_layer_adds(tokenizer):
    model = tiny_model(norm_placement="pre", final_layer_norm=True).eval()
    x = torch.tensor([tokenizer.encode(TEXT)])
    with torch.no_grad(), record_block_outputs(model) as blocks:
        hidden = model.transformer(x, output_hidden_states=True).hidden_states
    assert len(blocks["attention"]) == len(blocks["feed_forward"]) == 2
    for i in range(2):  # h_{i+1} = h_i + attention + feed-forward
        added = blocks["attention"][i] + blocks["feed_forward"][i]
        torch.testing.assert_close(hidden[i + 1], hidden[i] + added, rtol=0, atol=1e-5)
    hooks = [m._forward_hooks for m in model.modules()]
    assert not any(hooks), "the hooks must be removed afterwards"

    residual = explorer_data(model, tokenizer, TEXT)["texts"][0]["residual"]
    assert len(residual["norm"]) == 3 and len(residual["attention"]) == 2
    torch.testing.assert_close(
        torch.tensor(residual["norm"][2]), hidden[2][0].norm(dim=-1), rtol=0, atol=1e-3
    )
    torch.testing.assert_close(
        torch.tensor(residual["feed_forward"][0]),
        blocks["feed_forward"][0][0].norm(dim=-1),
        rtol=0,
        atol=1e-3,
    )


def test_an_attention_only_model_shows_its_layers_adding_nothing_through_a_feed_forward(tokenizer):
    model = tiny_model(norm_placement="pre", final_layer_norm=True, attention_only=True, rotary=True).eval()
    residual = explorer_data(model, tokenizer, TEXT)["texts"][0]["residual"]
    assert len(residual["feed_forward"]) == len(residual["attention"]) == 2
    assert all(v == 0 for layer in residual["feed_forward"] for v in layer)
    assert any(v > 0 for layer in residual["attention"] for v in layer)


def test_attention_masks_and_summaries_of_a_padded_batch(tokenizer):
    model = tiny_model().eval()
    texts = [TEXT, "A dog."]
    n_long, n_short = len(tokenizer.encode(texts[0])), len(tokenizer.encode(texts[1]))
    data = explorer_data(model, tokenizer, texts)
    long, short = data["texts"]
    assert long["length"] == len(short["ids"]) == n_long and short["length"] == n_short
    assert short["pad"] == [False] * n_short + [True] * (n_long - n_short)

    # the causal mask: a token sees itself and earlier tokens only
    assert long["allowed"] == ["1" * (i + 1) + "0" * (n_long - i - 1) for i in range(n_long)]
    # padding: no real token attends to it; a padding query sees only itself
    for i, row in enumerate(short["allowed"]):
        expected = ["1" if j <= i and j < n_short or j == i else "0" for j in range(n_long)]
        assert row == "".join(expected), i

    padding = torch.tensor([long["pad"], short["pad"]])
    x = torch.tensor([long["ids"], short["ids"]])
    with torch.no_grad():
        attentions = model.transformer(x, padding_mask=padding, output_attentions=True).attentions
    assert allowed_attention(model, padding).tolist() == [
        [[c == "1" for c in r] for r in t["allowed"]] for t in data["texts"]
    ]
    for b, page in enumerate(data["texts"]):
        decoded = decode_attention(page)  # (L, nh, T, T), one byte a weight
        torch.testing.assert_close(
            decoded, torch.stack([a[b] for a in attentions]), rtol=0, atol=0.5 / 255 + 1e-6
        )
        n = page["length"]
        for layer, a in enumerate(attentions):  # the summaries are the library's, on the real tokens only
            expected = previous_token_share(a[b : b + 1, :, :n, :n])
            torch.testing.assert_close(
                torch.tensor(page["heads"]["previous_token"][layer]), expected, rtol=0, atol=1e-4
            )
    assert len(data["texts"][1]["lens"][0]["ids"]) == n_short  # predictions for real tokens only


def test_head_summaries_come_with_the_uniform_heads_values_and_the_induction_scores(tokenizer):
    model = tiny_model().eval()
    ids = tokenizer.encode(TEXT)  # "##at" three times: the text repeats itself
    n = len(ids)
    heads = explorer_data(model, tokenizer, TEXT)["texts"][0]["heads"]
    with torch.no_grad():
        attentions = model.transformer(torch.tensor([ids]), output_attentions=True).attentions
    # the baseline: a causal head spreading row t evenly over t + 1 tokens
    assert heads["uniform"]["previous_token"] == pytest.approx(
        sum(1 / (t + 1) for t in range(1, n)) / (n - 1), abs=1e-4
    )
    assert heads["uniform"]["entropy"] == pytest.approx(
        sum(math.log(t + 1) for t in range(n)) / n, abs=1e-4
    )  # nats
    for layer, a in enumerate(attentions):
        entropy = -(a * a.clamp(min=1e-12).log()).sum(-1).mean(dim=(0, -1))  # nats, not bits
        torch.testing.assert_close(torch.tensor(heads["entropy"][layer]), entropy, rtol=0, atol=1e-4)
        expected = prefix_matching_score(a, torch.tensor([ids]))
        torch.testing.assert_close(torch.tensor(heads["prefix_matching"][layer]), expected, rtol=0, atol=1e-4)
        torch.testing.assert_close(
            torch.tensor(heads["copying"][layer]), copying_score(model)[layer], rtol=0, atol=1e-4
        )
    uniform = prefix_matching_score(uniform_attention(n), torch.tensor([ids])).item()
    assert heads["uniform"]["prefix_matching"] == pytest.approx(uniform, abs=1e-4)

    masked = explorer_data(tiny_model(mlm=True).eval(), tokenizer, TEXT)["texts"][0]["heads"]["uniform"]
    assert masked["previous_token"] == pytest.approx(1 / n, abs=1e-4)  # sees all n tokens: 1/n each
    once = "A dog."
    assert len(set(tokenizer.encode(once))) == len(tokenizer.encode(once))
    single = explorer_data(model, tokenizer, once)["texts"][0]["heads"]
    assert "prefix_matching" not in single and "prefix_matching" not in single["uniform"]


# ----------------------------------------------------------------------------------------------
# Refusals
# ----------------------------------------------------------------------------------------------


def test_refusals_name_the_problem_and_the_fix(tokenizer):
    model = tiny_model()
    with pytest.raises(ExplorerInputError, match="empty"):
        explorer_data(model, tokenizer, "   ")
    long = " ".join(["the cat"] * 20)
    with pytest.raises(ExplorerInputError, match=r"at most 16 positions.*--truncate"):
        explorer_data(model, tokenizer, long)
    page = explorer_data(model, tokenizer, long, truncate=True)["texts"][0]
    assert page["length"] == 16 and page["truncated_from"] == len(tokenizer.encode(long))
    with pytest.raises(ExplorerInputError, match=r"tokenizer has 600 tokens .* vocabulary has 50"):
        explorer_data(tiny_model(vocab_size=50), tokenizer, TEXT)


def test_bert_texts_keep_their_closing_sep_when_truncated(tokenizer):
    page = explorer_data(tiny_model(mlm=True), tokenizer, " ".join(["the cat"] * 20), truncate=True,
                         add_special_tokens=True)["texts"][0]  # fmt: skip
    assert (
        page["ids"][0] == tokenizer.cls_id and page["ids"][-1] == tokenizer.sep_id and len(page["ids"]) == 16
    )


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = run_cli(lambda: main(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_command_line_errors_are_one_line(tmp_path, tokenizer, capsys):
    code, _, err = cli([str(tmp_path / "nowhere"), "--text", TEXT], capsys)
    assert code == 1 and err.startswith("error: model directory") and err.count("\n") == 1

    model_dir = tiny_model().save_pretrained(tmp_path / "model", tokenizer=tokenizer)
    code, _, err = cli([str(model_dir), "--text", ""], capsys)
    assert code == 1 and "empty" in err and err.count("\n") == 1
    code, _, err = cli([str(model_dir), "--text", " ".join(["the cat"] * 20)], capsys)
    assert code == 1 and "16 positions" in err and "--truncate" in err
    assert not (model_dir / "explore.html").exists(), "a refused run writes nothing"

    other = tiny_model(vocab_size=50).save_pretrained(tmp_path / "other")
    (other / "tokenizer.json").write_text((model_dir / "tokenizer.json").read_text())
    code, _, err = cli([str(other), "--text", TEXT], capsys)
    assert code == 1 and "do not belong together" in err

    # the same size but another vocabulary (a tokenizer.json copied from another run): refused too
    texts = ["the cat sat on the mat", "a dog ran in the park", "birds fly over the sea"] * 20
    ours = Tokenizer.train(texts, vocab_size=60, min_frequency=1)
    theirs = Tokenizer.train([t.upper() for t in texts], vocab_size=60, min_frequency=1, lowercase=False)
    same_size = tiny_model(vocab_size=60).save_pretrained(tmp_path / "same-size", tokenizer=ours)
    theirs.save_pretrained(same_size)
    code, _, err = cli([str(same_size), "--text", "the cat sat"], capsys)
    assert code == 1 and "is not the tokenizer" in err and err.count("\n") == 1


def test_command_line_exits_non_zero_without_a_traceback(tmp_path):
    run = subprocess.run([sys.executable, "-m", "minitransformer.explore", str(tmp_path / "missing"), "--text", "a"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)  # fmt: skip
    assert run.returncode == 1
    assert "Traceback" not in run.stderr and run.stderr.startswith("error: model directory")


# ----------------------------------------------------------------------------------------------
# The page file
# ----------------------------------------------------------------------------------------------


def embedded_data(page: str) -> dict:
    match = re.search(r'<script id="explorer-data" type="application/json">(.*?)</script>', page, re.S)
    return json.loads(match.group(1))


def test_command_line_writes_one_self_contained_page_next_to_the_model(tmp_path, tokenizer, capsys):
    model_dir = tiny_model().save_pretrained(tmp_path / "model", tokenizer=tokenizer)
    code, out, _ = cli([str(model_dir), "--text", TEXT, "--text", "</script><b>A dog."], capsys)
    page_path = model_dir / "explore.html"
    assert code == 0 and str(page_path) in out
    page = page_path.read_text(encoding="utf-8")
    assert page.count("</script>") == 2, "the data cannot close its script element early"
    data = embedded_data(page)
    assert data["texts"][1]["text"] == "</script><b>A dog."
    assert data["model"]["layers"] == 2 and data["model"]["name"] == "model"
    # nothing fetched from anywhere: no external src/href/url()/@import
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//|@import", page, re.I)
    assert "<script src" not in page and "<link" not in page
    assert page_path.stat().st_size < 200_000  # a tiny model's page: tens of kB

    code, out, _ = cli(
        [str(model_dir), "--text", TEXT, "--output", str(tmp_path / "p.html"), "--top-k", "2"], capsys
    )
    assert code == 0 and embedded_data((tmp_path / "p.html").read_text())["top_k"] == 2


def test_jupyter_shows_the_page_in_an_iframe_so_its_script_runs(tokenizer):
    shown = explore(tiny_model(), tokenizer, TEXT)
    frame = shown._repr_html_()
    assert frame.startswith('<iframe srcdoc="') and "<script" not in frame  # all of it escaped into srcdoc
    srcdoc = re.match(r'<iframe srcdoc="(.*?)"', frame, re.S).group(1)
    assert html.unescape(srcdoc) == shown.html


def test_hugging_face_gpt2_directory_opens_as_it_comes(tmp_path, tokenizer):
    from minitransformer.interop import hf

    model = tiny_model(norm_placement="pre", final_layer_norm=True, activation="gelu_tanh").eval()
    directory = hf.to_hf(
        model, tmp_path / "gpt2"
    )  # config.json with model_type "gpt2", no transformers needed
    tokenizer.save_pretrained(directory)
    page = write_page(*_loaded(directory)[:2], TEXT, tmp_path / "gpt2.html")
    data = embedded_data(page.read_text())
    with torch.no_grad():
        own = model(torch.tensor([tokenizer.encode(TEXT)])).softmax(-1)[0]
    assert data["texts"][0]["lens"][2]["ids"] == own.topk(5, dim=-1).indices.tolist()


def _loaded(directory):
    from minitransformer.explore import load_model_dir

    return load_model_dir(directory)


def test_bert_directories_wrap_texts_and_classifier_directories_open_as_language_models(tmp_path, tokenizer):
    from minitransformer import FineTuningConfig, TransformerWithClfHead
    from minitransformer.explore import load_model_dir

    bert_dir = tiny_model(mlm=True, norm_placement="post").save_pretrained(
        tmp_path / "bert", tokenizer=tokenizer
    )
    (bert_dir / "minitransformer_meta.json").write_text(
        json.dumps({"model_type": "bert", "clf_position": "start"})
    )
    model, loaded_tokenizer, bert = load_model_dir(bert_dir)
    assert bert and not model.training and model.config.mlm
    page = explorer_data(model, loaded_tokenizer, TEXT, add_special_tokens=bert)["texts"][0]
    assert page["ids"] == [tokenizer.cls_id, *tokenizer.encode(TEXT), tokenizer.sep_id]

    config = tiny_model().config
    classifier = TransformerWithClfHead(config, FineTuningConfig(num_classes=3))
    clf_dir = classifier.save_pretrained(tmp_path / "clf", tokenizer=tokenizer)
    model, _, bert = load_model_dir(clf_dir)
    assert not bert
    torch.testing.assert_close(
        model.transformer.tokens_embeddings.weight, classifier.transformer.tokens_embeddings.weight
    )


def test_masked_predictions_of_a_padded_text_equal_those_of_the_text_alone(tokenizer):
    model = tiny_model(mlm=True, norm_placement="post").eval()
    short = "A dog."
    padded = explorer_data(model, tokenizer, [TEXT, short])["texts"][1]
    alone = explorer_data(model, tokenizer, short)["texts"][0]
    assert padded["length"] == alone["length"] < len(padded["ids"])
    for layer_padded, layer_alone in zip(padded["lens"], alone["lens"]):
        assert layer_padded["ids"] == layer_alone["ids"]
        torch.testing.assert_close(
            torch.tensor(layer_padded["probs"]), torch.tensor(layer_alone["probs"]), rtol=0, atol=2e-4
        )


def test_command_line_truncates_when_asked(tmp_path, tokenizer, capsys):
    model_dir = tiny_model().save_pretrained(tmp_path / "model", tokenizer=tokenizer)
    code, out, _ = cli([str(model_dir), "--text", " ".join(["the cat"] * 20), "--truncate"], capsys)
    assert code == 0
    page = embedded_data((model_dir / "explore.html").read_text(encoding="utf-8"))["texts"][0]
    assert page["length"] == 16 and page["truncated_from"] > 16


def test_masked_copies_run_in_chunks_with_the_same_states():
    from minitransformer.explore.data import masked_states

    model = tiny_model(mlm=True, num_max_positions=40).eval()
    ids, padding = torch.randint(5, 600, (40,)), torch.zeros(40, dtype=torch.bool)
    with torch.no_grad():
        chunked = masked_states(model, masked_copies(ids, 40, 4), padding, chunk=7)
        whole = masked_states(model, masked_copies(ids, 40, 4), padding, chunk=40)
    assert len(chunked) == 3 and chunked[0].shape == (1, 40, 24)
    for a, b in zip(chunked, whole):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# Issue 34: texts that would break the page, texts that are not text
# ----------------------------------------------------------------------------------------------


def test_no_text_can_open_a_comment_or_a_tag_inside_the_data_block(tmp_path, tokenizer):
    """Case 9: `<!--<script>` in a text made an HTML parser swallow the page's own script (one
    <script> seen instead of two): the page was dead while the command said it wrote it."""
    from html.parser import HTMLParser

    class Scripts(HTMLParser):
        def __init__(self):
            super().__init__()
            self.opened = 0

        def handle_starttag(self, tag, attrs):
            self.opened += tag == "script"

    texts = ["<!--<script> x", "a </script> b", "<b>bold</b> <!-- c"]
    page = write_page(tiny_model(), tokenizer, texts, tmp_path / "p.html").read_text(encoding="utf-8")
    block = re.search(r'<script id="explorer-data" type="application/json">(.*?)</script>', page, re.S).group(
        1
    )
    assert "<" not in block
    assert [t["text"] for t in json.loads(block)["texts"]] == texts
    parser = Scripts()
    parser.feed(page)
    assert parser.opened == 2


@pytest.mark.parametrize(
    "text, message",
    [("abc\udcff\udcfe def", "is not valid UTF-8"), (b"bytes", "is bytes, not text"),
     (None, "is NoneType, not text"), (7, "is int, not text")],
)  # fmt: skip
def test_a_text_that_is_not_text_is_named(tokenizer, text, message):
    """Case 12: a traceback (`TextInputSequence must be str`) for a lone surrogate, bytes, int or None."""
    with pytest.raises(ExplorerInputError, match=message):
        explore(tiny_model(), tokenizer, text)
    with pytest.raises(ExplorerInputError, match=f"text 2 {message}"):
        explore(tiny_model(), tokenizer, ["the cat", text])


def test_a_command_line_text_that_is_not_utf8_is_one_line(tmp_path, tokenizer, capsys):
    model_dir = tiny_model().save_pretrained(tmp_path / "model", tokenizer=tokenizer)
    code, _, err = cli(
        [str(model_dir), "--text", "abc\udcff\udcfe def"], capsys
    )  # what Python makes of $'abc\xff\xfe'
    assert code == 1 and err.startswith("error: the text is not valid UTF-8") and err.count("\n") == 1
    assert not (model_dir / "explore.html").exists()
