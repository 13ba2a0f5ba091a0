"""Model FLOPs utilisation (MFU): how much of the hardware's peak a training run uses.

FLOPs per token come from the config (PaLM's 6N + attention, as nanoGPT's `estimate_mfu`); the peak
is given by the user (`--peak-tflops`), measured once with a short matmul on a CPU, or looked up by
GPU name. MFU = tokens/s × FLOPs per token ÷ peak FLOP/s; it answers "is my speed normal?".
"""

from __future__ import annotations

import time

import torch

from ..config import TransformerConfig

# Dense peak TFLOP/s from NVIDIA's data sheets (SXM parts; PCIe cards are slower), by a
# substring of the device name: (bf16/fp16 tensor cores, fp32 without TF32).
GPU_PEAK_TFLOPS = {
    "H200": (989.0, 67.0),
    "H100": (989.0, 67.0),
    "A100": (312.0, 19.5),
    "L4": (121.0, 30.3),
    "V100": (125.0, 15.7),
    "T4": (65.0, 8.1),
}


def block_weights(config: TransformerConfig) -> int:
    """Weight-matrix parameters of the blocks: per layer the attention projections (4·E²) and the
    feed-forward (2·E·H, none in attention-only blocks); biases and norms are too small to count."""
    feed_forward = 0 if config.attention_only else 2 * config.embed_dim * config.hidden_dim
    return config.num_layers * (4 * config.embed_dim**2 + feed_forward)


def flops_per_token(config: TransformerConfig, seq_len: int, head_fraction: float = 1.0) -> int:
    """Training FLOPs per token: 6·N + 12·L·T·E.

    N counts the matmul weights a token passes through: the blocks' (`block_weights`), plus the LM head (E·V, and E² for BERT's head transform) on the
    `head_fraction` of positions that reach it (a masked LM scores ~15 %); 6 = 2 (multiply-add) × 3
    (forward, and backward for inputs and weights). 12·L·T·E is the attention itself (QKᵀ and
    probabilities·V), counted over the full T×T square as nanoGPT and PaLM do.
    """
    E, L, V = config.embed_dim, config.num_layers, config.vocab_size
    head = E * V + (E * E if config.lm_head_transform else 0)
    n = block_weights(config) + head_fraction * head
    return round(6 * n + 12 * L * seq_len * E)


def measure_cpu_peak(n: int = 1024, seconds: float = 0.3) -> float:
    """FLOP/s of fp32 n×n matmuls on this CPU with the current torch threads, best of ~`seconds`."""
    a, b, out = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
    torch.mm(a, b, out=out)  # warm-up
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        best = max(best, 2.0 * n**3 / (time.perf_counter() - start))
    return best


def peak_flops(
    device: torch.device, amp_dtype: torch.dtype | None, peak_tflops: float | None
) -> tuple[float | None, str]:
    """The peak FLOP/s MFU divides by, and where it came from (printed once at start-up).

    `peak_tflops` (the user's) wins; else a CPU measures a matmul once, a GPU looks its name up in
    `GPU_PEAK_TFLOPS` (bf16/fp16 peak under autocast, fp32 without); an unknown GPU gives None.
    """
    if peak_tflops is not None:
        return peak_tflops * 1e12, f"peak {peak_tflops:g} TFLOP/s (--peak-tflops)"
    if device.type != "cuda":
        peak = measure_cpu_peak()
        return peak, f"peak {peak / 1e12:.3g} TFLOP/s (fp32 matmul measured on this CPU)"
    name = torch.cuda.get_device_name(device)
    match = next((peaks for key, peaks in GPU_PEAK_TFLOPS.items() if key in name), None)
    if match is None:
        return None, f"unknown device {name!r}: no MFU shown; give its peak with --peak-tflops"
    tflops = match[0] if amp_dtype in (torch.bfloat16, torch.float16) else match[1]
    precision = "bf16/fp16" if amp_dtype else "fp32"
    return tflops * 1e12, f"peak {tflops:g} TFLOP/s ({name}, dense {precision}, data sheet)"
