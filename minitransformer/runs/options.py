"""Option files and layered defaults for the command-line programs (`pretrain`, `adapt`).

Precedence, lowest to highest: the parser's defaults < a preset < a `--config` file < explicit flags.
The option groups both programs share are declared once here (`add_run_options`, `add_data_options`,
`add_schedule_options`, `add_hardware_options`). These functions never read `sys.argv`: the programs
pass their argv in (only the commands of `python -m minitransformer`, e.g. `hf`, read their own).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TypeVar

from ..config import renamed
from ..training.engine import AMP_DTYPES
from .plan import RunPlan


def load_config_file(path: Path) -> dict:
    """Option values from a JSON or YAML file, keys spelled like the options (dashes or underscores).

    Refused, naming the file: a text that is not UTF-8, not JSON/YAML, nested too deeply, not a mapping,
    a key given twice (which value would win is not what the reader expects), and `config` or `resume`
    as keys (a file cannot name another file, nor turn a new run into a resume)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config {path}: file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Notepad) is not part of the text
    except UnicodeDecodeError as e:
        raise ValueError(f"--config {path}: not UTF-8 text (byte {e.start + 1}): save it as UTF-8") from None
    try:
        values = _parse_yaml(path, text) if path.suffix in (".yaml", ".yml") else _parse_json(path, text)
    except RecursionError:
        raise ValueError(f"--config {path}: nested too deeply to be a file of option values") from None
    if not isinstance(values, dict):
        raise ValueError(f"--config {path}: expected a mapping of option names to values")
    odd = [k for k in values if not isinstance(k, str)]
    if odd:
        raise ValueError(
            f"--config {path}: key {odd[0]!r} is not an option name (write option names as keys)"
        )
    values = {k.replace("-", "_"): v for k, v in values.items()}
    for key in ("config", "resume"):
        if key in values:
            raise ValueError(
                f"--config {path}: {key!r} cannot be set in a config file: pass --{key} on the command line"
            )
    return values


def _refuse_repeated(path: Path, pairs: list[tuple]) -> dict:
    """The mapping of `pairs`, or a ValueError naming the first key that appears twice."""
    seen: dict = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"--config {path}: {key!r} is given twice: keep one")
        seen[key] = value
    return seen


def _parse_json(path: Path, text: str):
    try:
        return json.loads(text, object_pairs_hook=lambda pairs: _refuse_repeated(path, pairs))
    except json.JSONDecodeError as e:
        raise ValueError(f"--config {path}: not valid JSON ({e})") from None


def _parse_yaml(path: Path, text: str):
    try:
        import yaml
    except ImportError:
        raise ValueError(f"--config {path}: YAML needs PyYAML (pip install pyyaml), or use JSON") from None

    class Loader(yaml.SafeLoader):
        """The safe loader, refusing a key given twice in a mapping."""

        def construct_mapping(self, node, deep=False):
            keys = [key.value for key, _ in node.value if isinstance(key, yaml.ScalarNode)]
            _refuse_repeated(path, [(key, None) for key in keys])
            return super().construct_mapping(node, deep)

    try:
        return yaml.load(text, Loader=Loader) or {}  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}" if where else ""
        raise ValueError(f"--config {path}: not valid YAML{at} ({getattr(e, 'problem', e)})") from None


