"""tutorials/build_site.py's two editions, on the real tutorials' text (no kernel: milliseconds)."""

from __future__ import annotations

import importlib.util

import jupytext
import pytest
from conftest import REPO

pytest.importorskip("nbclient", reason="build_site runs notebooks: pip install -e '.[dev]'")
_spec = importlib.util.spec_from_file_location("build_site", REPO / "tutorials" / "build_site.py")
site = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(site)
TUTORIALS = sorted((REPO / "tutorials").glob("[0-9][0-9]_*.py"))


def sources(notebook, cell_type: str) -> str:
    return "\n".join(cell.source for cell in notebook.cells if cell.cell_type == cell_type)


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_the_student_edition_leaves_every_answer_out_and_keeps_every_check(path):
    notebook = jupytext.read(path)
    student = site.for_edition(notebook, "student")
    assert "(Answer:" in sources(notebook, "markdown")  # every tutorial has exercises
    assert "Answer:" not in sources(student, "markdown")
    code = sources(student, "code")
    assert "solution_" not in code and "use_solutions" not in code
    checks = sources(notebook, "code").count("exercises.check_")
    assert checks >= 2 and code.count("exercises.check_") == checks
    assert len(student.cells) == len(notebook.cells)


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_the_instructor_edition_prints_each_reference_answer_after_its_exercise(path):
    notebook = jupytext.read(path)
    instructor = site.for_edition(notebook, "instructor")
    added = [cell for cell in instructor.cells if "inspect.getsource(" in cell.source]
    assert len(added) == sources(notebook, "code").count("exercises.use_solutions()")
    for cell in added:
        before = instructor.cells[instructor.cells.index(cell) - 1].source
        answer = cell.source.split("inspect.getsource(")[1].rstrip(")")
        assert f"= {answer}\n" in before and "exercises.check_" in before
    assert sources(notebook, "markdown") == sources(instructor, "markdown")


def test_an_unknown_edition_is_refused():
    with pytest.raises(ValueError, match="edition must be one of student, instructor"):
        site.for_edition(jupytext.read(TUTORIALS[0]), "teacher")
