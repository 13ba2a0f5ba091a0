"""`python -m adapt`: fine-tune a classifier on TREC (or any labelled text), once per seed.

The order follows the hands-on's adaptation notebook: data → pretrained model and its tokenizer →
classification head → which weights train → optimizer and schedule → Ignite trainer/evaluator →
best checkpoint by validation accuracy → test metrics. The stability techniques slot in where
`minitransformer.stability` says they must (re-init, Mixout, groups, PriorWD, SWA).
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import statistics
import time
from argparse import Namespace
from pathlib import Path

import torch
import torch.nn.functional as F
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint
from ignite.metrics import Accuracy, ConfusionMatrix, Fbeta, Loss, Precision, Recall, RunningAverage

from minitransformer import FineTuningConfig, TransformerWithClfHead
from minitransformer import stability as st
from minitransformer.checkpoint import read_config
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
from minitransformer.engine import (
    MetricsLog,
    attach_progress,
    autocast,
    best_model_checkpoint,
    check_amp,
    create_trainer,
    find_learning_rate,
    resolve_device,
    scale_learning_rates,
    set_cpu_threads,
    split_tensors,
    warmup_linear,
)
from minitransformer.errors import run_cli
from minitransformer.io import write_json_atomic
from minitransformer.optim import parameter_groups
from minitransformer.options import options_to_json
from minitransformer.tokenization import Tokenizer

from .cli import parse_args

CLASSIFIER_META = "classifier.json"  # label names, classification-token position, max length


# -- data -----------------------------------------------------------------------------------------


def load_task(args: Namespace) -> tuple[LabeledTexts, LabeledTexts, str]:
    """(train, test, description). TREC from the data folder, or the user's labelled file(s)."""
    if args.task in ("trec-6", "trec-50"):
        if args.download:
            from minitransformer.data.download import download_trec

            try:
                load_trec(args.data_dir, train_file=args.train_file)
            except FileNotFoundError:
                download_trec(args.data_dir)
        train, test = load_trec(args.data_dir, fine=args.task == "trec-50", train_file=args.train_file)
        return train, test, f"{args.task} ({args.train_file}, test TREC_10.label)"
    path = Path(args.task)
    if not path.is_file():
        raise FileNotFoundError(f"--task {args.task}: not trec-6, trec-50 or an existing labelled file")
    data = read_labeled_file(path)
    if len(data.label_names) < 2:
        raise ValueError(
            f"{path} has a single label {data.label_names}: a classifier needs at least two classes"
        )
    if args.test_file:
        return (
            data,
            read_labeled_file(args.test_file, data.label_names),
            f"{path.name} (test {args.test_file.name})",
        )
    train, test = stratified_split(data, fraction=0.1, seed=0)
    return train, test, f"{path.name} (10 % held out as test)"


def make_loader(ids, labels, tokenizer, args, seed: int, train: bool) -> torch.utils.data.DataLoader:
    """Dynamic padding (each batch to its own longest row), with length bucketing for training."""
    dataset = ClassificationDataset(ids, labels)
    pad_to = max(map(len, ids)) if args.pad_to_max else None

    def collate(batch):
        return collate_classification(batch, tokenizer.pad_id, tokenizer.cls_id, pad_to=pad_to)

    if train:
        if args.bucketing and not args.pad_to_max:
            sampler = LengthBucketSampler(dataset.lengths(), args.batch_size, shuffle=True, seed=seed)
        else:
            generator = torch.Generator().manual_seed(seed)
            sampler = torch.utils.data.BatchSampler(
                torch.utils.data.RandomSampler(dataset, generator=generator), args.batch_size, drop_last=False
            )
        return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)
    # evaluation: sorted by length, so batches pad little; order does not matter for metrics
    order = sorted(range(len(dataset)), key=lambda i: len(ids[i]))
    batches = [order[i : i + 64] for i in range(0, len(order), 64)]
    return torch.utils.data.DataLoader(dataset, batch_sampler=batches, collate_fn=collate)


# -- model ----------------------------------------------------------------------------------------


