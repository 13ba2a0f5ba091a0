"""Peak memory and throughput of `binarize` on a large text file (WikiText-2 valid+test repeated).

    MINITRANSFORMER_DATA=../shared/data python benchmarks/binarize_memory.py [--mb 100 25]

For each size, a fresh subprocess binarizes the file (so peak RSS is its own) and reports its peak
RSS before binarizing (imports) and after, from /proc/self/status VmHWM. Peak memory must stay under
1 GB and must not grow with the corpus size; a second call shows the cost of reusing the cache.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM not in /proc/self/status (Linux only)")


def child(text_path: str, tokenizer_dir: str, cache_dir: str) -> None:
    """Binarize once (cold) and once more (cache reuse); print a JSON line of measurements."""
    from minitransformer.data.wikitext import binarize
    from minitransformer.tokenization import Tokenizer

    tokenizer = Tokenizer.from_pretrained(tokenizer_dir)
    before = peak_rss_mb()
    start = time.perf_counter()
    token_file = binarize(text_path, tokenizer, cache_dir=cache_dir)
    seconds = time.perf_counter() - start
    peak = peak_rss_mb()
    start = time.perf_counter()
    reused = binarize(text_path, tokenizer, cache_dir=cache_dir)
    assert reused.from_cache
    result = {
        "rss_before_mb": before,
        "peak_rss_mb": peak,
        "seconds": seconds,
        "reuse_seconds": time.perf_counter() - start,
        "num_tokens": token_file.num_tokens,
        "num_words": token_file.num_words,
    }
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, nargs="+", default=[100.0, 25.0], help="corpus sizes in MB")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--vocab-size", type=int, default=8000)
    args = parser.parse_args()

    from minitransformer.data.wikitext import read_lines, wikitext_path
    from minitransformer.tokenization import Tokenizer

    sources = [wikitext_path("wikitext-2", split, args.data_dir) for split in ("valid", "test")]
    unit = b"".join(path.read_bytes() for path in sources)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tokenizer = Tokenizer.train(
            (line for path in sources for line in read_lines(path)), vocab_size=args.vocab_size
        )
        tokenizer.save_pretrained(tmp / "tokenizer")
        print(f"tokenizer: WordPiece, vocab {tokenizer.vocab_size}, trained on WikiText-2 valid+test")
        for mb in args.mb:
            text = tmp / f"corpus_{mb:g}mb.txt"
            repeats = max(1, round(mb * 1e6 / len(unit)))
            with open(text, "wb") as f:
                for _ in range(repeats):
                    f.write(unit)
            size_mb = text.stat().st_size / 1e6
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(text), str(tmp / "tokenizer"), str(tmp / "cache")],
                check=True,
                capture_output=True,
                text=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            verdict = "OK" if r["peak_rss_mb"] < 1024 else "OVER 1 GB"
            print(
                f"{size_mb:7.1f} MB text ({repeats}x WikiText-2 valid+test): {r['num_tokens']:,} tokens, "
                f"{r['num_words']:,} words | binarize {r['seconds']:.1f} s = {size_mb / r['seconds']:.2f} MB/s, "
                f"{r['num_tokens'] / r['seconds'] / 1e6:.2f} M tokens/s | peak RSS {r['peak_rss_mb']:.0f} MB "
                f"(imports + tokenizer {r['rss_before_mb']:.0f} MB) {verdict} | cache reuse {r['reuse_seconds']:.2f} s"
            )
            text.unlink()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(*sys.argv[2:])
    else:
        main()
