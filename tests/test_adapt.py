"""`python -m adapt`'s steps apply each option: the model and optimizer they build carry its effect.

The techniques themselves are tested in test_stability.py; these tests would catch a flag that is
parsed but never wired (e.g. `apply_mixout` dropped from the run), without training anything.
"""

from __future__ import annotations

import pytest
import torch
from conftest import REPO
from torch.optim.swa_utils import AveragedModel

from adapt.cli import AdaptPlan, parse_args
from adapt.run import attach_schedule, build_optimizer, build_seed_model, create_clf_trainer
from minitransformer import TransformerConfig, TransformerWithLMHead
from minitransformer.data.classification import LabeledTexts
from minitransformer.presets import HANDS_ON_LR
from minitransformer.tokenization import Tokenizer
from minitransformer.training.optimizers import BertAdam

TRAIN = LabeledTexts(["who is it ?", "what is it ?", "where is it ?"], [0, 1, 2], ["HUM", "DESC", "LOC"])


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    """A small causal LM with the suite's tokenizer, as `python -m pretrain` would save it."""
    tokenizer = Tokenizer.from_file(REPO / "tests" / "data" / "tokenizer.json")
    config = TransformerConfig(
        embed_dim=16, hidden_dim=32, num_heads=2, num_layers=2, num_max_positions=32,
        vocab_size=tokenizer.vocab_size, norm_placement="pre", final_layer_norm=True,
    )  # fmt: skip
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("lm")
    TransformerWithLMHead(config).save_pretrained(directory, tokenizer=tokenizer)
    return directory


def built(lm_dir, *flags: str):
    """(plan, model, optimizer) as run_seed builds them for these command-line flags."""
    plan = AdaptPlan(**vars(parse_args(["--pretrained", str(lm_dir), *flags])))
    torch.manual_seed(0)
    model, _, _ = build_seed_model(plan, 0, TRAIN, torch.device("cpu"))
    return plan, model, build_optimizer(plan, model)


def backbone_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.transformer.state_dict().items()}


def test_optimizer_flag_chooses_adamw_or_bertadam_without_bias_correction(lm_dir):
    assert isinstance(built(lm_dir, "--optimizer", "adamw")[2], torch.optim.AdamW)
    _, _, optimizer = built(lm_dir, "--optimizer", "bertadam")
    assert isinstance(optimizer, BertAdam)
    assert {g["bias_correction"] for g in optimizer.param_groups} == {False}


def test_llrd_gives_each_block_its_decayed_lr(lm_dir):
    _, _, optimizer = built(lm_dir, "--llrd", "0.5", "--lr", "1e-3")
    lrs = {g["name"].split("/")[0]: g["lr"] for g in optimizer.param_groups}
    assert lrs == pytest.approx({"head": 1e-3, "layer_1": 5e-4, "layer_0": 2.5e-4, "embeddings": 1.25e-4})
    _, _, plain = built(lm_dir)
    assert {g["lr"] for g in plain.param_groups} == {HANDS_ON_LR}


def test_mixout_puts_mixout_layers_in_the_backbone(lm_dir):
    def mixed(model):
        return [name for name, m in model.transformer.named_modules() if hasattr(type(m), "mixed_name")]

    assert mixed(built(lm_dir, "--mixout", "0.2")[1])
    assert not mixed(built(lm_dir)[1])


@pytest.mark.parametrize("prior_wd, moves_back", [("1.0", True), ("0", False)])
def test_prior_wd_pulls_weights_back_toward_the_pretrained_ones(lm_dir, prior_wd, moves_back):
    _, model, optimizer = built(lm_dir, "--prior-wd", prior_wd, "--lr", "0.1")
    weight = model.transformer.blocks[0].feed_forward[0].weight
    pretrained = weight.detach().clone()
    with torch.no_grad():
        weight.add_(1.0)  # as if training had moved it
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # no loss gradient: only the decay can move a weight
    optimizer.step()
    distance = (weight - pretrained).abs().mean().item()
    assert (distance < 0.95) == moves_back and distance <= 1.0 + 1e-6