def fine_tuning_config(args: Namespace, num_classes: int, **extra) -> FineTuningConfig:
    return FineTuningConfig(
        num_classes=num_classes,
        dropout=args.dropout,
        initializer_range=args.initializer_range,
        lm_loss_coef=args.lm_coef,
        adapters_dim=args.adapters_dim if args.scheme == "adapters" else 0,
        pooling=args.pooling,
        pooling_layer_start=args.layer_start,
        **extra,
    )


def load_model(args: Namespace, num_classes: int, train_texts: list[str]):
    """(model, tokenizer, clf_position, loading info) for --pretrained DIR | hf:DIR | none."""
    source = args.pretrained
    if source.startswith("hf:"):
        from minitransformer import hf

        path = Path(source[3:])
        position = hf.clf_position(path)  # "start": BERT, whose pooler the classifier uses
        ft = fine_tuning_config(args, num_classes, pooler=position == "start")
        model, info = hf.from_hf(path, task="classification", fine_tuning_config=ft, output_loading_info=True)
        tokenizer = hf.load_tokenizer(path)
    elif source == "none":
        ft = fine_tuning_config(args, num_classes)
        if args.architecture_from:
            tokenizer = Tokenizer.from_pretrained(args.architecture_from)
            config = read_config(args.architecture_from)[1]
        else:  # the `pretrain` tiny preset's shape, with a tokenizer trained on the training texts
            from pretrain.cli import parse_args as pretrain_options
            from pretrain.run import model_config

            tokenizer = Tokenizer.train(train_texts, vocab_size=args.vocab_size)
            config = model_config(pretrain_options([]), tokenizer.vocab_size)
        config = dataclasses.replace(config, num_embeddings=tokenizer.vocab_size)
        model = TransformerWithClfHead(config, ft)
        info = {"added": ["(everything: random initialisation)"], "discarded": []}
        position = "end" if config.causal else "start"
    else:
        path = Path(source)
        ft = fine_tuning_config(args, num_classes)
        model, info = TransformerWithClfHead.from_pretrained(path, ft, output_loading_info=True)
        tokenizer = Tokenizer.from_pretrained(path)
        position = "end" if model.config.causal else "start"
    if tokenizer.vocab_size > model.config.num_embeddings or (
        not source.startswith("hf:") and tokenizer.vocab_size != model.config.num_embeddings
    ):
        raise ValueError(
            f"{source}: the tokenizer has {tokenizer.vocab_size} tokens but the model's vocabulary is "
            f"{model.config.num_embeddings}: the directory mixes files from different runs"
        )
    if "cls" not in tokenizer.special_ids:
        raise ValueError(f"{source}: the tokenizer has no classification token [CLS]; add it and re-save")
    if args.clf_position != "auto":
        position = args.clf_position
    if args.lm_coef and not model.config.causal:
        raise ValueError("--lm-coef needs a causal model: the auxiliary LM loss predicts the next token")
    return model, tokenizer, position, info


def freeze_for_scheme(model: TransformerWithClfHead, scheme: str) -> None:
    """features: train the head only; adapters: adapters + head; finetune/gradual: everything (for now)."""
    if scheme in ("features", "adapters"):
        for name, p in model.transformer.named_parameters():
            p.requires_grad = scheme == "adapters" and name.startswith(("adapters_1.", "adapters_2."))


def attach_gradual_unfreezing(trainer: Engine, model: TransformerWithClfHead) -> None:
    """ULMFiT's gradual unfreezing: epoch 1 trains the head, each later epoch one more layer from the top."""
    layers = model.config.num_layers

    def unfreeze(engine: Engine) -> None:
        thawed = engine.state.epoch - 1  # layers trainable this epoch, counted from the top
        for p in model.transformer.parameters():
            p.requires_grad = False
        for i in range(max(0, layers - thawed), layers):
            for module in model.transformer.layer_modules(i):
                module.requires_grad_(True)
        if thawed > layers:
            for module in model.transformer.embedding_modules():
                module.requires_grad_(True)
        for module in model.head_modules():
            module.requires_grad_(True)
        if model.config.sinusoidal_embeddings:
            model.transformer.position_embeddings.weight.requires_grad_(False)

    trainer.add_event_handler(Events.EPOCH_STARTED, unfreeze)