@dataclass(frozen=True)
class Range:
    """The values a numeric option accepts, e.g. Range(0, 1, open_high=True) for [0, 1)."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def __contains__(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        above = self.low is None or (value > self.low if self.open_low else value >= self.low)
        below = self.high is None or (value < self.high if self.open_high else value <= self.high)
        return above and below

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.open_low else '>='} {self.low:g}"
        left, right = "(" if self.open_low else "[", ")" if self.open_high else "]"
        return f"in {left}{self.low:g}, {self.high:g}{right}"


AT_LEAST_1 = Range(1)
NON_NEGATIVE = Range(0)
POSITIVE = Range(0, open_low=True)
PROBABILITY = Range(0, 1, open_high=True)  # dropout-like: 0 allowed, 1 would drop everything
FRACTION = Range(0, 1, open_low=True, open_high=True)
THREADS = Range(1, 1024)  # past this OpenMP aborts the process (libgomp) instead of raising
INIT_STD = Range(0, 1, open_low=True)  # the std of initial weights: 0.02 is usual, >1 overflows the samples


def check_ranges(parser: argparse.ArgumentParser, args: argparse.Namespace, ranges: Mapping[str, Range]):
    """A usage error (exit 2) naming the first option whose value is outside its range."""
    for dest, allowed in ranges.items():
        value = getattr(args, dest, None)
        if value is not None and value not in allowed:
            expected = "must be finite" if not math.isfinite(value) else f"expected a value {allowed}"
            parser.error(f"{option_name(parser, dest)} {value}: {expected}")


def option_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The parser's options by dest, each an `Action` (its flags, type, nargs, choices: what
    `add_argument` was given), for checking --config values like flags and telling what argv set.
    argparse lists them only in a private attribute; besides `EffectiveDefaultsFormatter`, this is the
    one place this module reads argparse's private API."""
    return {action.dest: action for action in parser._actions if action.option_strings}


def option_name(parser: argparse.ArgumentParser, dest: str) -> str:
    """`--batch-size` for dest `batch_size`."""
    action = option_actions(parser).get(dest)
    return action.option_strings[0] if action else dest


TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")


def check_file_values(parser: argparse.ArgumentParser, values: dict, path: Path) -> dict:
    """A --config file's values through the checks a flag gets: a number for a numeric option (an
    integer for an integer option), true/false for a switch (the strings true/false/yes/no/on/off/1/0
    mean what they say; anything else is refused), a string for a string option, one of the choices
    for an option with choices, a list (or one string) for a list option; and at most one of the
    exclusive `LENGTH_OPTIONS`. Returns the values converted as the flag's would be."""
    checked = dict(values)

    def refuse(dest: str, value, expected: str, action: argparse.Action) -> None:
        flag = action.option_strings[0] if action.option_strings else dest
        parser.error(f"--config {path}: {dest}: {value!r} is not {expected} ({flag})")

    for action in option_actions(parser).values():
        if values.get(action.dest) is None:
            continue
        value = values[action.dest]
        switch = (
            action.nargs == 0
            and isinstance(action.const, bool)
            or isinstance(action, argparse.BooleanOptionalAction)
        )
        if switch:
            if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
                value = value.strip().lower() in TRUE_WORDS
            if not isinstance(value, bool):
                refuse(action.dest, value, "true or false", action)
        elif action.type in (int, float):
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or (action.type is int and not isinstance(value, int)):
                refuse(action.dest, value, "an integer" if action.type is int else "a number", action)
        elif action.nargs in ("*", "+"):
            value = [value] if isinstance(value, str) else value
            if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
                refuse(action.dest, value, "a list of values", action)
            if action.type is not None:
                value = [action.type(str(v)) for v in value]
        elif action.nargs is None:
            if not isinstance(value, str) and (action.type is None or isinstance(value, (dict, bool))):
                refuse(action.dest, value, "a string", action)
            if action.type is not None:
                if isinstance(value, list):  # e.g. seeds: [0, 1] for `--seeds 0,1`
                    value = ",".join(map(str, value))
                try:
                    value = action.type(str(value))
                except (TypeError, ValueError, argparse.ArgumentTypeError) as e:
                    parser.error(f"--config {path}: {action.dest}: {value!r}: {e}")
        if action.choices is not None:
            for item in value if isinstance(value, list) else [value]:
                if item not in action.choices:
                    choices = ", ".join(map(str, action.choices))
                    refuse(action.dest, item, f"one of {choices}", action)
        checked[action.dest] = value
    both = [dest for dest in LENGTH_OPTIONS if checked.get(dest) is not None]
    if len(both) > 1:
        parser.error(f"--config {path} sets {' and '.join(both)}: they exclude each other, keep one")
    return checked


