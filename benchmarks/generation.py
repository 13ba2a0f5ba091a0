"""Item 4: greedy generation of 256 new tokens with the key/value cache vs recomputing the prefix.

Tiny-preset dimensions with 320 positions (so a 64-token prompt + 256 new tokens fit), batch 1,
random weights (speed does not depend on training). `model.generate(..., use_cache=False)` re-runs the
whole prefix for every new token, as the hands-on's sampling loop did; the cached path feeds one
token per step. The two runs alternate, and their greedy outputs must be identical.
"""

from __future__ import annotations

import torch

from benchmarks import Result, interleaved, machine_line
from benchmarks.throughput import QUICK, TINY
from minitransformer.model import TransformerWithLMHead


def run(quick: bool = False) -> list[Result]:
    """Time both decoding modes; check that they produce the same tokens."""
    shape, prompt_len, new_tokens, repeats = (QUICK, 8, 32, 2) if quick else (TINY, 64, 256, 3)
    config = shape.config(num_max_positions=prompt_len + new_tokens)
    torch.manual_seed(0)
    model = TransformerWithLMHead(config).eval()
    prompt = torch.randint(0, config.vocab_size, (1, prompt_len), generator=torch.Generator().manual_seed(0))
    outputs = {}

    def decode(use_cache: bool) -> None:
        outputs[use_cache] = model.generate(prompt, new_tokens, temperature=0, use_cache=use_cache)

    seconds = interleaved(
        {"kv-cache": lambda: decode(True), "recompute": lambda: decode(False)}, repeats=repeats
    )
    if not torch.equal(outputs[True], outputs[False]):
        first = int((outputs[True] != outputs[False]).nonzero()[0, 1])
        raise AssertionError(f"greedy outputs differ with and without the cache from position {first}")
    ours, baseline = new_tokens / seconds["kv-cache"], new_tokens / seconds["recompute"]
    print(
        f"\n[generation] {new_tokens} new tokens after a {prompt_len}-token prompt, {shape.name} shape, greedy | {machine_line()}"
    )
    print(f"kv-cache {ours:8.1f} tokens/s | recompute {baseline:8.1f} tokens/s | outputs identical")
    return [Result("generation", ours, baseline, "tokens/s")]
