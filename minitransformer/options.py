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
        "--threads", type=int, help="CPU threads (unset: the cores available, shared between processes)"
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    return g


def positive_float(text: str) -> float:
    """An argparse type: a number > 0 (argparse prints the message in one line, exit 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return value


class EffectiveDefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """`--help` with each option's value after the preset/recipe/config layers, said once.

    An unset option (None) or an off switch shows no "(default: ...)": its help says what unset means.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def parse_layered(
    parser: argparse.ArgumentParser,
    argv: list[str],
    presets: dict[str, dict] | None = None,
    preset_option: str = "preset",
) -> argparse.Namespace:
    """Parse `argv` after layering a preset (chosen by `--preset`, or the option named by
    `preset_option`, e.g. adapt's `--recipe`) and a `--config` file under it.

    `--help` is answered after the layering, so that it shows the values the run would use.
    """
    first, _ = parser.parse_known_args([a for a in argv if a not in ("-h", "--help")])
    layered = dict((presets or {}).get(getattr(first, preset_option, None), {}))
    if getattr(first, "config", None):
        try:
            layered.update(load_config_file(first.config))
        except (FileNotFoundError, ValueError) as e:
            parser.error(str(e))  # one line and exit 2, like any other bad option
    known = {a.dest for a in parser._actions}
    unknown = sorted(set(layered) - known)
    if unknown:
        parser.error(f"unknown option(s) in --config: {unknown}")
    parser.set_defaults(**layered)
    return parser.parse_args(argv)


def options_to_json(args: argparse.Namespace) -> dict:
    """The parsed options as a JSON-ready dict (paths as strings), for `training_args.json`."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


class RunPlan(argparse.Namespace):
    """A run's every setting, decided before anything is built and read-only from then on.

    Ignite's examples pass one `config` to `training(local_rank, config)` and never rewrite it; this is
    ours. It holds the parsed options plus what planning decided (e.g. the splits), is what
    `training_args.json` records (`to_json`) and what `--resume` reads back. A later decision (the lr
    finder's lr) makes a new plan with `replace`, so no step changes what another step was given.
    """

    def __init__(self, **values):
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError(f"the run plan is read-only: make a new one with plan.replace({name}=...)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"the run plan is read-only: {name} cannot be removed")

    def replace(self, **changes) -> RunPlan:
        """A copy of this plan with `changes`."""
        return RunPlan(**{**vars(self), **changes})

    def to_json(self) -> dict:
        return options_to_json(self)
