"""`python -m adapt`: fine-tune a classifier on TREC (or any labelled text), once per seed.

The order follows the hands-on's adaptation notebook. `adapt` freezes the options into an AdaptPlan and
loads the Task once; `run_seed` then reads top to bottom as named steps:

    validation_split → build_seed_model (load, re-init, Mixout, freezing) → build_optimizer (groups,
    LLRD, PriorWD) → loaders → (find_lr on a bare trainer) → create_clf_trainer → attach_schedule (warm-up/decay,
    gradual unfreezing, SWA) → evaluator + best checkpoint → attach_handlers (logs, validation; a new
    handler goes here) → run → test → save_classifier → seed_<n>/result.json (the seed is done)

The run holds its folder's lock and records its lifecycle (`minitransformer.runs.run_state`); `--resume`
keeps the seeds that are done and runs an interrupted one again from its start, which gives the very
model an uninterrupted run would have saved.

The stability techniques slot in where `minitransformer.training.stability` says they must.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import statistics
import time
from argparse import Namespace
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint
from ignite.metrics import (
    Accuracy,
    ConfusionMatrix,
    Fbeta,
    Loss,
    MetricsLambda,
    Precision,
    Recall,
    RunningAverage,
)
from torch.nn import Module
from torch.optim import Optimizer
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader

from minitransformer import FineTuningConfig, TransformerWithClfHead
from minitransformer.checkpoint import check_tokenizer_matches, read_config
from minitransformer.classifier import save_classifier
from minitransformer.config import IGNORE_INDEX
from minitransformer.data.classification import (
    ClassificationDataset,
    LabeledTexts,
    LengthBucketSampler,
    collate_classification,
    encode_for_classification,
    load_trec,
    read_labeled_file,
    stratified_split,
)
from minitransformer.data.download import ensure_trec
from minitransformer.presets import TINY_MODEL, config_from_options
from minitransformer.runs.errors import run_cli
from minitransformer.runs.io import write_json_atomic
from minitransformer.runs.metrics_log import MetricsLog
from minitransformer.runs.numerics import numerics, record_numerics
from minitransformer.runs.options import resumed_plan
from minitransformer.runs.run_dir import open_run_dir, run_lifecycle
from minitransformer.runs.run_state import kill_point, write_state
from minitransformer.runs.tracking import Tracker, check_logger
from minitransformer.runs.training_state import best_model_checkpoint
from minitransformer.tokenization import Tokenizer
from minitransformer.training import stability as st
from minitransformer.training.engine import (
    Dtype,
    attach_progress,
    autocast,
    check_amp,
    choose_amp,
    create_trainer,
    find_lr,
    resolve_device,
    say,
    set_cpu_threads,
    warmup_linear,
)
from minitransformer.training.metrics import matthews_corrcoef
from minitransformer.training.optimizers import make_optimizer, parameter_groups

from .cli import AdaptPlan, build_parser, parse_args

# what --overwrite replaces
RUN_FILES = ("results.json", "metrics.jsonl", "training_args.json", "seed_*", "run_state.json")
SEED_RESULT = "result.json"  # written last in seed_<n>: the seed is done


# -- data -----------------------------------------------------------------------------------------


class Task(NamedTuple):
    """A classification task: its training examples, its test set, how to name it in reports, and the
    user's own validation set (`--valid-file`) or None."""

    train: LabeledTexts  # without `valid`, validation is held out of it the same way for every seed
    test: LabeledTexts
    description: str
    valid: LabeledTexts | None = None


