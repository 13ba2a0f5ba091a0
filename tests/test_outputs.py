"""No command writes over what it did not make (issue 34, cases 1-5 and 17): `interop.hf convert`,
`to_hf` and the explorer refuse a run's or a model's folder, the input itself, a file of another kind
and a device, FIFO or link, in one line, before anything is written."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch
from conftest import REPO

from minitransformer import TransformerConfig, TransformerWithLMHead
from minitransformer.explore.__main__ import main as explore_main
from minitransformer.interop import hf
from minitransformer.runs.errors import run_cli
from minitransformer.runs.io import write_json_atomic
from minitransformer.runs.run_state import LOCK_NAME, owner, write_state
from minitransformer.tokenization import Tokenizer

TOKENIZER = Tokenizer.from_file(REPO / "tests" / "data" / "tokenizer.json")


def gpt2_shaped() -> TransformerWithLMHead:
    torch.manual_seed(0)
    config = TransformerConfig(embed_dim=16, hidden_dim=32, num_heads=2, num_layers=1, vocab_size=600,
                               num_max_positions=16, norm_placement="pre", final_layer_norm=True,
                               activation="gelu_tanh")  # fmt: skip
    return TransformerWithLMHead(config).eval()


@pytest.fixture
def hf_dir(tmp_path) -> Path:
    """A Hugging Face GPT-2 checkpoint folder with its tokenizer."""
    folder = hf.to_hf(gpt2_shaped(), tmp_path / "hf")
    TOKENIZER.save_pretrained(folder)
    return folder


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A finished pretraining run: its model, tokenizer, options and state."""
    folder = gpt2_shaped().save_pretrained(tmp_path / "run", tokenizer=TOKENIZER)
    write_json_atomic(folder / "training_args.json", {"max_steps": 40})
    write_state(folder, "complete", step=40)
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def one_line_error(code: int, err: str, *words: str) -> None:
    assert code != 0 and err.startswith("error: ") and err.count("\n") == 1, err
    assert all(w in err for w in words), err


def test_convert_into_a_finished_run_is_refused_unless_told(hf_dir, run_dir, capsys):
    """Case 1: the run's model files were replaced (rc 0) while its state still said complete."""
    before = snapshot(run_dir)
    code = hf.main(["convert", str(hf_dir), str(run_dir)])
    one_line_error(code, capsys.readouterr().err, str(run_dir), "run_state.json", "--overwrite")
    assert snapshot(run_dir) == before
    assert hf.main(["convert", str(hf_dir), str(run_dir), "--overwrite"]) == 0
    assert (run_dir / hf.META_NAME).is_file()


def test_convert_onto_its_own_input_is_refused_before_writing(hf_dir, capsys):
    """Case 2: `convert X X` overwrote the source's files, then failed with KeyError: 'model_type'."""
    before = snapshot(hf_dir)
    for extra in ([], ["--overwrite"]):
        code = hf.main(["convert", str(hf_dir), str(hf_dir), *extra])
        one_line_error(code, capsys.readouterr().err, "is also the input")
    assert snapshot(hf_dir) == before


def test_to_hf_refuses_a_folder_holding_a_run(run_dir):
    """Case 3: to_hf replaced a run's config.json with a GPT-2 one; the folder no longer loaded."""
    before = snapshot(run_dir)
    with pytest.raises(FileExistsError, match="already holds a run or a model"):
        hf.to_hf(gpt2_shaped(), run_dir)
    assert snapshot(run_dir) == before
    hf.to_hf(gpt2_shaped(), run_dir, overwrite=True)


def test_a_folder_a_live_run_holds_is_refused_even_with_overwrite(hf_dir, tmp_path):
    folder = tmp_path / "busy"
    folder.mkdir()
    write_json_atomic(folder / LOCK_NAME, owner())  # this very process: alive
    with pytest.raises(FileExistsError, match="in use by another run"):
        hf.convert(hf_dir, folder, overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == [LOCK_NAME]


def explore(argv: list[str], capsys) -> tuple[int, str]:
    code = run_cli(lambda: explore_main(argv))
    return code, capsys.readouterr().err


@pytest.mark.parametrize("name", ["model.safetensors", "config.json", "run_state.json"])
def test_the_explorer_writes_html_pages_only(run_dir, name, capsys):
    """Case 4: `--output RUN/model.safetensors` (or results.json) replaced the file with HTML, rc 0."""
    before = snapshot(run_dir)
    for extra in ([], ["--overwrite"]):
        code, err = explore(
            [str(run_dir), "--text", "the cat", "--output", str(run_dir / name), *extra], capsys
        )
        one_line_error(code, err, str(run_dir / name), ".html")
    assert snapshot(run_dir) == before


def test_the_explorer_replaces_its_own_page_but_no_other_html_unless_told(run_dir, tmp_path, capsys):
    assert explore([str(run_dir), "--text", "the cat"], capsys)[0] == 0
    assert explore([str(run_dir), "--text", "a dog"], capsys)[0] == 0  # its own page: rewritten
    mine = tmp_path / "notes.html"
    mine.write_text("<html><body>my notes</body></html>")
    code, err = explore([str(run_dir), "--text", "the cat", "--output", str(mine)], capsys)
    one_line_error(code, err, str(mine), "--overwrite")
    assert mine.read_text() == "<html><body>my notes</body></html>"
    assert explore([str(run_dir), "--text", "the cat", "--output", str(mine), "--overwrite"], capsys)[0] == 0


def test_the_explorer_never_replaces_a_device_fifo_or_link(run_dir, tmp_path, capsys):
    """Case 5: the atomic rename replaced /dev/full, a FIFO or a symlink with a regular file."""
    fifo, link, target = tmp_path / "fifo.html", tmp_path / "link.html", tmp_path / "target.html"
    os.mkfifo(fifo)
    target.write_text("kept")
    link.symlink_to(target)
    for output in (fifo, link, Path("/dev/full")):
        for extra in ([], ["--overwrite"]):
            code, err = explore([str(run_dir), "--text", "the cat", "--output", str(output), *extra], capsys)
            one_line_error(code, err, str(output))
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and link.is_symlink() and target.read_text() == "kept"
    assert stat.S_ISCHR(os.lstat("/dev/full").st_mode)


def test_the_explorer_output_naming_a_folder_says_so(run_dir, capsys):
    """Case 17: `--output RUN` said "free space or choose another folder"."""
    code, err = explore([str(run_dir), "--text", "the cat", "--output", str(run_dir)], capsys)
    one_line_error(code, err, "is a folder", str(run_dir / "page.html"))
    assert "free space" not in err
