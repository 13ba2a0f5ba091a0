"""Every tutorial runs end to end in a Jupyter kernel, in smoke mode, and shows every figure it promises.

A tutorial declares, at module level and as literals:
- `FIGURES = ["name.png", ...]`: the figures it writes into `$MINITRANSFORMER_TUTORIAL_OUT`;
- optionally `DATA = ["wikitext-2/wiki.valid.tokens", ...]`: files it reads from the data directory
  (`$MINITRANSFORMER_DATA`); the test is skipped when one is missing;
- optionally `MODULES = ["transformers"]`: optional packages it imports (skipped when absent);
- optionally `CHECKPOINTS = {"ENV_VAR": "~/default/dir"}`: model directories it reads, each from the
  environment variable or else the default path; skipped when the directory has no config.json.
New tutorials named `tutorials/NN_*.py` are picked up without touching this file.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
from pathlib import Path

import pytest

from minitransformer.data.paths import locate

pytest.importorskip("nbclient", reason="the tutorial tests run notebooks: pip install -e '.[dev]'")
from conftest import REPO, find_shared_data
from nbclient.exceptions import CellExecutionError  # noqa: E402

_spec = importlib.util.spec_from_file_location("build_site", REPO / "tutorials" / "build_site.py")
site = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(site)
TUTORIALS = sorted((REPO / "tutorials").glob("[0-9][0-9]_*.py"))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SMOKE_TIMEOUT_S = 900  # per cell; generous: smoke runs take seconds alone, minutes on a loaded machine
BARE_REPR = re.compile(
    r"<[\w.]+( size | at 0x| object at )"
)  # what Python prints for an object without a view


def declared(path: Path, name: str, default=()):
    """The literal assigned to `name` at the top level of a tutorial (`default` when absent)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    return default


REMOTE_LOAD = re.compile(
    r"<(?:script|link|img|iframe|source|video|audio)\b[^>]*\b(?:src|href)=[\"']?(?:https?:)?//"  # a tag that fetches
    r"|import\(\s*[\"'](?:https?:)?//"  # a module script that imports from a CDN
    r"|@import\s+(?:url\()?[\"']?(?:https?:)?//"  # a style sheet that does
    r"|url\(\s*[\"']?(?:https?:)?//",
    re.IGNORECASE,
)


def remote_loads(page: str) -> list[str]:
    """What an HTML page would fetch from another host (links a reader may click are not loads)."""
    return [page[m.start() : m.start() + 160] for m in REMOTE_LOAD.finditer(page)]


