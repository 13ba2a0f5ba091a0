"""Run the tutorials as a learner does, in a Jupyter kernel, and build an HTML site of the results.

    python tutorials/build_site.py                 # full mode, every tutorial → site/index.html
    python tutorials/build_site.py --smoke 01 06   # smoke mode, tutorials 1 and 6 only
    python tutorials/build_site.py --screenshot    # also photograph each page with headless Chromium
    python tutorials/build_site.py --edition instructor   # with the exercises' answers → site/instructor/

Each tutorial (a jupytext percent-format `.py` file) is converted to a notebook, executed with
nbclient in a fresh `python3` kernel, saved as `NN_name.ipynb` and rendered by nbconvert to
`NN_name.html` with its figures embedded; `index.html` links them and says how long each took.
`--screenshot` opens each page in headless Chromium (Debian: `apt-get install chromium`) and saves
what a reader sees as `NN_name.png`.

Two editions. The **student** edition (the default) leaves the exercises' answers out: the
"(Answer: `exercises.solution_…`)" pointers of the prose and the lines that swap in the reference
answer are removed, so each checker prints "exercise not attempted yet", as it does for a learner.
The **instructor** edition runs the reference answers through the checkers (every one prints
"exercise passed") and shows the source of each answer under its exercise.

The site works offline: the formulas (`$…$`, `$$…$$` in the markdown) are turned into MathML when the
page is built (the `latex2mathml` package of the dev extras; browsers draw MathML themselves), and the
scripts nbconvert's template would fetch from a CDN (MathJax, require.js, mermaid) are left out; a
page loads nothing from another host. `tests/e2e/test_tutorials.py` uses `execute` and `render_html` the
same way, in smoke mode.
"""

from __future__ import annotations

import argparse
import copy
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def execute(
    tutorial: Path, workdir: Path, env: dict[str, str], timeout_s: int, edition: str | None = None
) -> nbformat.NotebookNode:
    """`tutorial` converted to a notebook (as `edition` has it, or as written when None) and executed
    cell by cell in a new kernel started in `workdir`.

    Raises `nbclient.exceptions.CellExecutionError` (naming the cell and the traceback) if a cell fails.
    """
    notebook = jupytext.read(tutorial)
    if edition is not None:
        notebook = for_edition(notebook, edition)
    client = NotebookClient(
        notebook,
        timeout=timeout_s,  # per cell
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute(env=env)
    return notebook


EDITIONS = ("student", "instructor")
# "(Answer: `exercises.solution_x`…)" in the prose, and the cell lines that swap in the reference answer:
#     if exercises.use_solutions():  # …
#         my_function = exercises.solution_x
_ANSWER_POINTER = re.compile(r"\s*\(Answer:[^()]*\)")
_USE_SOLUTION = re.compile(r"^if exercises\.use_solutions\(\):.*\n\s+\w+ = ([\w.]+)\n", re.MULTILINE)


def for_edition(notebook: nbformat.NotebookNode, edition: str) -> nbformat.NotebookNode:
    """A copy of `notebook` for one edition of the site: "student" without the exercises' answers (their
    names in the prose, the lines that use them), "instructor" with a cell after each exercise's check
    that prints the reference answer's source."""
    if edition not in EDITIONS:
        raise ValueError(f"edition must be one of {', '.join(EDITIONS)}, got {edition!r}")
    notebook = copy.deepcopy(notebook)
    cells = []
    for cell in notebook.cells:
        cells.append(cell)
        if edition == "student" and cell.cell_type == "markdown":
            cell.source = _ANSWER_POINTER.sub("", cell.source)
        elif edition == "student" and cell.cell_type == "code":
            cell.source = _USE_SOLUTION.sub("", cell.source)
        elif cell.cell_type == "code" and (answer := _USE_SOLUTION.search(cell.source + "\n")):
            source = f"import inspect  # instructor edition: the reference answer\n\nprint(inspect.getsource({answer[1]}))"
            cells.append(nbformat.v4.new_code_cell(source))
    notebook.cells = cells
    return notebook


def figure_outputs(notebook: nbformat.NotebookNode) -> list[str]:
    """File names of the inline PNG figures of an executed notebook, in order."""
    names = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if "image/png" in output.get("data", {}):
                names.append(output.get("metadata", {}).get("image/png", {}).get("filename", "?"))
    return names


# Math in markdown: $$display$$ or $inline$ (not `$` inside code, not an escaped \\$).
_CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.DOTALL)
_MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$\w])\$(?!\s)([^$\n]+?)(?<!\s)\$(?![\w$])", re.DOTALL)
# What nbconvert's template would load from a CDN: MathJax, require.js, and mermaid (imported by a module
# script only when a page has a diagram; ours have none).
_REMOTE_SCRIPT = re.compile(r"<script[^>]*\bsrc=[\"']https?://[^>]*>\s*</script>\s*", re.IGNORECASE)
_MATHJAX_CONFIG = re.compile(r"<script type=\"text/x-mathjax-config\">.*?</script>\s*", re.DOTALL)
_MODULE_SCRIPT = re.compile(
    r"<script type=\"module\">(?:(?!</script>).)*?https?://.*?</script>\s*", re.DOTALL
)


def latex_to_mathml(markdown: str) -> str:
    """`markdown` with every `$…$` and `$$…$$` outside code replaced by MathML, which browsers render
    without a script or a network."""
    from latex2mathml.converter import convert

    def math(match: re.Match) -> str:
        display, inline = match.group(1), match.group(2)
        mathml = convert((display or inline).strip(), display="block" if display else "inline")
        return f"\n\n{mathml}\n\n" if display else mathml

    pieces = _CODE.split(markdown)  # odd pieces are code: left as they are
    return "".join(piece if i % 2 else _MATH.sub(math, piece) for i, piece in enumerate(pieces))


