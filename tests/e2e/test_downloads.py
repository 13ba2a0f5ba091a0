"""`python -m pretrain` in an empty home: the data it needs is downloaded (through bad mirrors) and used."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO
from test_download import make_wikitext_zip, needs_data, server  # noqa: F401 (server: a fixture)


@needs_data
def test_pretrain_cli_downloads_into_an_empty_home(server, tmp_path):  # noqa: F811
    """`python -m pretrain` with no data anywhere: falls through the bad mirrors, downloads, trains."""
    www, url = server
    digest = make_wikitext_zip(www / "wikitext-2-v1.zip")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "MINITRANSFORMER_DATA"}
    env.update(
        HOME=str(home),
        PYTHONPATH=str(REPO),
        OMP_NUM_THREADS="1",
        MINITRANSFORMER_WIKITEXT_URL=f"{url}missing/ {url}corrupt/ {url}strict/#sha256={digest}",
    )
    small = [
        "--max-steps", "2", "--vocab-size", "1000", "--embed-dim", "32", "--hidden-dim", "64",
        "--num-layers", "1", "--num-max-positions", "64", "--eval-batch-size", "64", "--threads", "1",
    ]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "pretrain", *small, "--output-dir", str(tmp_path / "run")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wikitext-2-v1.zip" in result.stderr and "B/s" in result.stderr  # the download's progress bar
    cache = home / ".cache" / "minitransformer" / "wikitext-2"
    assert sorted(p.name for p in cache.iterdir()) == [
        "wiki.test.tokens",
        "wiki.train.tokens",
        "wiki.valid.tokens",
    ]
    assert "trained on wikitext-2/train, evaluated on wikitext-2/valid" in result.stdout
    assert (tmp_path / "run" / "model.safetensors").is_file()