def load_task(plan: AdaptPlan) -> Task:
    """TREC from the data folder, or the user's labelled file(s)."""
    if plan.task in ("trec-6", "trec-50"):
        if plan.download:
            ensure_trec(plan.data_dir, (plan.train_file, "TREC_10.label"), progress=not plan.no_progress)
        train, test = load_trec(plan.data_dir, fine=plan.task == "trec-50", train_file=plan.train_file)
        return Task(train, test, f"{plan.task} ({plan.train_file}, test TREC_10.label)")
    path = Path(plan.task)
    if not path.is_file():
        raise FileNotFoundError(f"--task {plan.task}: not trec-6, trec-50 or an existing labelled file")
    data = read_labeled_file(path)
    if len(data.label_names) < 2:
        raise ValueError(
            f"{path} has a single label {data.label_names}: a classifier needs at least two classes"
        )
    valid = read_labeled_file(plan.valid_file, data.label_names) if plan.valid_file else None
    if plan.test_file:
        test = read_labeled_file(plan.test_file, data.label_names)
        return Task(data, test, f"{path.name} (test {plan.test_file.name})", valid)
    train, test = stratified_split(data, fraction=0.1, seed=0, what="test", fix="give --test-file")
    return Task(train, test, f"{path.name} (10 % held out as test)", valid)


def validation_split(plan: AdaptPlan, task: Task) -> tuple[LabeledTexts, LabeledTexts]:
    """(train, valid): the user's --valid-file, else a stratified `--valid-fraction` of the training
    examples, the same for every seed."""
    if task.valid is not None:
        return task.train, task.valid
    return stratified_split(
        task.train, plan.valid_fraction, seed=0, fix="give --valid-file or a larger --valid-fraction"
    )


def make_loader(
    ids: list[list[int]], labels: list[int], tokenizer: Tokenizer, plan: AdaptPlan, seed: int, train: bool
) -> DataLoader:
    """Dynamic padding (each batch to its own longest row), with length bucketing for training."""
    dataset = ClassificationDataset(ids, labels)
    pad_to = max(map(len, ids)) if plan.pad_to_max else None

    def collate(batch):
        return collate_classification(batch, tokenizer.pad_id, tokenizer.cls_id, pad_to=pad_to)

    if train:
        if plan.bucketing and not plan.pad_to_max:
            sampler = LengthBucketSampler(dataset.lengths(), plan.batch_size, shuffle=True, seed=seed)
        else:
            generator = torch.Generator().manual_seed(seed)
            sampler = torch.utils.data.BatchSampler(
                torch.utils.data.RandomSampler(dataset, generator=generator), plan.batch_size, drop_last=False
            )
        return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)
    # evaluation: sorted by length, so batches pad little; order does not matter for metrics
    order = sorted(range(len(dataset)), key=lambda i: len(ids[i]))
    batches = [order[i : i + 64] for i in range(0, len(order), 64)]
    return torch.utils.data.DataLoader(dataset, batch_sampler=batches, collate_fn=collate)


# -- model ----------------------------------------------------------------------------------------


def fine_tuning_config(plan: AdaptPlan, num_classes: int, **extra) -> FineTuningConfig:
    return FineTuningConfig(
        num_classes=num_classes,
        dropout=plan.dropout,
        initializer_range=plan.initializer_range,
        lm_loss_coef=plan.lm_coef,
        adapters_dim=plan.adapters_dim if plan.scheme == "adapters" else 0,
        pooling=plan.pooling,
        pooling_layer_start=plan.layer_start,
        **extra,
    )


