"""Item 5 (GPU): the hands-on's `tutorial` preset, bf16 autocast + SDPA + torch.compile vs eager fp32
vs `transformers.GPT2LMHeadModel` under the same bf16 autocast.

Training steps (forward + backward + AdamW, dropout 0.1) at embed 410, hidden 2100, 10 heads,
16 layers, 256 positions, vocab 28996, batch 32; tokens/s and MFU against the dense bf16 peak of an
H100/H200 SXM, 989 TFLOP/s (NVIDIA's datasheet figure without sparsity; H200 has H100's compute).
FLOPs per token use the same 6N + 12LTE formula as the CPU benchmark. Note that 410 / 10 = 41-dim
heads are not a multiple of 8: PyTorch pads them to 48 for its flash kernel, which costs a little.

Without a CUDA GPU, the same code path runs once on the CPU at a toy size as a smoke check and says so.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Callable

import torch

from benchmarks import Result, interleaved, machine_line
from benchmarks.throughput import QUICK, Shape, build_gpt2, build_ours, train_step

TUTORIAL = Shape.from_preset("tutorial", batch_size=32)
PEAK_BF16_FLOPS = 989e12  # H100/H200 SXM dense bf16


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


def run(quick: bool = False) -> list[Result]:
    """Benchmark on the GPU, or smoke-test the code path on the CPU when there is none."""
    on_gpu = torch.cuda.is_available()
    s, device = (TUTORIAL, torch.device("cuda")) if on_gpu else (QUICK, torch.device("cpu"))
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
    print(f"shape {s} | MFU against {PEAK_BF16_FLOPS / 1e12:.0f} TFLOP/s (dense bf16 peak)")
    for name, t in seconds.items():
        print(
            f"{name:<24} {t * 1e3:8.1f} ms/step {tokens / t:10.0f} tokens/s  MFU {s.flops_per_token() * tokens / t / PEAK_BF16_FLOPS:6.1%}"
        )
    if not on_gpu:
        return []
    ours, *_, gpt2 = seconds.values()
    return [Result("gpu-tutorial", tokens / ours, tokens / gpt2, "tokens/s")]
