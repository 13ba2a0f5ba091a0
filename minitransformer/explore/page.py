"""The explorer page: the data written into `page.html` (HTML, CSS and JavaScript in one file)."""

from __future__ import annotations

import html
import json
import os
from importlib.resources import files
from pathlib import Path

from ..runs.io import write_text_atomic
from ..runs.outputs import check_output_file

PLACEHOLDER = "__EXPLORER_DATA__"
TITLE = b"<title>minitransformer explorer</title>"  # in page.html's <head>


def render_page(data: dict) -> str:
    """The self-contained page for `data` (from `explorer_data`): one HTML string, nothing to fetch."""
    template = files(__package__).joinpath("page.html").read_text(encoding="utf-8")
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    # The JSON sits inside <script>: no `</script>` may end it early and no `<!--` may make the parser
    # swallow the page's own script, so no `<` at all (it occurs only inside strings: \u003c there)
    payload = payload.replace("<", "\\u003c")
    return template.replace(PLACEHOLDER, payload, 1)


def is_explorer_page(path: Path) -> bool:
    """Whether file `path` is a page this module wrote (its <title>, near the start), so it may be replaced."""
    with open(path, "rb") as f:
        return TITLE in f.read(4096)


class Explorer:
    """An explorer page held in memory: shows itself inline in Jupyter, `save(path)` writes the file."""

    def __init__(self, data: dict):
        self.data = data
        self.html = render_page(data)

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the page (atomically) to `path`, a `.html` file, and return the path. An existing file
        that is not an explorer page is replaced only with `overwrite` (`check_output_file`)."""
        path = Path(path)
        self.check_path(path, overwrite)
        write_text_atomic(path, self.html)
        return path

    @staticmethod
    def check_path(path: Path, overwrite: bool) -> None:
        """Refuse a `path` that `save` must not write: not `.html`, a folder, a device, FIFO or link, or
        a file that is not an explorer page (unless `overwrite`)."""
        check_output_file(path, overwrite, "the page", suffix=".html", made_here=is_explorer_page)

    def _repr_html_(self) -> str:
        # Jupyter does not run scripts inside output HTML reliably; an iframe's srcdoc is a page of its
        # own, so the page's script runs there exactly as it does from a file.
        return (
            f'<iframe srcdoc="{html.escape(self.html, quote=True)}" '
            'style="width: 100%; height: 900px; border: 1px solid #ddd;" '
            'title="minitransformer explorer"></iframe>'
        )

    def __repr__(self) -> str:
        texts = len(self.data["texts"])
        return f"Explorer({self.data['model']['name']!r}, {texts} text(s), {len(self.html) / 1e6:.2f} MB of HTML)"