def load_model(
    plan: AdaptPlan, num_classes: int, train_texts: list[str]
) -> tuple[TransformerWithClfHead, Tokenizer, str, dict]:
    """(model, tokenizer, clf_position, loading info) for --pretrained DIR | hf:DIR | none."""
    source = plan.pretrained
    if source.startswith("hf:"):
        from minitransformer.interop import hf

        path = Path(source[3:])
        position = hf.clf_position(path)  # "start": BERT, whose pooler the classifier uses
        ft = fine_tuning_config(plan, num_classes, pooler=position == "start")
        model, info = hf.from_hf(path, task="classification", fine_tuning_config=ft, output_loading_info=True)
        tokenizer = hf.load_tokenizer(path)
    elif source == "none":
        ft = fine_tuning_config(plan, num_classes)
        if plan.architecture_from:
            tokenizer = Tokenizer.from_pretrained(plan.architecture_from)
            config = read_config(plan.architecture_from)[1]
        else:  # TINY_MODEL (the tiny shape before issue 32), with a tokenizer trained on the training texts
            tokenizer = Tokenizer.train(train_texts, vocab_size=plan.vocab_size)
            config = config_from_options(TINY_MODEL, tokenizer.vocab_size)
        config = dataclasses.replace(config, vocab_size=tokenizer.vocab_size)
        model = TransformerWithClfHead(config, ft)
        info = {"added": ["(everything: random initialisation)"], "discarded": []}
        position = "end" if config.causal else "start"
    else:
        path = Path(source)
        ft = fine_tuning_config(plan, num_classes)
        model, info = TransformerWithClfHead.from_pretrained(path, ft, output_loading_info=True)
        tokenizer = Tokenizer.from_pretrained(path)
        check_tokenizer_matches(path, tokenizer)
        position = "end" if model.config.causal else "start"
    if tokenizer.vocab_size > model.config.vocab_size or (
        not source.startswith("hf:") and tokenizer.vocab_size != model.config.vocab_size
    ):
        raise ValueError(
            f"{source}: the tokenizer has {tokenizer.vocab_size} tokens but the model's vocabulary is "
            f"{model.config.vocab_size}: the directory mixes files from different runs"
        )
    if "cls" not in tokenizer.special_ids:
        raise ValueError(f"{source}: the tokenizer has no classification token [CLS]; add it and re-save")
    if plan.clf_position != "auto":
        position = plan.clf_position
    if plan.lm_coef and not model.config.causal:
        raise ValueError("--lm-coef needs a causal model: the auxiliary LM loss predicts the next token")
    return model, tokenizer, position, info


def freeze_for_scheme(model: TransformerWithClfHead, scheme: str) -> None:
    """features: train the head only; adapters: adapters + head; finetune/gradual: everything (for now)."""
    if scheme in ("features", "adapters"):
        for name, p in model.transformer.named_parameters():
            p.requires_grad = scheme == "adapters" and ".adapter_" in name


def attach_gradual_unfreezing(trainer: Engine, model: TransformerWithClfHead) -> None:
    """ULMFiT's gradual unfreezing: epoch 1 trains the head, each later epoch one more layer from the top."""
    layers = model.config.num_layers

    def unfreeze(engine: Engine) -> None:
        thawed = engine.state.epoch - 1  # layers trainable this epoch, counted from the top
        for p in model.transformer.parameters():
            p.requires_grad = False
        for i in range(max(0, layers - thawed), layers):
            model.transformer.blocks[i].requires_grad_(True)
        if thawed > layers:
            for module in model.transformer.embedding_modules():
                module.requires_grad_(True)
        for module in model.head_modules():
            module.requires_grad_(True)
        if model.config.sinusoidal_embeddings:
            model.transformer.position_embeddings.weight.requires_grad_(False)

    trainer.add_event_handler(Events.EPOCH_STARTED, unfreeze)


def build_optimizer(plan: AdaptPlan, model: TransformerWithClfHead) -> Optimizer:
    weight_decay = 0.0 if plan.prior_wd else plan.weight_decay  # PriorWD replaces plain decay
    if plan.llrd != 1.0:
        groups = st.llrd_parameter_groups(model, plan.lr, plan.llrd, weight_decay)
    else:
        groups = parameter_groups(model, weight_decay)
    optimizer = make_optimizer(groups, plan.optimizer, lr=plan.lr)
    if plan.prior_wd:
        st.attach_prior_wd(optimizer, model, plan.prior_wd)
    return optimizer


# -- evaluation -----------------------------------------------------------------------------------