def build_optimizer(args: Namespace, model: TransformerWithClfHead):
    weight_decay = 0.0 if args.prior_wd else args.weight_decay  # PriorWD replaces plain decay
    if args.llrd != 1.0:
        groups = st.llrd_parameter_groups(model, args.lr, args.llrd, weight_decay)
    else:
        groups = parameter_groups(model, weight_decay)
    optimizer = st.make_optimizer(groups, args.optimizer, lr=args.lr)
    if args.prior_wd:
        st.attach_prior_wd(optimizer, model, args.prior_wd)
    return optimizer


# -- evaluation -----------------------------------------------------------------------------------


def create_evaluator(model: torch.nn.Module, device, amp_dtype, num_classes: int) -> Engine:
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
    ConfusionMatrix(num_classes).attach(evaluator, "confusion")
    return evaluator


def summarize(metrics: dict, label_names: list[str]) -> dict:
    """JSON-ready test metrics: accuracy, error, macro-F1, per-class precision/recall/F1, confusion."""
    f1 = metrics["f1"].tolist()
    return {
        "accuracy": metrics["accuracy"],
        "error_rate": 1.0 - metrics["accuracy"],
        "macro_f1": sum(f1) / len(f1),
        "loss": metrics["loss"],
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f)}
            for name, p, r, f in zip(label_names, metrics["precision"], metrics["recall"], f1)
        },
        "confusion": metrics["confusion"].int().tolist(),
    }


# -- one seed -------------------------------------------------------------------------------------


