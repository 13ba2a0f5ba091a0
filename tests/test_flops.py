"""FLOPs per token and the peak they are compared with (MFU)."""

from __future__ import annotations

import dataclasses

import torch

from minitransformer.training.flops import flops_per_token, peak_flops


def test_flops_per_token_counts_matmul_weights_and_attention(tiny_config):
    E, H, L, V, T = 24, 40, 2, 50, 16
    weights = L * (4 * E * E + 2 * E * H) + E * V
    assert flops_per_token(tiny_config, T) == 6 * weights + 12 * L * T * E
    bert = dataclasses.replace(tiny_config, mlm=True, lm_head_transform=True, lm_head_bias=True)
    # the head (with BERT's transform) on 15 % of the positions only
    assert flops_per_token(bert, T, 0.15) == round(
        6 * (weights - E * V + 0.15 * (E * V + E * E)) + 12 * L * T * E
    )


def test_peak_comes_from_the_user_the_cpu_or_the_gpu_name(monkeypatch):
    assert peak_flops(torch.device("cpu"), None, 2.5) == (2.5e12, "peak 2.5 TFLOP/s (--peak-tflops)")
    measured, source = peak_flops(torch.device("cpu"), None, None)
    assert measured > 1e8 and "measured on this CPU" in source
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    assert peak_flops(torch.device("cuda"), torch.bfloat16, None)[0] == 989e12
    assert peak_flops(torch.device("cuda"), None, None)[0] == 67e12  # fp32 without autocast
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some GPU 9000")
    peak, source = peak_flops(torch.device("cuda"), torch.bfloat16, None)
    assert peak is None and "unknown device 'Some GPU 9000'" in source and "--peak-tflops" in source