def create_evaluator(model: Module, device: torch.device, amp_dtype: Dtype, num_classes: int) -> Engine:
    """Ignite evaluator with accuracy, loss, per-class precision/recall/F1 and the confusion matrix."""

    def step(engine: Engine, batch: dict):
        model.eval()
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.no_grad(), autocast(device, amp_dtype):
            logits = model(batch["input_ids"], batch["clf_tokens_mask"], padding_mask=batch["padding_mask"])
        return logits.float(), batch["labels"]

    return attach_classification_metrics(Engine(step), num_classes)


def attach_classification_metrics(evaluator: Engine, num_classes: int) -> Engine:
    """Ignite metrics on (logits, labels) outputs; the same for Transformers and the TF-IDF baseline."""
    precision, recall = Precision(average=False), Recall(average=False)
    Accuracy().attach(evaluator, "accuracy")
    Loss(F.cross_entropy).attach(evaluator, "loss")
    precision.attach(evaluator, "precision")
    recall.attach(evaluator, "recall")
    Fbeta(1.0, average=False, precision=precision, recall=recall).attach(evaluator, "f1")
    confusion = ConfusionMatrix(num_classes)
    confusion.attach(evaluator, "confusion")
    MetricsLambda(matthews_corrcoef, confusion).attach(evaluator, "mcc")
    return evaluator


def summarize(metrics: dict, label_names: list[str]) -> dict:
    """JSON-ready test metrics: accuracy, error, macro-F1, MCC, per-class precision/recall/F1, confusion."""
    f1 = metrics["f1"].tolist()
    return {
        "accuracy": metrics["accuracy"],
        "error_rate": 1.0 - metrics["accuracy"],
        "macro_f1": sum(f1) / len(f1),
        "mcc": metrics["mcc"],
        "loss": metrics["loss"],
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f)}
            for name, p, r, f in zip(label_names, metrics["precision"], metrics["recall"], f1)
        },
        "confusion": metrics["confusion"].int().tolist(),
    }


# -- one seed, step by step -----------------------------------------------------------------------


