"""Every tutorial runs end to end in smoke mode and writes every figure it promises.

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
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minitransformer.data.paths import locate

REPO = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((REPO / "tutorials").glob("[0-9][0-9]_*.py"))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SMOKE_TIMEOUT_S = 900  # generous: smoke runs take seconds alone, minutes on a loaded 2-core machine


def declared(path: Path, name: str, default=()):
    """The literal assigned to `name` at the top level of a tutorial (`default` when absent)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    return default


def test_tutorials_are_found_and_declare_figures():
    assert [p.name for p in TUTORIALS][:1] == ["01_transformer_piece_by_piece.py"]
    for path in TUTORIALS:
        figures = declared(path, "FIGURES")
        assert figures and all(name.endswith(".png") for name in figures), f"{path.name}: no FIGURES list"


@pytest.mark.e2e
@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_runs_in_smoke_mode(path, tmp_path, shared_data_dir):
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
    out = tmp_path / "figures"
    env = {
        **os.environ,
        "MINITRANSFORMER_SMOKE": "1",
        "MINITRANSFORMER_TUTORIAL_OUT": str(out),
        "MPLBACKEND": "Agg",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        **{variable: str(directory) for variable, directory in checkpoints.items()},
    }
    if shared_data_dir is not None:
        env["MINITRANSFORMER_DATA"] = str(shared_data_dir)
    result = subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,  # nothing may depend on being run from the repository root
        env=env,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_S,
    )
    assert result.returncode == 0, f"{path.name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    for name in declared(path, "FIGURES"):
        figure = out / name
        assert figure.is_file(), f"{path.name} promised {name} but did not write it"
        assert figure.read_bytes().startswith(PNG_SIGNATURE) and figure.stat().st_size > 1000, name


@pytest.fixture
def shared_data_dir() -> Path | None:
    """$MINITRANSFORMER_DATA, else ../shared/data when it exists, else None (the default search)."""
    for candidate in (os.environ.get("MINITRANSFORMER_DATA"), REPO.parent / "shared" / "data"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None
