"""`python -m minitransformer COMMAND`: one table of the secondary commands."""

from __future__ import annotations

import importlib

from minitransformer.__main__ import COMMANDS, main


def test_every_command_is_a_module_with_main_and_the_usage_lists_them(capsys):
    assert all(callable(importlib.import_module(module).main) for module, _ in COMMANDS.values())
    assert main([]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in COMMANDS) and "python -m pretrain" in out


def test_an_unknown_command_is_one_line_and_exit_2(capsys):
    assert main(["hf-export"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'hf-export'" in err and len(err.strip().splitlines()) == 1


def test_a_command_gets_the_rest_of_the_line_and_its_exit_code(tmp_path, capsys):
    assert main(["hf", "compare", str(tmp_path / "missing")]) == 2  # the hf command's own exit code
    assert "missing" in capsys.readouterr().err
    assert main(["predict", "--model", str(tmp_path / "missing"), "a question"]) == 1
    assert "missing" in capsys.readouterr().err