def run_seed(args: Namespace, seed: int, data: tuple, out: Path, log: MetricsLog) -> dict:
    started = time.time()
    train_all, test, task_note = data
    train, valid = stratified_split(
        train_all, fraction=args.valid_fraction, seed=0
    )  # same split for every seed
    torch.manual_seed(seed)
    device = resolve_device(args.device)
    amp_dtype = check_amp(args.amp, device)
    labels = train.label_names

    model, tokenizer, position, info = load_model(args, len(labels), train.texts)
    print(
        f"[seed {seed}] {args.pretrained}: discarded {info['discarded'] or 'nothing'}; added {info['added']}"
    )
    st.reinit_top_layers(model, args.reinit_layers)
    if args.mixout:
        st.apply_mixout(model, args.mixout)
    freeze_for_scheme(model, args.scheme)
    model.to(device)
    optimizer = build_optimizer(args, model)

    max_len = args.max_len or model.config.num_max_positions
    encode = lambda texts: encode_for_classification(texts, tokenizer, max_len, position)  # noqa: E731
    train_loader = make_loader(encode(train.texts), train.labels, tokenizer, args, seed, train=True)
    valid_loader = make_loader(encode(valid.texts), valid.labels, tokenizer, args, seed, train=False)
    test_loader = make_loader(encode(test.texts), test.labels, tokenizer, args, seed, train=False)
    total_steps = args.max_steps or args.epochs * len(train_loader)
    max_epochs = math.ceil(total_steps / len(train_loader))  # the last one may be partial

    def loss_fn(m: torch.nn.Module, batch: dict) -> torch.Tensor:
        batch = {k: v.to(device) for k, v in batch.items()}
        lm_labels = None
        if args.lm_coef:  # predict every real token; not the padding, not the classification token
            lm_labels = batch["input_ids"].masked_fill(batch["padding_mask"] | batch["clf_tokens_mask"], -100)
        return m(
            batch["input_ids"],
            batch["clf_tokens_mask"],
            clf_labels=batch["labels"],
            padding_mask=batch["padding_mask"],
            lm_labels=lm_labels,
        )[1]

    def new_trainer() -> Engine:
        return create_trainer(
            model, optimizer, loss_fn, split_tensors, 1, args.max_norm or None, device, amp_dtype, seed
        )

    if args.lr_find:
        suggestion = find_learning_rate(
            new_trainer(), model, optimizer, train_loader,
            plot_path=out / "plots" / f"lr_finder_seed_{seed}.png",
        )  # fmt: skip
        scale_learning_rates(optimizer, suggestion / args.lr)
        print(
            f"[seed {seed}] learning-rate finder suggests {suggestion:.3g} (was {args.lr:.3g}); fine-tuning with it"
        )
        log.log("lr_find", 0, seed=seed, suggestion=suggestion)
    trainer = new_trainer()
    if args.scheme == "gradual":
        attach_gradual_unfreezing(trainer, model)
    scheduler = warmup_linear(optimizer, args.warmup_steps, total_steps)
    trainer.add_event_handler(Events.ITERATION_STARTED, scheduler)
    swa_model = None
    if args.swa_start:
        if args.swa_start > max_epochs:
            raise ValueError(f"--swa-start {args.swa_start} is after the last epoch ({max_epochs})")
        swa_model = st.attach_swa(
            trainer, model, optimizer, args.swa_start, args.swa_lr, lr_scheduler=scheduler
        )
    lr_history = st.track_group_learning_rates(trainer, optimizer)
    RunningAverage(output_transform=lambda o: o["loss"], alpha=0.9).attach(trainer, "avg_loss")
    if not args.no_progress:
        attach_progress(trainer, lambda e: {"lr": max(g["lr"] for g in optimizer.param_groups)})

    @trainer.on(Events.EPOCH_STARTED)
    def new_epoch(engine: Engine) -> None:
        if isinstance(train_loader.batch_sampler, LengthBucketSampler):
            train_loader.batch_sampler.set_epoch(engine.state.epoch)
        engine.state.epoch_tokens, engine.state.epoch_start = 0, time.time()

    @trainer.on(Events.ITERATION_COMPLETED)
    def count_tokens(engine: Engine) -> None:
        engine.state.epoch_tokens += engine.state.batch["input_ids"].numel()

    @trainer.on(Events.ITERATION_COMPLETED(every=10))
    def log_train(engine: Engine) -> None:
        lr = max(g["lr"] for g in optimizer.param_groups)
        log.log("train", engine.state.iteration, seed=seed, loss=engine.state.output["loss"], lr=lr)

    evaluator = create_evaluator(model, device, amp_dtype, len(labels))
    checkpoints = out / f"seed_{seed}" / "checkpoints"
    best = best_model_checkpoint(model, checkpoints, trainer, "accuracy", sign=1.0)
    evaluator.add_event_handler(Events.COMPLETED, best)

    def validate(engine: Engine) -> None:
        if getattr(engine.state, "validated_at", None) == engine.state.iteration:
            return  # already evaluated at this step
        engine.state.validated_at = engine.state.iteration
        evaluator.run(valid_loader)
        m = evaluator.state.metrics
        log.log("valid", engine.state.iteration, seed=seed, loss=m["loss"], accuracy=m["accuracy"])

    if args.eval_every:
        trainer.add_event_handler(Events.ITERATION_COMPLETED(every=args.eval_every), validate)
    trainer.add_event_handler(Events.COMPLETED, validate)  # a run may stop mid-epoch (--max-steps)

    @trainer.on(Events.EPOCH_COMPLETED)
    def end_of_epoch(engine: Engine) -> None:
        validate(engine)
        seconds = time.time() - engine.state.epoch_start
        log.log("epoch", engine.state.iteration, seed=seed, epoch=engine.state.epoch,
                tokens=engine.state.epoch_tokens, seconds=seconds)  # fmt: skip

    trainer.run(train_loader, max_iters=total_steps, epoch_length=len(train_loader))
    if trainer.state.iteration < total_steps or not math.isfinite(trainer.state.output["loss"]):
        raise FloatingPointError(
            f"seed {seed}: the loss became {trainer.state.output['loss']}; training stopped"
        )

    if swa_model is not None:  # the averaged weights are the model evaluated and saved
        final_model = swa_model.module
    else:  # the best validation checkpoint
        state = torch.load(best.last_checkpoint, map_location="cpu", weights_only=True)  # the full path
        Checkpoint.load_objects({"model": model}, state)
        final_model = model
    if args.mixout:
        st.remove_mixout(final_model)
    evaluator = create_evaluator(final_model, device, amp_dtype, len(labels))
    evaluator.run(valid_loader)
    best_valid = evaluator.state.metrics["accuracy"]
    evaluator.run(test_loader)
    result = {
        "seed": seed,
        "valid_accuracy": best_valid,
        "test": summarize(evaluator.state.metrics, labels),
        "wall_time_s": time.time() - started,  # model loading, training, validation and test
    }
    log.log(
        "test",
        trainer.state.iteration,
        seed=seed,
        accuracy=result["test"]["accuracy"],
        valid_accuracy=best_valid,
    )
    print(
        f"[seed {seed}] test accuracy {result['test']['accuracy']:.4f} (best valid {best_valid:.4f}) on {task_note}"
    )

    model_dir = out / f"seed_{seed}"
    final_model.cpu().save_pretrained(model_dir, tokenizer=tokenizer)
    write_json_atomic(
        model_dir / CLASSIFIER_META, {"label_names": labels, "clf_position": position, "max_len": max_len}
    )
    shutil.rmtree(checkpoints, ignore_errors=True)
    write_seed_plots(out, seed, result, labels, lr_history if args.llrd != 1.0 else None)
    return result


