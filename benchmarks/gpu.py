"""Item 5 (GPU), one prepared script (< 8 minutes on an H100/H200): `python -m benchmarks --only gpu`.

1. Training steps of the `hands-on` preset (embed 410, hidden 2100, 10 heads, 16 layers,
   256 positions, vocab 28996, batch 32, dropout 0.1): ours bf16 autocast + SDPA + torch.compile vs
   ours eager fp32 vs `transformers.GPT2LMHeadModel` under the same bf16 autocast; tokens/s and MFU
   against the GPU's dense bf16 peak (`minitransformer.training.flops.GPU_PEAK_TFLOPS`, data sheet).
   410 / 10 = 41-dim heads are not a multiple of 8: PyTorch pads them for its flash kernel.
2. Graph breaks of our forward under torch.compile (`torch._dynamo.explain`).
3. KV-cache generation tokens/s (greedy, bf16, batch 1).
4. 200 steps of `python -m pretrain --preset hands-on --amp bf16 --compile` on WikiText-2 from the data
   folder (train on valid, evaluate on test), printing the training loss as it falls.

Without a CUDA GPU, the same code paths run once on the CPU at a toy size as a smoke check and say so.
"""

from __future__ import annotations

import contextlib
import datetime
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks import Result, interleaved, machine_line
from benchmarks.end_to_end import write_corpus
from benchmarks.throughput import QUICK, Shape, build_gpt2, build_ours, train_step
from minitransformer.runs.metrics_log import MetricsLog
from minitransformer.training.flops import peak_flops

HANDS_ON = Shape.from_preset("hands-on", batch_size=32)


def sides(s: Shape, x: torch.Tensor, compile_model: bool) -> dict[str, Callable[[], None]]:
    """Training-step closures for the three configurations, each synchronising the device at the end."""
    device = x.device
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16)  # noqa: E731
    torch.manual_seed(0)
    fast, eager, gpt2 = build_ours(s).to(device), build_ours(s).to(device), build_gpt2(s, "sdpa").to(device)
    fast_forward = torch.compile(fast) if compile_model else fast

    def synced(step: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            step()
            if device.type == "cuda":
                torch.cuda.synchronize()

        return run

    def under(context: Callable[[], contextlib.AbstractContextManager], loss_fn):
        def loss():
            with context():
                return loss_fn()

        return loss

    return {
        "ours bf16+sdpa+compile": synced(
            train_step(fast, under(autocast, lambda: fast_forward(x, labels=x)[1]))
        ),
        "ours eager fp32": synced(train_step(eager, lambda: eager(x, labels=x)[1])),
        "gpt2 bf16 (HF, sdpa)": synced(train_step(gpt2, under(autocast, lambda: gpt2(x, labels=x).loss))),
    }


def graph_breaks(s: Shape, x: torch.Tensor) -> int:
    """Graph breaks of our model's forward under torch.compile (0: one graph)."""
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(build_ours(s).to(x.device))(x)
    return explanation.graph_break_count


def generation_speed(s: Shape, device: torch.device) -> float:
    """Greedy KV-cache decoding tokens/s, from a prompt of T/8 tokens to the full context (bf16 on a
    GPU), batch 1."""
    model = build_ours(s).to(device).eval()
    prompt = torch.randint(0, s.vocab_size, (1, s.seq_len // 8), device=device)
    new_tokens = s.seq_len - prompt.size(1)
    dtype = torch.bfloat16 if device.type == "cuda" else None
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        model.generate(prompt, 8, temperature=0)  # warm-up
        start = time.perf_counter()
        model.generate(prompt, new_tokens, temperature=0)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return new_tokens / (time.perf_counter() - start)


def pretrain_run(on_gpu: bool, steps: int) -> list[tuple[int, float]]:
    """`python -m pretrain` for `steps` steps on WikiText-2 from the data folder (CPU: its first lines,
    a toy model); the (step, loss) log."""
    if on_gpu:
        options = ["--preset", "hands-on", "--compile", "--amp", "bf16", "--batch-size", "32"]
        options += ["--warmup-steps", "20", "--eval-every", "100", "--log-every", "20"]
    else:
        options = ["--preset", "tiny", "--embed-dim", "64", "--hidden-dim", "256", "--num-layers", "2"]
        options += ["--num-max-positions", "32", "--batch-size", "4", "--log-every", "1"]
    with tempfile.TemporaryDirectory() as tmp:
        corpus, out = Path(tmp) / "wikitext-2", Path(tmp) / "run"
        write_corpus(corpus, None, None if on_gpu else 300, None if on_gpu else 40)
        command = [
            sys.executable,
            "-m",
            "pretrain",
            *options,
            "--max-steps",
            str(steps),
            "--dataset",
            str(corpus),
        ]
        command += ["--max-eval-batches", "5", "--sample-prompts", "--no-progress", "--output-dir", str(out)]
        subprocess.run(command, check=True, capture_output=True, text=True)
        return [
            (e["step"], e["loss"]) for e in MetricsLog.read(out / "metrics.jsonl") if e["event"] == "train"
        ]


def run(quick: bool = False) -> list[Result]:
    """Benchmark on the GPU, or smoke-test the code paths on the CPU when there is none."""
    on_gpu = torch.cuda.is_available()
    s, device = (HANDS_ON, torch.device("cuda")) if on_gpu else (QUICK, torch.device("cpu"))
    print(f"\n[gpu] {datetime.date.today()} | ", end="")
    if on_gpu:
        torch.backends.cuda.matmul.allow_tf32 = False  # "fp32" means fp32 here
        print(f"{torch.cuda.get_device_name()} | torch {torch.__version__}")
    else:
        print(
            f"no CUDA GPU: CPU smoke run of the GPU script's code path at a toy size, NOT a GPU measurement | {machine_line()}"
        )
    x = torch.randint(0, s.vocab_size, (s.batch_size, s.seq_len), device=device)
    seconds = interleaved(
        sides(s, x, compile_model=on_gpu), repeats=3 if quick or not on_gpu else 10, warmup=3
    )
    tokens = s.batch_size * s.seq_len
    peak, source = peak_flops(device, torch.bfloat16, None)
    print(f"shape {s} | MFU against {source}")
    for name, t in seconds.items():
        mfu = f"{s.flops_per_token() * tokens / t / peak:6.1%}" if peak else "n/a"
        print(f"{name:<24} {t * 1e3:8.1f} ms/step {tokens / t:10.0f} tokens/s  MFU {mfu}")
    print(f"graph breaks in our forward under torch.compile: {graph_breaks(s, x)}")
    print(f"KV-cache generation (greedy, batch 1): {generation_speed(s, device):.0f} tokens/s")
    log = pretrain_run(on_gpu, steps=200 if on_gpu else 3)
    print(
        "python -m pretrain, training loss by step: " + ", ".join(f"{step}: {loss:.2f}" for step, loss in log)
    )
    if not on_gpu:
        return []
    ours, *_, gpt2 = seconds.values()
    return [Result("gpu-tutorial", tokens / ours, tokens / gpt2, "tokens/s")]
