"""The README's main job as a new user meets it: a fresh clone, a fresh virtualenv, no data anywhere.

The two commands are read from the README ("Main job"), so the test and the README cannot drift apart;
size options are appended to make them quick. The data comes from a loopback server imitating the
public mirrors (a 404 one, a corrupt one, one refusing Python's default User-Agent), through
MINITRANSFORMER_WIKITEXT_URL / MINITRANSFORMER_TREC_URL. Installing torch and the dependencies into a
fresh virtualenv takes about a minute, so the test runs only with MINITRANSFORMER_E2E=1 (set by
.ci/run). It clones the repository's committed HEAD.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import REPO
from test_download import SHARED, make_wikitext_zip, needs_data, server  # noqa: F401 (server: a fixture)

QUICK = {
    "pretrain": "--max-steps 2 --vocab-size 1000 --embed-dim 32 --hidden-dim 64 --num-layers 1 "
    "--num-max-positions 64 --eval-batch-size 64 --threads 1 --no-progress",
    "adapt": "--train-file train_1000.label --max-steps 2 --threads 1 --no-progress",
}

pytestmark = [
    pytest.mark.skipif(
        not os.environ.get("MINITRANSFORMER_E2E"), reason="set MINITRANSFORMER_E2E=1 (CI does)"
    ),
    pytest.mark.skipif(shutil.which("git") is None, reason="needs git"),
    needs_data,
]


def readme_main_job() -> list[str]:
    """The indented command lines between "Main job" and "Tests" in the README."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("Main job") : text.index("\nTests")]
    return re.findall(r"^    (\S.*)$", section, flags=re.MULTILINE)


def test_readme_main_job_in_a_fresh_clone_and_venv(server, tmp_path):  # noqa: F811
    www, url = server
    digest = make_wikitext_zip(www / "wikitext-2-v1.zip")
    for name in ("train_1000.label", "TREC_10.label"):
        (www / name).write_bytes((SHARED / "trec" / name).read_bytes())
    commands = readme_main_job()
    assert commands[0] == "pip install torch==2.13.0 -e . && python -m pretrain", commands
    assert commands[1].startswith("python -m adapt"), commands

    clone, venv, home = tmp_path / "clone", tmp_path / "venv", tmp_path / "home"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    home.mkdir()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MINITRANSFORMER_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(
        HOME=str(home),
        PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}",
        VIRTUAL_ENV=str(venv),
        OMP_NUM_THREADS="1",
        MINITRANSFORMER_WIKITEXT_URL=f"{url}missing/ {url}corrupt/ {url}strict/#sha256={digest}",
        MINITRANSFORMER_TREC_URL=f"{url}missing/ {url}strict/",
    )
    for command, tool in zip(commands, ("pretrain", "adapt")):
        result = subprocess.run(
            ["bash", "-c", f"{command} {QUICK[tool]}"], cwd=clone, env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"

    version = subprocess.run(
        ["python", "-c", "import torch; print(torch.__version__)"], env=env, capture_output=True, text=True
    )
    assert version.stdout.startswith("2.13.0"), version.stdout  # pip kept the pinned torch
    cache = home / ".cache" / "minitransformer"
    assert (cache / "wikitext-2" / "wiki.train.tokens").is_file()
    assert (cache / "trec" / "TREC_10.label").is_file()
    assert (clone / "runs" / "pretrain" / "model.safetensors").is_file()
    assert (clone / "runs" / "adapt" / "results.json").is_file()