def run_seed(plan: AdaptPlan, seed: int, task: Task, out: Path, log: MetricsLog) -> dict:
    """Fine-tune, validate and test once with `seed`; save the model to out/seed_<seed>; return its results.

    The seed starts from an empty seed_<seed> (what a killed attempt left is removed) and ends by
    writing seed_<seed>/result.json, which marks it done."""
    started = time.time()
    shutil.rmtree(out / f"seed_{seed}", ignore_errors=True)
    train, valid = validation_split(plan, task)
    torch.manual_seed(seed)
    device = resolve_device(plan.device)
    amp_dtype = check_amp(plan.amp, device)
    model, tokenizer, position = build_seed_model(plan, seed, train, device)
    optimizer = build_optimizer(plan, model)
    max_len = plan.max_len or model.config.num_max_positions
    if max_len > model.config.num_max_positions:
        raise ValueError(
            f"--max-len {max_len}: {plan.pretrained} has {model.config.num_max_positions} positions; "
            f"use at most {model.config.num_max_positions}"
        )
    encode = lambda texts: encode_for_classification(texts, tokenizer, max_len, position)  # noqa: E731
    loaders = [
        make_loader(encode(part.texts), part.labels, tokenizer, plan, seed, train=part is train)
        for part in (train, valid, task.test)
    ]
    train_loader, valid_loader, test_loader = loaders
    total_steps = plan.max_steps or plan.epochs * len(train_loader)

    if plan.lr_find:
        bare = create_clf_trainer(plan, seed, model, optimizer, device, amp_dtype)
        plot = out / "plots" / f"lr_finder_seed_{seed}.png"
        suggestion = find_lr(bare, model, optimizer, train_loader, plot_path=plot)
        print(
            f"[seed {seed}] learning-rate finder suggests {suggestion:.3g} (was {plan.lr:.3g}); fine-tuning with it"
        )
        log.log("lr_find", 0, seed=seed, suggestion=suggestion)
    trainer = create_clf_trainer(plan, seed, model, optimizer, device, amp_dtype)
    swa_model, lr_history = attach_schedule(plan, trainer, model, optimizer, total_steps, len(train_loader))
    evaluator = create_evaluator(model, device, amp_dtype, len(train.label_names))
    best = best_model_checkpoint(model, out / f"seed_{seed}" / "checkpoints", trainer, "accuracy", sign=1.0)
    evaluator.add_event_handler(Events.COMPLETED, best)
    attach_handlers(plan, seed, trainer, evaluator, optimizer, train_loader, valid_loader, log)
    tracker = Tracker(plan.logger, out / "tensorboard" / f"seed_{seed}", log, trainer, optimizer)
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED, lambda e: kill_point(f"seed{seed}_step", e.state.iteration)
    )
    trainer.run(train_loader, max_iters=total_steps, epoch_length=len(train_loader))
    kill_point("seed_trained", seed)
    if trainer.state.iteration < total_steps or not math.isfinite(trainer.state.output["loss"]):
        raise FloatingPointError(
            f"seed {seed}: the loss became {trainer.state.output['loss']}; training stopped"
        )

    final_model = swa_model.module if swa_model is not None else best_model(model, best)
    if plan.mixout:
        st.remove_mixout(final_model)
    result = score_final_model(
        plan, seed, final_model, valid_loader, test_loader, train.label_names, device, amp_dtype
    )
    result["wall_time_s"] = time.time() - started  # model loading, training, validation and test
    log.log("test", trainer.state.iteration, seed=seed, accuracy=result["test"]["accuracy"],
            valid_accuracy=result["valid_accuracy"])  # fmt: skip
    print(
        f"[seed {seed}] test accuracy {result['test']['accuracy']:.4f}, macro-F1 {result['test']['macro_f1']:.4f}, "
        f"MCC {result['test']['mcc']:.4f} (best valid accuracy {result['valid_accuracy']:.4f}) on {task.description}"
    )
    save_classifier(out / f"seed_{seed}", final_model, tokenizer, train.label_names, position, max_len)
    kill_point("seed_save", seed)
    shutil.rmtree(out / f"seed_{seed}" / "checkpoints", ignore_errors=True)  # the best model is saved
    write_json_atomic(out / f"seed_{seed}" / SEED_RESULT, result)  # the results before any plot
    write_seed_plots(out, seed, result, train.label_names, lr_history if plan.llrd != 1.0 else None)
    tracker.finish(out / "plots")
    kill_point("seed_done", seed)
    return result


def build_seed_model(
    plan: AdaptPlan, seed: int, train: LabeledTexts, device: torch.device
) -> tuple[TransformerWithClfHead, Tokenizer, str]:
    """(model, tokenizer, clf position): loaded, then re-init / Mixout / freezing as the plan says."""
    model, tokenizer, position, info = load_model(plan, len(train.label_names), train.texts)
    print(
        f"[seed {seed}] {plan.pretrained}: discarded {info['discarded'] or 'nothing'}; added {info['added']}"
    )
    st.reinit_top_layers(model, plan.reinit_layers)
    if plan.mixout:
        st.apply_mixout(model, plan.mixout)
    freeze_for_scheme(model, plan.scheme)
    return model.to(device), tokenizer, position


def create_clf_trainer(
    plan: AdaptPlan, seed: int, model: Module, optimizer: Optimizer, device: torch.device, amp_dtype: Dtype
) -> Engine:
    """One optimizer step per batch: classification loss (+ --lm-coef × the LM loss), clipped."""

    def loss_fn(m: torch.nn.Module, batch: dict) -> torch.Tensor:
        batch = {k: v.to(device) for k, v in batch.items()}
        lm_labels = None
        if plan.lm_coef:  # predict every real token; not the padding, not the classification token
            lm_labels = batch["input_ids"].masked_fill(
                batch["padding_mask"] | batch["clf_tokens_mask"], IGNORE_INDEX
            )
        return m(
            batch["input_ids"],
            batch["clf_tokens_mask"],
            clf_labels=batch["labels"],
            padding_mask=batch["padding_mask"],
            lm_labels=lm_labels,
        )[1]

    return create_trainer(
        model,
        optimizer,
        loss_fn,
        max_norm=plan.max_norm or None,
        device=device,
        amp_dtype=amp_dtype,
        seed=seed,
    )


