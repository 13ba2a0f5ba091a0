"""Option files and layered defaults for the command-line programs (`pretrain`, `adapt`).

Precedence, lowest to highest: the parser's defaults < a preset < a `--config` file < explicit flags.
The library never reads `sys.argv` itself: the programs pass their argv in.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def load_config_file(path: Path) -> dict:
    """Option values from a JSON or YAML file, keys spelled like the options (dashes or underscores)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config {path}: file not found")
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ValueError(
                f"--config {path}: YAML needs PyYAML (pip install pyyaml), or use JSON"
            ) from None
        values = yaml.safe_load(text) or {}
    else:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"--config {path}: not valid JSON ({e})") from None
    if not isinstance(values, dict):
        raise ValueError(f"--config {path}: expected a mapping of option names to values")
    return {k.replace("-", "_"): v for k, v in values.items()}


def add_hardware_options(parser: argparse.ArgumentParser):
    """The device/precision/threads/progress options both programs share; returns the group."""
    g = parser.add_argument_group("hardware")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    g.add_argument("--amp", choices=["bf16", "fp16", "none"], default="none", help="autocast precision")
    g.add_argument(
        "--threads", type=int, help="CPU threads (default: the cores available, shared between processes)"
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    return g


def parse_layered(
    parser: argparse.ArgumentParser,
    argv: list[str],
    presets: dict[str, dict] | None = None,
    preset_option: str = "preset",
) -> argparse.Namespace:
    """Parse `argv` after layering a preset (chosen by `--preset`, or the option named by
    `preset_option`, e.g. adapt's `--recipe`) and a `--config` file under it."""
    first, _ = parser.parse_known_args(argv)
    layered = dict((presets or {}).get(getattr(first, preset_option, None), {}))
    if getattr(first, "config", None):
        layered.update(load_config_file(first.config))
    known = {a.dest for a in parser._actions}
    unknown = sorted(set(layered) - known)
    if unknown:
        parser.error(f"unknown option(s) in --config: {unknown}")
    parser.set_defaults(**layered)
    return parser.parse_args(argv)


def options_to_json(args: argparse.Namespace) -> dict:
    """The parsed options as a JSON-ready dict (paths as strings), for `training_args.json`."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
