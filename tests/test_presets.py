"""The presets table: one source for every entry point, and `--help` showing what a run will use."""

from __future__ import annotations

import ast
import re

import pytest
from conftest import REPO

from minitransformer.presets import FINETUNE_RECIPES, PRETRAIN_PRESETS, config_from_options


def help_lines(parse_args, argv: list[str], capsys, monkeypatch) -> dict[str, str]:
    """`--help` as {option: its whole help text}, one line per option (a very wide terminal)."""
    monkeypatch.setenv("COLUMNS", "1000")
    with pytest.raises(SystemExit) as exit_info:
        parse_args([*argv, "--help"])
    assert exit_info.value.code == 0
    options, current = {}, None
    for line in capsys.readouterr().out.splitlines():
        match = re.match(r"\s+(--[\w-]+)", line)
        if match:  # an option; its help may start on the next line
            current = match.group(1)
            options[current] = line
        elif current and line.startswith(" " * 8):
            options[current] += " " + line.strip()
        else:
            current = None
    return options


@pytest.mark.parametrize("preset", sorted(PRETRAIN_PRESETS))
def test_pretrain_help_shows_the_presets_values(preset, capsys, monkeypatch):
    from pretrain.cli import parse_args

    shown = help_lines(parse_args, ["--preset", preset], capsys, monkeypatch)
    for key, value in PRETRAIN_PRESETS[preset].items():
        line = shown["--" + key.replace("_", "-")]
        if value is None or value is False:  # unset, or a switch turned off: the help says no default
            assert "(default:" not in line, line
        else:
            assert f"(default: {value})" in line, line
    assert len(shown) > 40


def test_help_says_each_default_once_and_never_none(capsys, monkeypatch):
    from adapt.cli import parse_args as adapt_args
    from pretrain.cli import parse_args as pretrain_args

    for parse_args in (pretrain_args, adapt_args):
        for line in help_lines(parse_args, [], capsys, monkeypatch).values():
            assert line.count("default") <= 1, line
            assert "(default: None)" not in line and "(default: False)" not in line, line
    tiny = help_lines(pretrain_args, [], capsys, monkeypatch)
    assert "(default: 90)" in tiny["--warmup-steps"]  # not the parser's own value
    assert "(default: 10)" in tiny["--max-eval-batches"]
    assert "(default: pre)" in tiny["--norm-placement"]
    recipe = help_lines(adapt_args, ["--recipe", "cpu-trec6"], capsys, monkeypatch)
    assert "(default: 0.0005)" in recipe["--lr"] and "(default: 0.7)" in recipe["--llrd"]


def test_help_shows_a_config_files_values_over_the_presets(tmp_path, capsys, monkeypatch):
    from pretrain.cli import parse_args

    config = tmp_path / "c.json"
    config.write_text('{"warmup_steps": 7}')
    shown = help_lines(parse_args, ["--preset", "hands-on", "--config", str(config)], capsys, monkeypatch)
    assert "(default: 7)" in shown["--warmup-steps"] and "(default: 410)" in shown["--embed-dim"]


def test_every_preset_sets_every_option_without_a_parser_default():
    from pretrain.cli import parse_args

    for name in PRETRAIN_PRESETS:
        args = parse_args(["--preset", name])
        for key in ("embed_dim", "num_layers", "norm_placement", "batch_size", "lr", "warmup_steps"):
            assert getattr(args, key) is not None, (name, key)
        assert (args.max_steps is None) != (args.epochs is None), name


def test_config_from_options_builds_the_presets_model():
    config = config_from_options(PRETRAIN_PRESETS["tiny"], vocab_size=123)
    assert (config.embed_dim, config.num_layers, config.vocab_size) == (192, 4, 123)
    assert config.norm_placement == "pre" and config.final_layer_norm  # GPT-2's final norm with pre-norm
    hands_on = config_from_options(PRETRAIN_PRESETS["hands-on"], vocab_size=28996, mlm=True)
    assert hands_on.mlm and not hands_on.final_layer_norm and hands_on.num_heads == 10
    explicit = config_from_options({**PRETRAIN_PRESETS["tiny"], "final_layer_norm": False}, 10)
    assert not explicit.final_layer_norm


def test_adapt_and_benchmarks_read_the_library_not_pretrain():
    for path in [*(REPO / "adapt").glob("*.py"), *(REPO / "benchmarks").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            assert not any(n == "pretrain" or n.startswith("pretrain.") for n in names), path


def test_recipes_are_fine_tuning_options():
    from adapt.cli import build_parser

    known = {action.dest for action in build_parser()._actions}
    for recipe in FINETUNE_RECIPES.values():
        assert set(recipe) <= known


def test_a_bad_config_file_is_a_one_line_usage_error(tmp_path, capsys):
    from pretrain.cli import parse_args

    broken = tmp_path / "c.json"
    broken.write_text("{not json")
    for path in (tmp_path / "missing.json", broken):
        with pytest.raises(SystemExit) as exit_info:
            parse_args(["--config", str(path)])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert f"--config {path}" in err and "Traceback" not in err
