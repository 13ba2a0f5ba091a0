"""`runs.options`: the run plan (decided once, read-only, what training_args.json records) and the
option checks (ranges at parse time, --config values like flags)."""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from pathlib import Path

import pytest

from adapt import cli as adapt_cli
from adapt.cli import AdaptPlan
from adapt.run import main as adapt_main
from minitransformer.presets import PRETRAIN_PRESETS
from minitransformer.runs.options import option_actions
from minitransformer.training.engine import cpu_has_bf16
from pretrain import cli as pretrain_cli
from pretrain.cli import PretrainPlan, parse_args
from pretrain.run import main as pretrain_main
from pretrain.run import plan_run


def test_a_plan_is_read_only_and_replace_makes_a_new_one():
    plan = PretrainPlan(**vars(parse_args(["--lr", "1e-3", "--output-dir", "runs/x"])))
    with pytest.raises(AttributeError, match="cannot assign"):
        plan.lr = 2e-3
    with pytest.raises(AttributeError, match="cannot delete"):
        del plan.lr
    changed = dataclasses.replace(plan, lr=2e-3)
    assert (plan.lr, changed.lr, changed.output_dir) == (1e-3, 2e-3, Path("runs/x"))
    saved = changed.to_json()
    assert (saved["lr"], saved["output_dir"], saved["splits"]) == (2e-3, "runs/x", None)  # paths as strings


@pytest.mark.parametrize(
    "plan_type, build_parser",
    [(PretrainPlan, pretrain_cli.build_parser), (AdaptPlan, adapt_cli.build_parser)],
)
def test_a_plan_has_one_typed_field_per_option(plan_type, build_parser):
    """The plan's fields are the parser's options (each named as its dest), so neither can gain an option
    the other lacks, typed as the option parses (a switch as bool, `type=int` as int); the options a
    --resume may change are the --help's hardware section and --logger."""
    parser = build_parser()
    assert sorted(plan_type.option_names()) == sorted(vars(parser.parse_args([])))
    hints = typing.get_type_hints(plan_type)
    for dest, action in option_actions(parser).items():
        parsed = bool if action.nargs == 0 and dest != "help" else action.type
        if parsed in (bool, int, float, Path):
            assert parsed in (hints[dest], *typing.get_args(hints[dest])), dest
    hardware = parser.format_help().split("\nhardware:\n")[1].split("\n\n")[0]
    flags = re.findall(r"^  (--[\w-]+)", hardware, flags=re.MULTILINE)
    assert [*flags, "--logger"] == [f"--{dest.replace('_', '-')}" for dest in plan_type.CHANGEABLE_ON_RESUME]