def test_reinit_layers_changes_the_top_layer_only(lm_dir):
    _, original, _ = built(lm_dir)
    _, reinit, _ = built(lm_dir, "--reinit-layers", "1")
    before, after = backbone_state(original), backbone_state(reinit)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("blocks.1.attention.") for k in changed)
    layer = lambda key: key.split(".")[1]  # noqa: E731  ("blocks.1.attention.out_proj.weight" → "1")
    assert not {k for k in changed if layer(k) != "1"}  # layer 0 and the embeddings are kept
    weights = [k for k in before if layer(k) == "1" and k.endswith("weight") and "layer_norm" not in k]
    assert set(weights) <= changed


def test_swa_start_attaches_an_averaged_model(lm_dir):
    for flags, averaged in (([], False), (["--swa-start", "1"], True)):
        plan, model, optimizer = built(lm_dir, *flags)
        trainer = create_clf_trainer(plan, 0, model, optimizer, torch.device("cpu"), None)
        swa_model, _ = attach_schedule(plan, trainer, model, optimizer, total_steps=20, epoch_length=10)
        assert isinstance(swa_model, AveragedModel) == averaged


@pytest.mark.parametrize("scheme, trainable", [("finetune", True), ("features", False)])
def test_scheme_freezes_the_backbone(lm_dir, scheme, trainable):
    _, model, optimizer = built(lm_dir, "--scheme", scheme)
    assert all(p.requires_grad == trainable for p in model.transformer.parameters())
    assert all(p.requires_grad for p in model.classification_head.parameters())


def test_gradual_unfreezing_thaws_one_layer_per_epoch(tiny_config):
    from ignite.engine import Engine, Events

    from adapt.run import attach_gradual_unfreezing
    from minitransformer import FineTuningConfig, TransformerWithClfHead

    model = TransformerWithClfHead(tiny_config, FineTuningConfig(num_classes=3))
    engine, trainable = Engine(lambda e, b: None), []
    attach_gradual_unfreezing(engine, model)

    @engine.on(Events.EPOCH_STARTED)
    def record(_):
        layers = [all(p.requires_grad for p in model.transformer.blocks[i].parameters()) for i in (0, 1)]
        embeddings = model.transformer.tokens_embeddings.weight.requires_grad
        trainable.append((layers, embeddings, model.classification_head.weight.requires_grad))

    engine.run([0], max_epochs=4)
    assert trainable == [
        ([False, False], False, True),  # epoch 1: the head only
        ([False, True], False, True),  # epoch 2: + the top layer
        ([True, True], False, True),  # epoch 3: + the layer below
        ([True, True], True, True),  # epoch 4: everything
    ]


def test_task_file_options_that_do_not_fit_are_usage_errors(capsys):
    from adapt.cli import parse_args

    for argv, message in [
        (
            ["--task", "mine.tsv", "--train-file", "train_1000.label"],
            "--train-file chooses a TREC training file",
        ),
        (["--task", "trec-6", "--valid-file", "v.tsv"], "--valid-file/--test-file go with --task FILE"),
        (["--task", "trec-50", "--test-file", "t.tsv"], "--valid-file/--test-file go with --task FILE"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            parse_args(["--pretrained", "none", *argv])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert parse_args(["--pretrained", "none"]).train_file == "train_5500.label"


def test_recipes_set_defaults_that_flags_and_config_files_override(tmp_path):
    from adapt.cli import parse_args
    from minitransformer.presets import FINETUNE_RECIPES as RECIPES

    recipe = parse_args(["--pretrained", "none", "--recipe", "cpu-trec6"])
    assert {k: getattr(recipe, k) for k in RECIPES["cpu-trec6"]} == RECIPES["cpu-trec6"]
    assert parse_args(["--pretrained", "none"]).lr == 6.5e-5  # hands-on by default
    long = parse_args(["--pretrained", "none", "--recipe", "cpu-long"])  # cpu-trec6, 10 epochs
    assert (long.lr, long.llrd, long.epochs, long.eval_every) == (5e-4, 0.7, 10, 0)
    config = tmp_path / "c.json"
    config.write_text('{"lr": 1e-4}')
    layered = parse_args(["--pretrained", "none", "--recipe", "cpu-trec6", "--config", str(config)])
    assert layered.lr == 1e-4 and layered.epochs == RECIPES["cpu-trec6"]["epochs"]
    explicit = parse_args(
        ["--pretrained", "none", "--recipe", "cpu-trec6", "--lr", "2e-5", "--max-steps", "7"]
    )
    assert (explicit.lr, explicit.max_steps, explicit.epochs) == (2e-5, 7, None)
