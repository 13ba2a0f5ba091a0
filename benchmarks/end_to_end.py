"""Benchmark item 6: `python -m pretrain` vs Hugging Face `Trainer`, end to end (issue 18, items 2 and 7).

The same model size (the `tiny` preset), tokenizer (ours, trained on WikiText-2 valid), data (WikiText-2
valid to train, the first lines of test to evaluate), steps, batch, AdamW, warm-up + cosine schedule,
gradient clipping and masking (our `mask_tokens`, BERT's 80/10/10, in the Trainer's collator):
  - ours: `python -m pretrain --preset tiny`, causal and masked LM (the model's own loss path);
  - Hugging Face: `Trainer` with `GPT2LMHeadModel` / `BertForMaskedLM` (sdpa, ReLU) of the same shape.
Each run is a fresh subprocess timed from start to exit (imports, binarizing, training, the final
evaluation, and for ours the checkpoints and plots), alternating ours / theirs, causal then masked.
The same run gives the masked-vs-causal time of ours (the pretraining table) and the share of a run
that data preparation (binarizing both splits) takes.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import Result, machine_line
from minitransformer.presets import PRETRAIN_PRESETS

OBJECTIVES = ("clm", "mlm")


def write_corpus(
    directory: Path, data_dir: str | None, valid_lines: int | None, test_lines: int | None
) -> None:
    """The first `valid_lines` of WikiText-2 valid and `test_lines` of test (None: all) into `directory`."""
    from minitransformer.data.wikitext import wikitext_path

    directory.mkdir(parents=True)
    for split, lines in (("valid", valid_lines), ("test", test_lines)):
        text = wikitext_path("wikitext-2", split, data_dir).read_text(encoding="utf-8").splitlines(True)
        (directory / f"wiki.{split}.tokens").write_text("".join(text[:lines]), encoding="utf-8")


TOY = dict(embed_dim=64, hidden_dim=256, num_heads=2, num_layers=2, num_max_positions=32, batch_size=4)
# Both sides: AdamW, GPT-2's default dropout (0.1), the cosine schedule (transformers' "cosine") and a
# learned position table (GPT-2's and BERT's), whatever the tiny preset's own optimizer, dropout,
# schedule and positions.
TRAINING = dict(
    weight_decay=0.01, max_norm=1.0, mlm_probability=0.15, eval_batch_size=32, seed=0, optimizer="adamw",
    dropout=0.1, schedule="cosine", rotary=False,
)  # fmt: skip


def settings(quick: bool) -> dict:
    """What both sides train with: the `tiny` preset (or, for --quick, a toy shape) and TRAINING."""
    return {**PRETRAIN_PRESETS["tiny"], **(TOY if quick else {}), **TRAINING}


def model_options(quick: bool) -> list[str]:
    """`settings(quick)` as `python -m pretrain` options."""
    values = {**(TOY if quick else {}), **TRAINING}
    return ["--preset", "tiny", *(as_flag(name, value) for name, value in values.items())]


def as_flag(name: str, value: object) -> str:
    """One option as `python -m pretrain` spells it: `--embed-dim=64`, or `--rotary` / `--no-rotary`."""
    name = name.replace("_", "-")
    if isinstance(value, bool):
        return f"--{name}" if value else f"--no-{name}"
    return f"--{name}={value}"


def ours(
    objective: str, corpus: Path, tokenizer: Path, work: Path, steps: int, quick: bool, threads: int,
    extra: tuple[str, ...] = (), name: str = "",
) -> dict:  # fmt: skip
    """`python -m pretrain` (with `extra` options last); its final evaluation (whole test slice)."""
    from minitransformer.runs.metrics_log import MetricsLog

    out = work / f"ours-{objective}{name}"
    argv = [
        "--dataset", str(corpus), "--tokenizer", str(tokenizer), "--output-dir", str(out),
        "--cache-dir", str(work / f"cache-{objective}"), "--objective", objective,
        "--max-steps", str(steps), "--warmup-steps", str(max(1, steps // 10)), "--eval-every", str(steps),
        "--max-eval-batches", "1", "--sample-prompts", "--no-progress", "--threads", str(threads),
        *model_options(quick), *extra,
    ]  # fmt: skip
    seconds = timed([sys.executable, "-m", "pretrain", *argv])
    final = [e for e in MetricsLog.read(out / "metrics.jsonl") if e["event"] == "final"][0]
    return {"seconds": seconds, "loss": final["loss"]}


def theirs(
    objective: str, corpus: Path, tokenizer: Path, work: Path, steps: int, quick: bool, threads: int,
    seed: int = TRAINING["seed"],
) -> dict:  # fmt: skip
    """Hugging Face `Trainer` in a subprocess (`child` below)."""
    args = [objective, str(corpus), str(tokenizer), str(work / f"hf-{objective}-{seed}"), str(steps)]
    args += [str(quick), str(threads), str(seed)]
    result = {}
    seconds = timed([sys.executable, "-m", "benchmarks.end_to_end", "--child", *args], result)
    return {"seconds": seconds, "loss": result["loss"]}


def timed(command: list[str], result: dict | None = None) -> float:
    """Wall seconds of `command` run to its end; its last stdout line (JSON) goes into `result`."""
    start = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} … failed:\n{out.stderr[-3000:]}")
    if result is not None:
        result.update(json.loads(out.stdout.strip().splitlines()[-1]))
    return seconds


def child(
    objective: str, corpus: str, tokenizer_dir: str, out: str, steps: str, quick: str, threads: str, seed: str
) -> None:
    """One Trainer run; prints {"loss": final evaluation loss} as its last line."""
    import torch
    from transformers import Trainer, TrainingArguments

    from benchmarks.throughput import Shape, build_bert, build_gpt2
    from minitransformer.data.masking import mask_tokens
    from minitransformer.data.wikitext import LMBlockDataset, binarize
    from minitransformer.presets import config_from_options
    from minitransformer.tokenization import Tokenizer

    torch.set_num_threads(int(threads))
    values = {**settings(quick == "True"), "seed": int(seed)}
    tokenizer = Tokenizer.from_pretrained(tokenizer_dir)
    config = config_from_options(values, tokenizer.vocab_size, mlm=objective == "mlm")
    train, test = (
        binarize(Path(corpus) / f"wiki.{split}.tokens", tokenizer, Path(out) / "cache")
        for split in ("valid", "test")
    )
    shape = Shape("run", config.embed_dim, config.hidden_dim, config.num_heads, config.num_layers,
                  config.num_max_positions, config.vocab_size, values["batch_size"])  # fmt: skip
    torch.manual_seed(values["seed"])
    model = build_bert(shape) if config.mlm else build_gpt2(shape, "sdpa")
    special, mask_id = list(tokenizer.special_ids.values()), tokenizer.special_ids.get("mask")

    def collate(rows: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Blocks → a batch; masked LM: our BERT 80/10/10 masking (`mask_tokens`, as pretrain's)."""
        x = torch.stack(rows)  # (B, T)
        if not config.mlm:
            return {"input_ids": x, "labels": x}  # GPT2LMHeadModel shifts the labels itself
        inputs, labels = mask_tokens(x, config.vocab_size, special, mask_id, values["mlm_probability"])
        return {"input_ids": inputs, "labels": labels}

    args = TrainingArguments(
        output_dir=out, max_steps=int(steps), per_device_train_batch_size=values["batch_size"],
        per_device_eval_batch_size=values["eval_batch_size"], learning_rate=values["lr"],
        warmup_steps=max(1, int(steps) // 10), lr_scheduler_type="cosine", weight_decay=values["weight_decay"],
        adam_epsilon=1e-8, max_grad_norm=values["max_norm"], use_cpu=True, report_to="none",
        save_strategy="no", eval_strategy="no", logging_strategy="no", disable_tqdm=True,
        remove_unused_columns=False, dataloader_num_workers=0, seed=values["seed"],
    )  # fmt: skip
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=LMBlockDataset(train, config.num_max_positions),
        data_collator=collate,
    )
    trainer.train()
    loss = trainer.evaluate(LMBlockDataset(test, config.num_max_positions))["eval_loss"]
    print(json.dumps({"loss": loss}))


