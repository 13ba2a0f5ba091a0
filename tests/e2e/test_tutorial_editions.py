"""The site's two editions executed in a kernel (tutorial 1, smoke mode), and tutorial 5 without its
checkpoint: one line saying what to do, not a traceback."""

from __future__ import annotations

import importlib.util
import os

import pytest
from conftest import REPO

pytest.importorskip("nbclient", reason="the tutorial tests run notebooks: pip install -e '.[dev]'")
import jupytext  # noqa: E402
import nbformat  # noqa: E402
from nbclient import NotebookClient  # noqa: E402
from nbclient.exceptions import CellExecutionError  # noqa: E402

_spec = importlib.util.spec_from_file_location("build_site", REPO / "tutorials" / "build_site.py")
site = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(site)
TUTORIAL_1 = REPO / "tutorials" / "01_transformer_piece_by_piece.py"


def printed(notebook) -> list[str]:
    """Every line the notebook's cells printed."""
    return [
        line
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        for line in output.get("text", "").splitlines()
    ]


@pytest.mark.parametrize(
    "edition, verdict", [("student", "exercise not attempted yet:"), ("instructor", "exercise passed:")]
)
def test_each_edition_of_tutorial_1_runs_with_its_verdicts(tmp_path, edition, verdict):
    site.build([TUTORIAL_1], tmp_path, smoke=True, timeout_s=900, edition=edition)
    notebook = nbformat.read(tmp_path / f"{TUTORIAL_1.stem}.ipynb", as_version=4)
    verdicts = [line for line in printed(notebook) if line.startswith("exercise ")]
    assert len(verdicts) == 3 and all(line.startswith(verdict) for line in verdicts), verdicts
    answers_shown = sum(line.startswith("def solution_") for line in printed(notebook))
    assert answers_shown == (3 if edition == "instructor" else 0)
    page = (tmp_path / f"{TUTORIAL_1.stem}.html").read_text(encoding="utf-8")
    assert ("solution_" in page) == (edition == "instructor")
    assert edition.capitalize() + " edition" in (tmp_path / "index.html").read_text(encoding="utf-8")


def test_tutorial_5_without_the_minilm_checkpoint_stops_with_one_line_saying_what_to_do(tmp_path):
    pytest.importorskip("transformers")
    notebook = jupytext.read(REPO / "tutorials" / "05_hugging_face.py")
    first_code = next(i for i, cell in enumerate(notebook.cells) if "fetch_minilm.sh" in cell.source)
    notebook.cells = notebook.cells[: first_code + 2]  # up to the cell that needs the checkpoint
    env = {
        **os.environ,
        "MINITRANSFORMER_MINILM": str(tmp_path / "no_checkpoint_here"),
        "MINITRANSFORMER_TUTORIAL_OUT": str(tmp_path / "figures"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    client = NotebookClient(notebook, timeout=600, kernel_name="python3")
    with pytest.raises(CellExecutionError):
        client.execute(env=env, cwd=str(tmp_path))
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o["output_type"] == "error"]
    assert len(errors) == 1 and errors[0]["ename"] == "SystemExit", errors
    message = errors[0]["evalue"]
    assert "no_checkpoint_here" in message and "bash tests/fetch_minilm.sh" in message
    assert "MINITRANSFORMER_MINILM" in message and "\n" not in message
    assert not any("Traceback" in line or "File " in line for line in errors[0]["traceback"])