def write_seed_plots(out: Path, seed: int, result: dict, labels: list[str], lr_history: dict | None) -> None:
    from minitransformer import plots

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


def prepare_output_dir(args: Namespace) -> Path:
    out = Path(args.output_dir)
    if (out / "results.json").exists() or (out / "metrics.jsonl").exists():
        if not args.overwrite:
            raise FileExistsError(
                f"--output-dir {out} already holds a run: pass --overwrite to replace it or choose another directory"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def adapt(args: Namespace) -> dict:
    """Run every seed; write results.json and the plots; return the results."""
    if args.device == "cpu" or not torch.cuda.is_available():
        set_cpu_threads(args.threads)
    data = load_task(args)
    if args.scheme == "adapters" and args.adapters_dim <= 0:
        raise ValueError(f"--scheme adapters needs --adapters-dim > 0, got {args.adapters_dim}")
    out = prepare_output_dir(args)
    write_json_atomic(out / "training_args.json", options_to_json(args))
    log = MetricsLog(out / "metrics.jsonl")
    started = time.time()
    results: dict = {"task": data[2], "pretrained": args.pretrained, "scheme": args.scheme}
    if args.baseline:
        from .baseline import describe, tfidf_baseline

        split = stratified_split(data[0], fraction=args.valid_fraction, seed=0)  # run_seed's validation
        predictions, baseline = tfidf_baseline(data[0], data[1], split if args.tune else None)
        results["baseline"] = {**baseline, "test": score_predictions(predictions, data[1])}
        print(
            f"TF-IDF + LinearSVC baseline ({describe(baseline['config'])}; {baseline['selected_on']}): "
            f"test accuracy {100 * results['baseline']['test']['accuracy']:.2f} %"
        )
    if args.pretrained is not None:
        runs = [run_seed(args, seed, data, out, log) for seed in args.seeds]
        accuracies = [r["test"]["accuracy"] for r in runs]
        results["test_accuracy"] = mean_std(accuracies)
        results["test_macro_f1"] = mean_std([r["test"]["macro_f1"] for r in runs])
        results["runs"] = runs
        from minitransformer import plots

        plots.plot_training_curves(
            out / "metrics.jsonl", title=f"Fine-tuning on {data[2]}", path=out / "plots" / "curves.png"
        )
        summary = results["test_accuracy"]
        print(
            f"test accuracy over {len(runs)} seed(s): {100 * summary['mean']:.2f} ± {100 * summary['std']:.2f} % "
            f"(min {100 * summary['min']:.2f}, max {100 * summary['max']:.2f}); every run: "
            + ", ".join(f"{100 * a:.2f}" for a in accuracies)
        )
    results["wall_time_s"] = time.time() - started
    write_json_atomic(out / "results.json", results)
    return results


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