def test_a_resumed_plan_reads_paths_back_as_paths_and_drops_removed_options(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    saved = {**PretrainPlan(**vars(parse_args(["--init-from", "model"]))).to_json(), "an_old_option": 1}
    (run / "training_args.json").write_text(json.dumps(saved))
    plan = plan_run(parse_args(["--resume", str(run)]))
    assert plan.init_from == Path("model") and plan.cache_dir is None and plan.dataset == "wikitext-2"
    assert not hasattr(plan, "an_old_option")


def test_planning_decides_splits_and_objective_without_touching_the_options(corpus, tmp_path):
    args = parse_args(["--dataset", str(corpus.root), "--output-dir", str(tmp_path / "run")])
    options = dict(vars(args))
    plan = plan_run(args)
    assert vars(args) == options  # the parsed options are never rewritten
    assert (plan.train_split, plan.valid_split, plan.objective) == ("valid", "test", "clm")  # no train split
    assert plan.splits == f"trained on {corpus.root}/valid, evaluated on {corpus.root}/test"
    assert (options["amp"], plan.amp) == (
        "auto",
        "bf16" if cpu_has_bf16() else "none",
    )  # --amp auto, resolved
    decided = {
        "train_split",
        "valid_split",
        "objective",
        "amp",
    }  # unset or "auto" in the options: planning chooses
    assert all(getattr(plan, k) == v for k, v in options.items() if k not in decided)
    json.dumps(plan.to_json())  # what training_args.json will hold


def test_resume_plans_from_the_runs_own_file_with_this_commands_hardware(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    defaults = {k: str(v) if isinstance(v, Path) else v for k, v in vars(parse_args([])).items()}
    saved = {
        **defaults,
        "lr": 0.0123,
        "threads": 8,
        "device": "cuda",
        "splits": "trained on x/valid",
        "output_dir": "old",
    }
    (run / "training_args.json").write_text(json.dumps(saved))
    plan = plan_run(parse_args(["--resume", str(run), "--threads", "1", "--lr", "0.0123"]))
    assert (plan.lr, plan.splits) == (0.0123, "trained on x/valid")  # the run's own values
    assert (plan.threads, plan.device) == (1, "auto")  # hardware options come from this command
    assert plan.output_dir == plan.resume == run
    with pytest.raises(FileNotFoundError, match="no training_args.json"):
        plan_run(parse_args(["--resume", str(tmp_path)]))


PRETRAIN_CASES = [
    (["--max-steps", "-2"], "--max-steps -2: expected a value >= 1"),
    (["--max-steps", "0"], "--max-steps 0: expected a value >= 1"),
    (["--epochs", "0"], "--epochs 0: expected a value >= 1"),
    (["--batch-size", "0"], "--batch-size 0: expected a value >= 1"),
    (["--accumulation-steps", "0"], "--accumulation-steps 0: expected a value >= 1"),
    (["--accumulation-steps", "9", "--batch-size", "8"], "--accumulation-steps 9: expected at most"),
    (["--lr", "0"], "--lr 0.0: expected a value > 0"),
    (["--warmup-steps", "-1"], "--warmup-steps -1: expected a value >= 0"),
    (["--dropout", "1"], "--dropout 1.0: expected a value in [0, 1)"),
    (["--keep-checkpoints", "0"], "--keep-checkpoints 0: expected a value >= 1"),
    # issue 27 item 22: these crashed (a step-0 sample overflowed; OpenMP aborted, leaving run files)
    (["--initializer-range", "1e30"], "--initializer-range 1e+30: expected a value in (0, 1]"),
    (["--threads", "1000000000"], "--threads 1000000000: expected a value in [1, 1024]"),
]


ADAPT_CASES = [
    (["--max-steps", "0"], "--max-steps 0: expected a value >= 1"),
    (["--max-steps", "-3"], "--max-steps -3: expected a value >= 1"),
    (["--epochs", "0"], "--epochs 0: expected a value >= 1"),
    (["--epochs", "-1"], "--epochs -1: expected a value >= 1"),
    (["--lr", "0"], "--lr 0.0: expected a value > 0"),
    (["--warmup-steps", "-5"], "--warmup-steps -5: expected a value >= 0"),
    (["--max-len", "1"], "--max-len 1: expected a value >= 2"),
    (["--valid-fraction", "1"], "--valid-fraction 1.0: expected a value in (0, 1)"),
    (["--threads", "100000"], "--threads 100000: expected a value in [1, 1024]"),
]


CONFIG_CASES = [
    ("list.yaml", "- 1\n- 2\n", "expected a mapping of option names to values"),
    ("broken.yaml", "a: [1\n", "not valid YAML at line 2"),
    ("float.yaml", "batch_size: 2.5\n", "batch_size: 2.5 is not an integer (--batch-size)"),
    ("word.json", '{"lr": "fast"}', "lr: 'fast' is not a number (--lr)"),
    ("both.json", '{"max_steps": 5, "epochs": 2}', "they exclude each other, keep one"),
    # issue 27 items 2, 7, 20: a config value goes through the flag's checks
    ("overwrite.json", '{"overwrite": "maybe"}', "overwrite: 'maybe' is not true or false (--overwrite)"),
    ("download.json", '{"download": 3}', "download: 3 is not true or false (--download)"),
    ("device.json", '{"device": 5}', "device: 5 is not a string (--device)"),
    ("logger.json", '{"logger": "Tensorboard"}', "logger: 'Tensorboard' is not one of"),
    ("key.yaml", "1: 2\n", "key 1 is not an option name"),
    ("none.yaml", "~: 2\n", "key None is not an option name"),
]


def usage_error(main, argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize("argv, message", PRETRAIN_CASES)
def test_pretrain_numeric_options_are_checked_at_parse_time(argv, message, capsys):
    assert message in usage_error(pretrain_main, argv, capsys)


@pytest.mark.parametrize("argv, message", ADAPT_CASES)
def test_adapt_numeric_options_are_checked_at_parse_time(argv, message, capsys):
    assert message in usage_error(adapt_main, ["--pretrained", "none", *argv], capsys)


@pytest.mark.parametrize("top", ["0", "-2"])
def test_predict_top_is_checked(top, tmp_path, capsys):
    from adapt.predict import main as predict_main

    assert f"--top {top}: expected a value >= 1" in usage_error(
        predict_main, ["--model", str(tmp_path), "--top", top, "text"], capsys
    )


@pytest.mark.parametrize("name, text, message", CONFIG_CASES)
def test_config_file_values_are_checked_like_flags(name, text, message, tmp_path, capsys):
    path = tmp_path / name
    path.write_text(text)
    assert message in usage_error(pretrain_main, ["--config", str(path)], capsys)
    assert message in usage_error(adapt_main, ["--pretrained", "none", "--config", str(path)], capsys)


def test_a_missing_config_file_is_a_usage_error(tmp_path, capsys):
    missing = tmp_path / "missing.yaml"
    assert f"--config {missing}: file not found" in usage_error(
        pretrain_main, ["--config", str(missing)], capsys
    )
    assert "file not found" in usage_error(
        adapt_main, ["--pretrained", "none", "--config", str(missing)], capsys
    )


def test_epochs_or_max_steps_the_highest_layer_wins(tmp_path):
    """One rule for both programs: of --epochs / --max-steps, the one set by the highest layer (flag >
    --config file > preset or recipe > default) is kept and the other cleared."""
    from adapt.cli import parse_args as adapt_args
    from pretrain.cli import parse_args as pretrain_args_of

    steps, epochs = tmp_path / "steps.json", tmp_path / "epochs.json"
    steps.write_text(json.dumps({"max_steps": 7}))
    epochs.write_text(json.dumps({"epochs": 2}))
    lengths = lambda a: (a.max_steps, a.epochs)  # noqa: E731
    assert lengths(pretrain_args_of([])) == (PRETRAIN_PRESETS["tiny"]["max_steps"], None)  # the preset's
    assert lengths(pretrain_args_of(["--epochs", "2"])) == (None, 2)  # a flag beats the preset
    assert lengths(pretrain_args_of(["--preset", "hands-on"])) == (None, 50)
    assert lengths(pretrain_args_of(["--preset", "hands-on", "--config", str(steps)])) == (7, None)
    assert lengths(pretrain_args_of(["--config", str(epochs), "--max-steps", "5"])) == (5, None)
    pretrained = ["--pretrained", "none"]
    assert lengths(adapt_args(pretrained)) == (None, 3)  # the hands-on's 3 epochs
    assert lengths(adapt_args([*pretrained, "--max-steps", "5"])) == (5, None)
    assert lengths(adapt_args([*pretrained, "--recipe", "cpu-trec6", "--config", str(steps)])) == (7, None)
    assert lengths(adapt_args([*pretrained, "--config", str(steps), "--epochs", "4"])) == (None, 4)


def test_an_architecture_switch_a_preset_turns_on_can_be_turned_off():
    """The induction preset turns rotary positions on: `--no-rotary` must reach the plan (a plain
    store_true flag had no way to say off)."""
    assert parse_args(["--preset", "induction"]).rotary is True
    assert parse_args(["--preset", "induction", "--no-rotary"]).rotary is False
    assert parse_args(["--preset", "hands-on"]).rotary is False
    assert parse_args(["--preset", "hands-on", "--rotary"]).rotary is True


def test_config_strings_for_switches_mean_what_they_say(tmp_path):
    """Issue 27 item 2: `"overwrite": "false"` counted as true, `"download": "no"` still downloaded."""
    from adapt.cli import parse_args as adapt_args
    from pretrain.cli import parse_args as pretrain_args_of

    for word, meaning in [("false", False), ("no", False), ("Off", False), ("true", True), ("yes", True)]:
        path = tmp_path / f"{word}.json"
        path.write_text(json.dumps({"overwrite": word, "download": word}))
        args = pretrain_args_of(["--config", str(path)])
        assert (args.overwrite, args.download) == (meaning, meaning)
        args = adapt_args(["--pretrained", "none", "--config", str(path)])
        assert (args.overwrite, args.download) == (meaning, meaning)


def test_config_values_are_checked_against_choices(tmp_path, capsys):
    """Issue 27 item 7: "MLM" trained a causal model, "Features" fine-tuned everything, a string prompt was
    sampled per character, a `preset`/`recipe` in the file was ignored."""
    from adapt.cli import parse_args as adapt_args
    from pretrain.cli import parse_args as pretrain_args_of

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"objective": "MLM"}))
    assert "objective: 'MLM' is not one of" in usage_error(pretrain_main, ["--config", str(bad)], capsys)
    bad.write_text(json.dumps({"scheme": "Features"}))
    assert "scheme: 'Features' is not one of" in usage_error(
        adapt_main, ["--pretrained", "none", "--config", str(bad)], capsys
    )
    bad.write_text(json.dumps({"sample_prompts": {"a": 1}}))
    assert "is not a list of values (--sample-prompts)" in usage_error(
        pretrain_main, ["--config", str(bad)], capsys
    )
    bad.write_text(json.dumps({"preset": "huge"}))
    assert "preset: 'huge' is not one of" in usage_error(pretrain_main, ["--config", str(bad)], capsys)
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"sample_prompts": "The history", "preset": "hands-on"}))
    args = pretrain_args_of(["--config", str(good)])
    assert args.sample_prompts == ["The history"]
    assert (args.preset, args.max_steps, args.epochs) == ("hands-on", None, 50)  # the preset's values
    good.write_text(json.dumps({"recipe": "cpu-trec6"}))
    assert adapt_args(["--pretrained", "none", "--config", str(good)]).lr == 5e-4