def attach_schedule(
    plan: AdaptPlan, trainer: Engine, model: Module, optimizer: Optimizer, total_steps: int, epoch_length: int
) -> tuple[AveragedModel | None, dict[str, list[float]]]:
    """Warm-up + linear decay, gradual unfreezing, SWA; returns (the SWA model or None, lr per group)."""
    if plan.scheme == "gradual":
        attach_gradual_unfreezing(trainer, model)
    scheduler = warmup_linear(optimizer, plan.warmup_steps, total_steps)
    trainer.add_event_handler(Events.ITERATION_STARTED, scheduler)
    swa_model = None
    if plan.swa_start:
        max_epochs = math.ceil(total_steps / epoch_length)  # the last one may be partial
        if plan.swa_start > max_epochs:
            raise ValueError(f"--swa-start {plan.swa_start} is after the last epoch ({max_epochs})")
        swa_model = st.attach_swa(
            trainer, model, optimizer, plan.swa_start, plan.swa_lr, lr_scheduler=scheduler
        )
    return swa_model, st.track_group_learning_rates(trainer, optimizer)


@dataclass
class EpochStats:
    """Tokens seen and start time of the current epoch, and the last validated step."""

    tokens: int = 0
    started: float = 0.0
    validated_at: int | None = None


def attach_handlers(
    plan: AdaptPlan, seed: int, trainer: Engine, evaluator: Engine, optimizer: Optimizer,
    train_loader: DataLoader, valid_loader: DataLoader, log: MetricsLog,
) -> None:  # fmt: skip
    """Progress bar, train log, validation every --eval-every steps and every epoch, per-epoch token counts."""
    stats = EpochStats()
    RunningAverage(output_transform=lambda o: o["loss"], alpha=0.9).attach(trainer, "avg_loss")
    if not plan.no_progress:
        attach_progress(trainer, lambda e: {"lr": max(g["lr"] for g in optimizer.param_groups)})

    @trainer.on(Events.EPOCH_STARTED)
    def new_epoch(engine: Engine) -> None:
        if isinstance(train_loader.batch_sampler, LengthBucketSampler):
            train_loader.batch_sampler.set_epoch(engine.state.epoch)
        stats.tokens, stats.started = 0, time.time()

    @trainer.on(Events.ITERATION_COMPLETED)
    def count_tokens(engine: Engine) -> None:
        stats.tokens += engine.state.batch["input_ids"].numel()

    @trainer.on(Events.ITERATION_COMPLETED(every=10))
    def log_train(engine: Engine) -> None:
        lr = max(g["lr"] for g in optimizer.param_groups)
        log.log("train", engine.state.iteration, seed=seed, loss=engine.state.output["loss"], lr=lr,
                grad_norm=engine.state.output["grad_norm"])  # fmt: skip

    def validate(engine: Engine) -> None:
        if stats.validated_at == engine.state.iteration:
            return  # already evaluated at this step
        stats.validated_at = engine.state.iteration
        evaluator.run(valid_loader)
        m = evaluator.state.metrics
        log.log("valid", engine.state.iteration, seed=seed, loss=m["loss"], accuracy=m["accuracy"])
        say(f"[seed {seed}] epoch {engine.state.epoch} step {engine.state.iteration}: "
            f"valid accuracy {m['accuracy']:.4f}, loss {m['loss']:.4f}")  # fmt: skip

    if plan.eval_every:
        trainer.add_event_handler(Events.ITERATION_COMPLETED(every=plan.eval_every), validate)
    trainer.add_event_handler(Events.COMPLETED, validate)  # a run may stop mid-epoch (--max-steps)

    @trainer.on(Events.EPOCH_COMPLETED)
    def end_of_epoch(engine: Engine) -> None:
        validate(engine)
        seconds = time.time() - stats.started
        log.log("epoch", engine.state.iteration, seed=seed, epoch=engine.state.epoch, tokens=stats.tokens,
                seconds=seconds, tokens_per_s=stats.tokens / max(seconds, 1e-9))  # fmt: skip