def refuse_reading_the_output_dir(parser: argparse.ArgumentParser, args: argparse.Namespace, *dests: str):
    """A usage error if an option that a run reads from (`dests`, e.g. --init-from) names --output-dir:
    the new run would delete (with --overwrite) or replace the very files it reads. `hf:DIR` counts."""
    out = Path(args.output_dir).expanduser().resolve()
    for dest in dests:
        value = getattr(args, dest, None)
        if value is None or str(value) == "none":
            continue
        folder = Path(str(value).removeprefix("hf:")).expanduser()
        if folder.is_file():
            folder = folder.parent
        if folder.resolve() == out:
            parser.error(
                f"{option_name(parser, dest)} {value} is also --output-dir: the new run would replace the files "
                "it reads; choose another --output-dir"
            )


def add_run_options(
    parser: argparse.ArgumentParser,
    title: str,
    output_dir: str,
    resume_help: str,
    *,
    logger_choices: Sequence[str],
):
    """Where the run goes and how it is tracked: --config, --output-dir, --overwrite, --resume, --logger.
    Returns the group (titled `title`), for the program's own options of the same kind."""
    g = parser.add_argument_group(title)
    g.add_argument("--config", type=Path, help="JSON or YAML file of option values (keys as below, with _)")
    g.add_argument("--output-dir", type=Path, default=Path(output_dir), help="where the run is written")
    g.add_argument("--overwrite", action="store_true", help="replace an existing run in --output-dir")
    g.add_argument("--resume", type=Path, help=resume_help)
    g.add_argument(
        "--logger",
        choices=logger_choices,
        default="none",
        help="also log scalars, per-group learning rates and plots to TensorBoard in OUTPUT_DIR/tensorboard "
        '(needs the tb extra: pip install -e ".[tb]")',
    )
    return g


def add_data_options(parser: argparse.ArgumentParser, what: str):
    """Where data is read from: --data-dir and --download (of `what`, e.g. "TREC files"). Returns the group."""
    g = parser.add_argument_group("data")
    g.add_argument(
        "--data-dir",
        type=Path,
        help="the only data folder searched; it must exist, and downloads go there (without it: "
        "$MINITRANSFORMER_DATA, then ~/.cache/minitransformer, where downloads go)",
    )
    g.add_argument(
        "--download",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"fetch {what} that are not found (sources in the README); --no-download: use only the files found",
    )
    return g


LENGTH_OPTIONS = ("max_steps", "epochs")  # exclusive: one of them says how long a run is


def add_schedule_options(
    parser: argparse.ArgumentParser, title: str, *, lr_help: str, warmup_help: str, lr_find_help: str
):
    """How long and how fast: --lr-find, --lr, --warmup-steps, --max-norm, --dropout, and one of
    `LENGTH_OPTIONS` (`parse_layered` keeps the one set by the highest layer). The program sets the
    defaults (`parser.set_defaults`); returns the group, for the program's own optimisation options."""
    g = parser.add_argument_group(title)
    g.add_argument("--lr-find", action="store_true", help=lr_find_help)
    g.add_argument("--lr", type=float, help=lr_help)
    g.add_argument("--warmup-steps", type=int, help=warmup_help)
    g.add_argument("--max-norm", type=float, default=1.0, help="gradient clipping norm (0 = off)")
    g.add_argument("--dropout", type=float, default=0.1, help="dropout probability")
    length = g.add_mutually_exclusive_group()
    length.add_argument("--max-steps", type=int, help="optimizer steps to train")
    length.add_argument("--epochs", type=int, help="passes over the training data instead")
    return g