def test_max_steps_with_an_equals_sign_beats_the_config_epochs(tmp_path):
    """Issue 27 item 6: `--max-steps=3` with `epochs: 1` in the config trained an epoch."""
    from adapt.cli import parse_args as adapt_args
    from pretrain.cli import parse_args as pretrain_args_of

    epochs = tmp_path / "epochs.yaml"
    epochs.write_text("epochs: 1\n")
    args = pretrain_args_of(["--config", str(epochs), "--max-steps=3"])
    assert (args.max_steps, args.epochs) == (3, None)
    args = adapt_args(["--pretrained", "none", f"--config={epochs}", "--max-steps=3"])
    assert (args.max_steps, args.epochs) == (3, None)


def test_a_run_never_reads_from_its_own_output_dir(tmp_path, capsys):
    """Issue 27 item 3: `--init-from X --output-dir X --overwrite` deleted X's model before failing."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    err = usage_error(
        pretrain_main, ["--init-from", str(model), "--output-dir", str(model / "."), "--overwrite"], capsys
    )
    assert f"--init-from {model} is also --output-dir" in err
    err = usage_error(
        adapt_main, ["--pretrained", f"hf:{model}", "--output-dir", str(model), "--overwrite"], capsys
    )
    assert f"--pretrained hf:{model} is also --output-dir" in err
    assert [p.name for p in model.iterdir()] == ["config.json"]


def test_a_config_file_with_a_byte_order_mark_reads(tmp_path):
    """Issue 27 item 4: every text file the programs read accepts a BOM (Notepad writes one)."""
    from pretrain.cli import parse_args as pretrain_args_of

    path = tmp_path / "notepad.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"max_steps": 4}).encode())
    assert pretrain_args_of(["--config", str(path)]).max_steps == 4


def test_resume_refuses_options_that_differ_from_the_run(tmp_path, capsys):
    """Issue 27 item 8: `--resume DIR --max-steps 50` (or --lr, --preset, --output-dir, adapt --seeds,
    --task) was silently ignored, exit 0."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "training_args.json").write_text(
        json.dumps({"lr": 0.01, "max_steps": 300, "preset": "tiny", "seeds": [0], "task": "trec-6"})
    )
    err = usage_error(pretrain_main, ["--resume", str(run), "--max-steps=50", "--lr", "0.5"], capsys)
    assert "--max-steps 50 (the run has 300)" in err and "--lr 0.5 (the run has 0.01)" in err
    assert "only --device, --threads, --no-progress, --compile, --peak-tflops, --logger may change" in err
    assert "--preset hands-on" in usage_error(
        pretrain_main, ["--resume", str(run), "--preset", "hands-on"], capsys
    )
    assert f"--output-dir {tmp_path}" in usage_error(
        pretrain_main, ["--resume", str(run), "--output-dir", str(tmp_path)], capsys
    )
    err = usage_error(adapt_main, ["--resume", str(run), "--seeds", "0,1", "--task", "trec-50"], capsys)
    assert "--seeds [0, 1] (the run has [0])" in err and "--task trec-50" in err
    # the same values, and the hardware options, are fine
    from pretrain.cli import parse_args as pretrain_args_of

    assert pretrain_args_of(["--resume", str(run), "--lr", "0.01", "--threads", "1", "--device", "cpu"])