def best_model(model: TransformerWithClfHead, best: Checkpoint) -> TransformerWithClfHead:
    """`model` with the weights of the best validation checkpoint."""
    state = torch.load(best.last_checkpoint, map_location="cpu", weights_only=True)  # the full path
    Checkpoint.load_objects({"model": model}, state)
    return model


def score_final_model(
    plan: AdaptPlan, seed: int, model: Module, valid_loader: DataLoader, test_loader: DataLoader,
    label_names: list[str], device: torch.device, amp_dtype: Dtype,
) -> dict:  # fmt: skip
    """The final model's validation accuracy and test metrics."""
    evaluator = create_evaluator(model, device, amp_dtype, len(label_names))
    evaluator.run(valid_loader)
    best_valid = evaluator.state.metrics["accuracy"]
    if not math.isfinite(evaluator.state.metrics["loss"]):  # the training loss can still be finite
        largest = max(float(p.detach().abs().max()) for p in model.parameters())
        raise FloatingPointError(
            f"seed {seed}: the fine-tuned model's validation loss is {evaluator.state.metrics['loss']} (the "
            f"weights diverged, largest |weight| {largest:.3g}); lower --lr (was {plan.lr:g}) and rerun"
        )
    evaluator.run(test_loader)
    return {
        "seed": seed,
        "valid_accuracy": best_valid,
        "test": summarize(evaluator.state.metrics, label_names),
    }


def write_seed_plots(out: Path, seed: int, result: dict, labels: list[str], lr_history: dict | None) -> None:
    from minitransformer.teaching import plots

    plots.plot_confusion_matrix(
        result["test"]["confusion"], labels, title=f"Test confusion matrix (seed {seed})",
        path=out / "plots" / f"confusion_seed_{seed}.png",
    )  # fmt: skip
    if lr_history:
        plots.plot_lr_per_group(lr_history, path=out / "plots" / "llrd_lr.png")


# -- several seeds --------------------------------------------------------------------------------