def render_html(notebook: nbformat.NotebookNode) -> str:
    """An executed notebook as one standalone HTML page that loads nothing from another host: figures
    embedded as data: URIs, formulas as MathML, no CDN script."""
    from nbconvert import HTMLExporter

    notebook = copy.deepcopy(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = latex_to_mathml(cell.source)
    notebook.metadata.pop("widgets", None)  # widget views need a CDN renderer; their text form shows
    body, _ = HTMLExporter().from_notebook_node(notebook)
    for pattern in (_REMOTE_SCRIPT, _MATHJAX_CONFIG, _MODULE_SCRIPT):
        body = pattern.sub("", body)
    return body


def screenshot(page: Path, png: Path, height: int = 3000) -> None:
    """Photograph `page` (its first `height` pixels, 1200 wide) as headless Chromium renders it."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise FileNotFoundError("no chromium on the PATH: install it (Debian: apt-get install chromium)")
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    command += [f"--window-size=1200,{height}", f"--screenshot={png}", page.resolve().as_uri()]
    subprocess.run(command, check=True, capture_output=True, timeout=120)


def _kernel_env(smoke: bool, out: Path, edition: str) -> dict[str, str]:
    """The environment of the kernels: smoke or full mode, figures under `out`, the repository importable,
    the reference answers run only in the instructor edition."""
    env = {**os.environ, "MINITRANSFORMER_TUTORIAL_OUT": str(out)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    for name, on in (
        ("MINITRANSFORMER_SMOKE", smoke),
        ("MINITRANSFORMER_SOLUTIONS", edition == "instructor"),
    ):
        if on:
            env[name] = "1"
        else:
            env.pop(name, None)
    return env


def build(
    tutorials: list[Path],
    site: Path,
    smoke: bool,
    timeout_s: int,
    photograph: bool = False,
    edition: str = "student",
) -> list[tuple[Path, float]]:
    """Execute `tutorials` as `edition` has them, write their notebooks and HTML pages into `site`;
    return (page, seconds) pairs."""
    site.mkdir(parents=True, exist_ok=True)
    pages = []
    for tutorial in tutorials:
        out = site / "figures" / tutorial.stem
        out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        notebook = execute(tutorial, site, _kernel_env(smoke, out, edition), timeout_s, edition)
        seconds = time.perf_counter() - start
        nbformat.write(notebook, site / f"{tutorial.stem}.ipynb")
        page = site / f"{tutorial.stem}.html"
        page.write_text(render_html(notebook), encoding="utf-8")
        pages.append((page, seconds))
        print(f"{page}  ({seconds:.0f} s, {len(figure_outputs(notebook))} figures)", flush=True)
        if photograph:
            screenshot(page, page.with_suffix(".png"))
    _write_index(site, pages, smoke, edition)
    return pages


def _write_index(site: Path, pages: list[tuple[Path, float]], smoke: bool, edition: str) -> None:
    """index.html linking every page of the site: those built now and those of earlier partial builds."""
    mode = "smoke mode (small models, seconds each)" if smoke else "full mode"
    record = site / "timings.json"
    timings = json.loads(record.read_text()) if record.is_file() else {}
    timings.update({page.name: {"seconds": round(seconds, 1), "mode": mode} for page, seconds in pages})
    record.write_text(json.dumps(timings, indent=1, sort_keys=True), encoding="utf-8")
    rows = "\n".join(
        f'<li><a href="{html.escape(name)}">{html.escape(name[:-5])}</a> — executed in {t["seconds"]:.0f} s, '
        f"{t['mode']}</li>"
        for name, t in sorted(timings.items())
    )
    (site / "index.html").write_text(
        f"<!doctype html>\n<meta charset='utf-8'>\n<title>minitransformer tutorials</title>\n"
        f"<h1>minitransformer tutorials</h1>\n<p>{_EDITION_NOTE[edition]} Executed in a Jupyter kernel.</p>\n"
        f"<ul>\n{rows}\n</ul>\n",
        encoding="utf-8",
    )


_EDITION_NOTE = {
    "student": "Student edition: the exercises are left for you to write.",
    "instructor": "Instructor edition: every exercise runs its reference answer, whose source is shown.",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="tutorial numbers to build (default: all), e.g. 01 06")
    parser.add_argument("--smoke", action="store_true", help="smoke mode: small models, seconds per tutorial")
    parser.add_argument(
        "--edition",
        choices=EDITIONS,
        default="student",
        help="student (no answers, the default) or instructor",
    )
    parser.add_argument(
        "--site",
        type=Path,
        help="output folder (default: site/, or site/instructor/ for the instructor edition)",
    )
    parser.add_argument(
        "--screenshot", action="store_true", help="photograph each page with headless Chromium"
    )
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell (default: 1800)")
    args = parser.parse_args(argv)
    tutorials = sorted(HERE.glob("[0-9][0-9]_*.py"))
    if args.only:
        tutorials = [t for t in tutorials if t.name[:2] in args.only]
        if not tutorials:
            print(
                f"error: no tutorial numbered {' '.join(args.only)}; use two digits, e.g. 01", file=sys.stderr
            )
            return 2
    if args.screenshot and not (shutil.which("chromium") or shutil.which("chromium-browser")):
        print(
            "error: --screenshot needs chromium on the PATH (Debian: apt-get install chromium)",
            file=sys.stderr,
        )
        return 2
    site = args.site or (REPO / "site" / "instructor" if args.edition == "instructor" else REPO / "site")
    build(tutorials, site.resolve(), args.smoke, args.timeout, args.screenshot, args.edition)
    print(f"open {site.resolve() / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