def test_resume_keeps_the_runs_precision_and_refuses_another(tmp_path, capsys):
    """Issue 33: `--resume DIR --amp none` of a bf16 run went on in fp32, ending with a model neither
    precision gives, while training_args.json still said bf16."""
    run = tmp_path / "run"
    run.mkdir()
    defaults = {k: str(v) if isinstance(v, Path) else v for k, v in vars(parse_args([])).items()}
    (run / "training_args.json").write_text(json.dumps({**defaults, "amp": "bf16"}))
    err = usage_error(pretrain_main, ["--resume", str(run), "--amp", "none"], capsys)
    assert "--amp none (the run has bf16)" in err
    assert usage_error(adapt_main, ["--resume", str(run), "--amp", "none"], capsys)
    for same in ([], ["--amp", "auto"], ["--amp", "bf16"]):  # auto: the run's own, whatever this machine has
        assert plan_run(parse_args(["--resume", str(run), *same])).amp == "bf16"


@pytest.mark.parametrize(
    "program, files, message",
    [
        ("pretrain", {"training_args.json": "[]"}, "training_args.json is damaged (not a mapping of options)"),
        ("adapt", {"training_args.json": "{garbage"}, "training_args.json is not valid JSON"),
        ("pretrain", {"training_args.json": "OK", "run_state.json": "[1]"}, "run_state.json is damaged"),
        ("pretrain", {"training_args.json": "NULL_LENGTH"}, "sets none of max_steps / epochs"),
        ("adapt", {"training_args.json": "OK"}, "not a run of python -m adapt"),
        ("adapt", {"training_args.json": "ADAPT", "results.json": "{x", "run_state.json": "COMPLETE"},
         "results.json is not valid JSON"),
    ],
)  # fmt: skip
def test_a_damaged_run_folder_on_resume_is_one_line_naming_the_file(
    tmp_path, capsys, program, files, message
):
    """Issue 27 items 21, 27: hand-damaged training_args.json / run_state.json / results.json, both lengths
    null, adapt --resume on a pretrain folder gave tracebacks or messages without the file."""
    from pretrain.cli import parse_args as pretrain_parse

    run = tmp_path / "run"
    run.mkdir()
    ok = {k: str(v) if isinstance(v, Path) else v for k, v in vars(pretrain_parse([])).items()}
    adapt_ok = {**vars(__import__("adapt.cli").cli.build_parser().parse_args([])), "pretrained": "none"}
    texts = {
        "OK": json.dumps(ok),
        "NULL_LENGTH": json.dumps({**ok, "max_steps": None, "epochs": None}),
        "ADAPT": json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in adapt_ok.items()}),
        "COMPLETE": json.dumps({"status": "complete"}),
    }
    for name, text in files.items():
        (run / name).write_text(texts.get(text, text))
    main = pretrain_main if program == "pretrain" else adapt_main
    assert main(["--resume", str(run), "--threads", "1"]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_an_output_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    """Issue 27 item 27: "[Errno 17] File exists"."""
    (tmp_path / "file").write_text("mine")
    assert (
        adapt_main(["--pretrained", "none", "--output-dir", str(tmp_path / "file"), "--max-steps", "1"]) == 1
    )
    assert "is a file, not a folder: choose a folder" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "mine"


# issue 34, cases 7, 8, 13, 15, 16: a config file that means something else than it seems is refused
ODD_CONFIG_CASES = [
    ("twice.json", b'{"lr": 0.001, "lr": 0.5}', "'lr' is given twice: keep one"),
    ("twice.yaml", b"lr: 0.001\nlr: 0.5\n", "'lr' is given twice: keep one"),
    ("nested.json", b'{"config": "other.json"}', "'config' cannot be set in a config file"),
    ("resume.yaml", b"resume: runs/x\n", "'resume' cannot be set in a config file"),
    ("deep.json", b"[" * 100_000, "nested too deeply"),
    ("deep.yaml", b"[" * 100_000, "nested too deeply"),
    ("latin1.json", b'{"device": "caf\xe9"}', "not UTF-8 text"),
    ("infinite.yaml", b"lr: .inf\n", "--lr inf: must be finite"),
]


@pytest.mark.parametrize("name, content, message", ODD_CONFIG_CASES)
def test_config_files_that_mean_something_else_are_refused_naming_the_file(
    name, content, message, tmp_path, capsys
):
    path = tmp_path / name
    path.write_bytes(content)
    err = usage_error(pretrain_main, ["--config", str(path)], capsys)
    assert message in err and (str(path) in err or "--lr" in err), err


def test_a_deeply_nested_config_file_with_help_is_one_line(tmp_path, capsys):
    """Case 13: `--config deep.json --help` was a RecursionError traceback."""
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000)
    assert f"--config {path}: nested too deeply" in usage_error(
        pretrain_main, ["--config", str(path), "--help"], capsys
    )
