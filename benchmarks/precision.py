"""Item 7 (issue 23): what `--amp auto` buys on this machine's CPU — our training step in bf16 autocast
against the same step in fp32, interleaved in one process.

Both sides: the `tiny` preset's model and batch (forward + backward + AdamW), the same weights and batch.
`--amp auto` chooses bf16 only where the CPU has native bfloat16 (AVX512-BF16 or AMX); elsewhere this
item says so and measures nothing.
"""

from __future__ import annotations

import torch

from benchmarks import Result, interleaved, machine_line
from benchmarks.throughput import QUICK, TINY, build_ours, train_step
from minitransformer.training.engine import cpu_has_bf16, resolve_amp


def run(quick: bool = False) -> list[Result]:
    """fp32 vs bf16-autocast training steps of our model; one result (bf16 tokens/s vs fp32's)."""
    chosen, why = resolve_amp("auto", torch.device("cpu"))
    print(f"\n[precision] --amp auto on this CPU: {chosen} ({why}) | {machine_line()}")
    if not cpu_has_bf16():
        print("no native bfloat16 here: nothing to compare")
        return []
    s = QUICK if quick else TINY
    torch.manual_seed(0)
    x = torch.randint(0, s.vocab_size, (s.batch_size, s.seq_len))
    fp32, bf16 = build_ours(s), build_ours(s)
    bf16.load_state_dict(fp32.state_dict())

    def bf16_loss() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return bf16(x, labels=x)[1]

    seconds = interleaved(
        {"fp32": train_step(fp32, lambda: fp32(x, labels=x)[1]), "bf16": train_step(bf16, bf16_loss)},
        repeats=2 if quick else 7,
    )
    tokens = x.numel()
    print(f"{'precision':<10} {'tokens/s':>9}")
    for name, t in seconds.items():
        print(f"{name:<10} {tokens / t:9,.0f}")
    print(f"bf16 autocast: {seconds['fp32'] / seconds['bf16']:.2f}x the fp32 step ({s.name} shape)")
    return [Result("train-step-bf16-vs-fp32", tokens / seconds["bf16"], tokens / seconds["fp32"], "tokens/s")]
