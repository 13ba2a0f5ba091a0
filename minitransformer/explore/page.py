"""The explorer page: the data written into `page.html` (HTML, CSS and JavaScript in one file)."""

from __future__ import annotations

import html
import json
import os
from importlib.resources import files
from pathlib import Path

from ..runs.io import write_text_atomic

PLACEHOLDER = "__EXPLORER_DATA__"


def render_page(data: dict) -> str:
    """The self-contained page for `data` (from `explorer_data`): one HTML string, nothing to fetch."""
    template = files(__package__).joinpath("page.html").read_text(encoding="utf-8")
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    payload = payload.replace("</", "<\\/")  # the JSON sits inside <script>: no closing tag may end it early
    return template.replace(PLACEHOLDER, payload)


class Explorer:
    """An explorer page held in memory: shows itself inline in Jupyter, `save(path)` writes the file."""

    def __init__(self, data: dict):
        self.data = data
        self.html = render_page(data)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the page (atomically) and return its path."""
        path = Path(path)
        write_text_atomic(path, self.html)
        return path

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