def run(quick: bool = False, data_dir: str | None = None, threads: int = 1) -> list[Result]:
    """Alternate ours / Trainer, causal then masked; print a table; one result per objective, plus
    our masked-vs-causal wall time and data preparation's share of a run."""
    import torch

    from minitransformer.data.wikitext import binarize, read_lines
    from minitransformer.tokenization import Tokenizer

    steps = 3 if quick else 40
    print(f"\n[end-to-end] {steps} steps, {'toy shape' if quick else 'tiny preset'} | {machine_line()}")
    with tempfile.TemporaryDirectory() as tmp_name:
        work = Path(tmp_name)
        corpus = work / "corpus"
        write_corpus(corpus, data_dir, 300 if quick else None, 40 if quick else 400)
        tokenizer = Tokenizer.train(read_lines(corpus / "wiki.valid.tokens"), vocab_size=8000)
        tokenizer.save_pretrained(work / "tokenizer")
        start = time.perf_counter()
        for split in ("valid", "test"):
            binarize(corpus / f"wiki.{split}.tokens", tokenizer, work / "cache-prep")
        prep_seconds = time.perf_counter() - start
        runs = {}
        for objective in OBJECTIVES:
            for side, fn in (("ours", ours), ("hf", theirs)):
                runs[side, objective] = fn(objective, corpus, work / "tokenizer", work, steps, quick, threads)
    print(f"{'objective':<9} {'side':<5} {'wall s':>7} {'test loss':>9} {'test ppl':>9}")
    results = []
    for objective in OBJECTIVES:
        for side in ("ours", "hf"):
            r = runs[side, objective]
            print(f"{objective:<9} {side:<5} {r['seconds']:7.1f} {r['loss']:9.3f} {math.exp(r['loss']):9.1f}")
        a, b = runs["ours", objective], runs["hf", objective]
        note = f"test ppl ours {math.exp(a['loss']):.1f}, baseline {math.exp(b['loss']):.1f}"
        results.append(Result(f"end-to-end-{objective}", a["seconds"], b["seconds"], "s", False, note))
    mlm_vs_clm = runs["ours", "mlm"]["seconds"] / runs["ours", "clm"]["seconds"]
    share = prep_seconds / runs["ours", "clm"]["seconds"]  # data preparation's share of a training run
    print(f"ours: masked LM took {mlm_vs_clm:.2f}x the causal run's wall time; binarizing both splits took")
    print(f"{prep_seconds:.2f} s = {share:.1%} of the causal run ({torch.get_num_threads()} threads)")
    note = f"ours masked LM vs causal; binarizing = {share:.1%} of the causal run"
    mlm_seconds, clm_seconds = runs["ours", "mlm"]["seconds"], runs["ours", "clm"]["seconds"]
    results.append(Result("pretrain-mlm-vs-clm", mlm_seconds, clm_seconds, "s", False, note))
    return results


if __name__ == "__main__":
    if len(sys.argv) == 10 and sys.argv[1] == "--child":
        child(*sys.argv[2:])
    else:
        sys.exit("usage: python -m benchmarks --only end-to-end  (this entry point is for its subprocesses)")