def mean_std(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def adapt(args: Namespace) -> dict:
    """Run every seed (holding the output folder's lock); write results.json and the plots; return the results."""
    plan = resumed_plan(AdaptPlan, build_parser(), args) if args.resume else AdaptPlan(**vars(args))
    plan = choose_amp(plan)
    check_logger(plan.logger)
    kept_anything = lambda: bool(finished_seeds(Path(plan.output_dir), plan.seeds))  # noqa: E731
    with run_lifecycle(plan, RUN_FILES, kept_anything) as complete:
        if complete:
            return read_json_file(Path(plan.output_dir) / "results.json")
        return run_seeds(plan)


def finished_seeds(out: Path, seeds: list[int]) -> dict[int, dict]:
    """The results of the seeds a resumed run has done already (their seed_<n>/result.json)."""
    paths = {seed: out / f"seed_{seed}" / SEED_RESULT for seed in seeds}
    return {seed: read_json_file(p) for seed, p in paths.items() if p.is_file()}


def read_json_file(path: Path) -> dict:
    """A JSON object this program wrote; a damaged one (edited, truncated) is a ValueError naming it."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: the run folder is damaged; start a new run") from None
    except ValueError as e:
        raise ValueError(
            f"{path} is not valid JSON ({e}): delete it to redo that part, or start a new run"
        ) from None
    if not isinstance(value, dict):
        raise ValueError(
            f"{path} is damaged (not a JSON object): delete it to redo that part, or start a new run"
        )
    return value


def run_seeds(plan: AdaptPlan) -> dict:
    """The baseline and every seed not done yet; results.json; the "complete" state."""
    started = time.time()
    if plan.device == "cpu" or not torch.cuda.is_available():
        set_cpu_threads(plan.threads)
    task = load_task(plan)
    if plan.scheme == "adapters" and plan.adapters_dim <= 0:
        raise ValueError(f"--scheme adapters needs --adapters-dim > 0, got {plan.adapters_dim}")
    out = open_run_dir(plan, RUN_FILES, "finish")
    log = MetricsLog(out / "metrics.jsonl")
    done = finished_seeds(out, plan.seeds)
    if plan.resume:  # drop the events of an interrupted seed: it is run again
        log.keep(lambda _, event: event.get("seed", -1) in done or "seed" not in event)
    record_numerics(out, numerics(plan, resolve_device(plan.device)), log, 0, continuing=bool(done))
    results: dict = {"task": task.description, "pretrained": plan.pretrained, "scheme": plan.scheme}
    results["validation"] = str(plan.valid_file) if plan.valid_file else f"{plan.valid_fraction:.0%} of train"
    if plan.baseline:
        from .baseline import describe, tfidf_baseline

        split = validation_split(plan, task)  # the validation the Transformer runs use
        predictions, baseline = tfidf_baseline(task.train, task.test, split if plan.tune else None)
        results["baseline"] = {**baseline, "test": score_predictions(predictions, task.test)}
        print(
            f"TF-IDF + LinearSVC baseline ({describe(baseline['config'])}; {baseline['selected_on']}): "
            f"test accuracy {100 * results['baseline']['test']['accuracy']:.2f} %"
        )
    if plan.pretrained is not None:
        runs = [done[seed] if seed in done else run_seed(plan, seed, task, out, log) for seed in plan.seeds]
        results.update(summarize_seeds(runs, task, out))
    carried = sum(done[seed]["wall_time_s"] for seed in done)  # seeds done before a resume
    results["wall_time_s"] = carried + time.time() - started
    write_json_atomic(out / "results.json", results)
    if plan.pretrained is not None:  # the plots after the results: a plot that fails loses no result
        from minitransformer.teaching import plots

        plots.plot_training_curves(
            out / "metrics.jsonl",
            title=f"Fine-tuning on {task.description}",
            path=out / "plots" / "curves.png",
        )
    write_state(out, "complete", seeds=plan.seeds, wall_time_s=results["wall_time_s"])
    return results


def summarize_seeds(runs: list[dict], task: Task, out: Path) -> dict:
    """Mean ± std over the seeds of test accuracy, macro-F1 and MCC."""
    accuracies = [r["test"]["accuracy"] for r in runs]
    summary = {
        "test_accuracy": mean_std(accuracies),
        "test_macro_f1": mean_std([r["test"]["macro_f1"] for r in runs]),
        "test_mcc": mean_std([r["test"]["mcc"] for r in runs]),
        "runs": runs,
    }
    accuracy = summary["test_accuracy"]
    print(
        f"test accuracy over {len(runs)} seed(s): {100 * accuracy['mean']:.2f} ± {100 * accuracy['std']:.2f} % "
        f"(min {100 * accuracy['min']:.2f}, max {100 * accuracy['max']:.2f}); every run: "
        + ", ".join(f"{100 * a:.2f}" for a in accuracies)
    )
    return summary


def score_predictions(predictions: list[int], data: LabeledTexts) -> dict:
    """The Transformer runs' test metrics for plain predicted label ids (e.g. the TF-IDF baseline's)."""
    num_classes = len(data.label_names)
    logits = F.one_hot(
        torch.tensor(predictions), num_classes
    ).float()  # (N, C): a vote for the predicted class
    evaluator = attach_classification_metrics(Engine(lambda engine, batch: batch), num_classes)
    evaluator.run([(logits, torch.tensor(data.labels))])
    return summarize(evaluator.state.metrics, data.label_names)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_cli(lambda: adapt(args))