def test_a_rendered_page_loads_nothing_from_another_host_and_has_its_math_as_mathml():
    """The site works offline: no CDN script (MathJax, require.js, mermaid), formulas as MathML."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell(
            "Attention: $$\\mathrm{softmax}\\left(\\frac{QK^\\top}{\\sqrt{d}}\\right)V$$ and $\\sqrt{E}$, "
            "not `$HOME` (code) nor a price of $5."
        ),
        nbformat.v4.new_code_cell("print('$x$ stays as printed')"),
    ]
    page = site.render_html(notebook)
    assert remote_loads(page) == []
    assert page.count("<math") == 2 and "<msqrt>" in page and "$$" not in page
    assert "`$HOME`" not in page and "$HOME" in page and "$5" in page  # code and prices left alone
    assert "https://cdnjs" not in page, "a CDN address is still in the page"


def test_tutorials_are_found_and_declare_figures():
    assert [p.name for p in TUTORIALS][:1] == ["01_transformer_piece_by_piece.py"]
    for path in TUTORIALS:
        figures = declared(path, "FIGURES")
        assert figures and all(name.endswith(".png") for name in figures), f"{path.name}: no FIGURES list"


@pytest.mark.e2e
@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_runs_in_a_kernel_with_its_figures_inline(path, tmp_path):
    """Executed as a learner does (a notebook in a Jupyter kernel), smoke mode: no cell fails, every
    declared figure is displayed inline as a PNG and written as a PNG file, every exercise checker
    passes the reference solution, and no cell shows the bare repr of an object (`<Figure size ...>`,
    `<torch._C.Generator at 0x...>`)."""
    shared_data_dir = find_shared_data()
    checkpoints = requirements_or_skip(path, shared_data_dir)
    out = tmp_path / "figures"
    env = {
        **os.environ,
        "MINITRANSFORMER_SMOKE": "1",
        "MINITRANSFORMER_SOLUTIONS": "1",  # the exercises run their reference answers through the checkers
        "MINITRANSFORMER_TUTORIAL_OUT": str(out),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        **{variable: str(directory) for variable, directory in checkpoints.items()},
    }
    if shared_data_dir is not None:
        env["MINITRANSFORMER_DATA"] = str(shared_data_dir)
    try:
        # the kernel starts in tmp_path: nothing may depend on being run from the repository root
        notebook = site.execute(path, tmp_path, env, timeout_s=SMOKE_TIMEOUT_S)
    except CellExecutionError as error:
        pytest.fail(f"{path.name}: a cell failed:\n{str(error)[-5000:]}")
    inline = site.figure_outputs(notebook)
    for name in declared(path, "FIGURES"):
        assert Path(name).name in inline, f"{path.name} declares {name} but the notebook does not display it"
        figure = out / name
        assert figure.is_file(), f"{path.name} promised {name} but did not write it"
        assert figure.read_bytes().startswith(PNG_SIGNATURE) and figure.stat().st_size > 1000, name
    assert len(inline) == len(set(inline)), f"{path.name} displays a figure twice: {inline}"
    verdicts = [
        line for text in printed(notebook) for line in text.splitlines() if line.startswith("exercise ")
    ]
    assert verdicts, f"{path.name} has no exercise (or its checker printed nothing)"
    assert all(v.startswith("exercise passed:") for v in verdicts), f"{path.name}: {verdicts}"
    page = site.render_html(notebook)  # what the rendered site shows: the figures embedded in the page
    assert page.count('src="data:image/png;base64,') >= len(declared(path, "FIGURES")), path.name
    for text in results_shown(notebook):
        assert not BARE_REPR.match(text), f"{path.name}: a cell shows {text!r} instead of a result"


def requirements_or_skip(path: Path, shared_data_dir: Path | None) -> dict[str, Path]:
    """Skip unless the tutorial's data files, optional modules and checkpoints are here; return the
    checkpoint directories by environment variable."""
    for relative in declared(path, "DATA"):
        try:
            locate(relative, shared_data_dir)
        except FileNotFoundError:
            pytest.skip(f"{path.name} needs {relative}: set MINITRANSFORMER_DATA")
    for module in declared(path, "MODULES"):
        pytest.importorskip(module, reason=f"{path.name} needs the optional package {module}")
    checkpoints = {}
    for variable, default in declared(path, "CHECKPOINTS", {}).items():
        checkpoints[variable] = Path(os.environ.get(variable) or default).expanduser()
        if not (checkpoints[variable] / "config.json").is_file():
            pytest.skip(f"{path.name} needs the checkpoint {checkpoints[variable]} (or set {variable})")
    return checkpoints


def printed(notebook) -> list[str]:
    """What the cells of a notebook printed (stdout)."""
    return [
        output["text"]
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream" and output.get("name") == "stdout"
    ]


def results_shown(notebook) -> list[str]:
    """The plain-text value of every cell result (the expression a cell ends with) of a notebook."""
    return [
        output["data"].get("text/plain", "")
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "execute_result" and "image/png" not in output["data"]
    ]


@pytest.mark.e2e
@pytest.mark.skipif(
    not (shutil.which("chromium") or shutil.which("chromium-browser")),
    reason="needs headless Chromium (Debian: apt-get install chromium)",
)
def test_site_command_builds_a_page_a_browser_shows_with_its_figures(tmp_path):
    """`python tutorials/build_site.py --smoke 01 --screenshot`, the documented command: the page is
    written, linked from index.html, and Chromium's picture of it is not blank (figures are wide colour
    areas; a page of text only is mostly white)."""
    shared_data_dir = find_shared_data()
    if shared_data_dir is not None:
        os.environ.setdefault("MINITRANSFORMER_DATA", str(shared_data_dir))
    assert site.main(["--smoke", "01", "--site", str(tmp_path), "--screenshot", "--timeout", "600"]) == 0
    page = tmp_path / "01_transformer_piece_by_piece.html"
    assert page.name in (tmp_path / "index.html").read_text(encoding="utf-8")
    html = page.read_text(encoding="utf-8")
    assert remote_loads(html) == [], "the page would load from another host: it must work offline"
    assert "<math" in html and "$$" not in html.split("<pre")[0], "the formulas are not rendered as MathML"
    from matplotlib.image import imread

    picture = imread(tmp_path / "01_transformer_piece_by_piece.png")[..., :3]  # (H, W, 3) in [0, 1]
    coloured = (picture.max(axis=-1) - picture.min(axis=-1)) > 0.2  # saturated pixels: plots, not text
    assert coloured.mean() > 0.01, f"the screenshot is almost colourless ({coloured.mean():.4f})"