def add_hardware_options(parser: argparse.ArgumentParser):
    """The precision option and the device/threads/progress options both programs share; returns the
    hardware group. Options in that group (and --logger) are the ones a `--resume` may change
    (`RunPlan.CHANGEABLE_ON_RESUME`); the precision is the run's own: it decides the numbers as much as
    --lr does."""
    parser.add_argument_group("precision").add_argument(
        "--amp",
        choices=["auto", *sorted(AMP_DTYPES)],
        default="auto",
        help="autocast precision; auto: bf16 where the CPU/GPU computes it natively, else none (fp32); "
        "a --resume keeps the run's",
    )
    g = parser.add_argument_group("hardware")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    g.add_argument(
        "--threads", type=int, help="CPU threads (unset: the cores available, shared between processes)"
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    return g


def accepting_old_names(renames: Mapping[str, str], option: str) -> Callable[[str], str]:
    """An argparse `type=` that reads a renamed value (e.g. `--preset tutorial`) as its new name, with a
    one-line note; `choices=` then lists the new names only."""
    return lambda value: renamed(value, option, dict(renames))


class EffectiveDefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """`--help` with each option's value after the preset/recipe/config layers, said once.

    An unset option (None) or an off switch shows no "(default: ...)": its help says what unset means.
    `_get_help_string` is the hook argparse's own ArgumentDefaultsHelpFormatter adds its "(default: ...)"
    in; argparse offers no public one.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def parse_layered(
    parser: argparse.ArgumentParser,
    argv: list[str],
    plan_type: type[RunPlan],
    presets: dict[str, dict] | None = None,
    preset_option: str = "preset",
    ranges: Mapping[str, Range] | None = None,
) -> argparse.Namespace:
    """Parse `argv` after layering a preset (chosen by `--preset`, or the option named by
    `preset_option`, e.g. adapt's `--recipe`) and a `--config` file under it; then check every
    numeric option against `ranges` (a usage error names the value and the range). `plan_type` (the
    program's `RunPlan`) says which options a `--resume` may change.

    `--help` is answered after the layering, so that it shows the values the run would use.
    Of the exclusive `LENGTH_OPTIONS` (--epochs / --max-steps), the one set by the highest layer is kept
    and the other cleared: a flag beats the --config file, which beats the preset, which beats the
    parser's default.
    """
    flags = given_on_command_line(parser, argv)
    from_file: dict = {}
    if flags.get("config"):
        try:
            from_file = load_config_file(flags["config"])
        except (FileNotFoundError, ValueError) as e:
            parser.error(str(e))  # one line and exit 2, like any other bad option
        unknown = sorted(set(from_file) - set(option_actions(parser)))
        if unknown:
            parser.error(f"unknown option(s) in --config: {unknown}")
        from_file = check_file_values(parser, from_file, flags["config"])
    # the preset (or recipe) a flag names, else the one the file names: the file's values go on top of it
    chosen = flags.get(preset_option, from_file.get(preset_option, parser.get_default(preset_option)))
    preset_values = dict((presets or {}).get(chosen, {}))
    layered = {**preset_values, **from_file}
    parser.set_defaults(**layered)
    args = parser.parse_args(argv)
    for layer in (flags, from_file, preset_values):
        chosen = [dest for dest in LENGTH_OPTIONS if layer.get(dest) is not None]
        if chosen:
            for other in LENGTH_OPTIONS:
                if other != chosen[0]:
                    setattr(args, other, None)
            break
    check_ranges(parser, args, ranges or {})
    if getattr(args, "resume", None):
        refuse_resume_changes(parser, args, {**from_file, **flags}, plan_type)
    return args


def given_on_command_line(parser: argparse.ArgumentParser, argv: list[str]) -> dict:
    """The options `argv` itself sets (whatever a preset or file says), as {dest: value}.

    argparse fills in an option's default only where the namespace it parses into lacks the attribute:
    with every option starting as `unset`, the options still `unset` afterwards are the ones not given."""
    unset = object()
    start = argparse.Namespace(**dict.fromkeys(option_actions(parser), unset))
    given, _ = parser.parse_known_args([a for a in argv if a not in ("-h", "--help")], start)
    return {k: v for k, v in vars(given).items() if v is not unset}


def refuse_resume_changes(
    parser: argparse.ArgumentParser, args: argparse.Namespace, given: dict, plan_type: type[RunPlan]
) -> None:
    """A usage error naming each option given with `--resume` (on the command line or in a --config file)
    whose value differs from the resumed run's (its training_args.json): a resume continues the run as it
    was started, so such an option would be silently ignored. The hardware options may change; the
    precision (--amp) may not: a model trained partly in bf16 and partly in fp32 is neither run's."""
    saved_file = Path(args.resume) / "training_args.json"
    try:
        saved = json.loads(saved_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # `resumed_plan` says what is wrong with the folder
    if not isinstance(saved, dict):
        return
    free = {*plan_type.CHANGEABLE_ON_RESUME, "resume", "config"}
    as_json = lambda value: json.loads(json.dumps(value, default=str))  # noqa: E731
    changed = []
    for dest, value in given.items():
        if dest in free or (dest == "amp" and value == "auto"):  # auto: the run's own resolved precision
            continue
        if dest == "output_dir":
            if Path(value).expanduser().resolve() != Path(args.resume).expanduser().resolve():
                changed.append(f"{option_name(parser, dest)} {value}")
        elif dest in saved and as_json(value) != as_json(saved[dest]):
            changed.append(f"{option_name(parser, dest)} {value} (the run has {saved[dest]})")
    if changed:
        free_flags = ", ".join(option_name(parser, dest) for dest in plan_type.CHANGEABLE_ON_RESUME)
        parser.error(
            f"--resume {args.resume} continues the run with its own options; these differ: {'; '.join(changed)}. "
            f"Drop them (only {free_flags} may change), or start a new run in another --output-dir"
        )


Plan = TypeVar("Plan", bound=RunPlan)


def resumed_plan(plan_type: type[Plan], parser: argparse.ArgumentParser, args: argparse.Namespace) -> Plan:
    """The plan of the run in `args.resume` (its training_args.json) with this command's hardware
    options (`CHANGEABLE_ON_RESUME`); an option added since that run was started takes its default,
    and a value of an option removed since is dropped."""
    folder = Path(args.resume)
    saved = folder / "training_args.json"
    if not saved.is_file():
        raise FileNotFoundError(
            f"--resume {folder}: no training_args.json there; is it a run directory of {parser.prog}?"
        )
    try:
        values = json.loads(saved.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(
            f"--resume {folder}: {saved} is not valid JSON ({e}); the run cannot be resumed"
        ) from None
    if not isinstance(values, dict):
        raise ValueError(f"--resume {folder}: {saved} is damaged (not a mapping of options); start a new run")
    own = set(plan_type.option_names()) - {*plan_type.CHANGEABLE_ON_RESUME, "config", "resume"}
    lacking = sorted(own - set(values))
    if len(lacking) > len(own) / 3:  # a run of the other program (or a file that is not ours)
        raise ValueError(
            f"--resume {folder}: not a run of {parser.prog} (its training_args.json lacks {len(lacking)} of its "
            f"options, e.g. {', '.join(lacking[:3])}); resume it with the program that started it"
        )
    if all(values.get(d) is None for d in LENGTH_OPTIONS) and all(d in values for d in LENGTH_OPTIONS):
        raise ValueError(
            f"--resume {folder}: {saved} sets none of {' / '.join(LENGTH_OPTIONS)}: the file is damaged; "
            "start a new run"
        )
    paths = plan_type.path_fields()
    values = {k: Path(v) if k in paths and v is not None else v for k, v in values.items()}
    here = {key: getattr(args, key) for key in plan_type.CHANGEABLE_ON_RESUME}
    merged = {**vars(parser.parse_args([])), **values, **here, "resume": folder, "output_dir": folder}
    return plan_type(**{f.name: merged[f.name] for f in fields(plan_type) if f.name in merged})
