"""Item 2: tokenize + binarize a WikiText-style corpus, ours vs the hands-on's way.

  - ours: `minitransformer.data.wikitext.binarize` (batched Rust tokenization, streamed in chunks to
    a uint16 memmap on disk);
  - hands-on: its tokenizer was pytorch-pretrained-bert's pure-Python BertTokenizer, which lives on
    as `transformers`' slow BERT tokenizer (`BertTokenizerLegacy` in transformers 5); called once per
    line (`convert_tokens_to_ids(tokenize(line))`), every id appended to one Python list, then
    `torch.tensor(list)` saved with `torch.save` (how the hands-on cached its corpus). Same vocabulary.

Both read the same lines (`<unk>` → `[UNK]`, a `[SEP]` after each line) with the same WordPiece
vocabulary (8000, trained on WikiText-2 valid+test), so their token counts must agree (checked to
0.1 %: the Rust pre-tokenizer's Unicode handling differs on a few rare characters). The corpus is WikiText-2 valid+test repeated up to the target size. Each side
runs in its own fresh subprocess, so its peak RSS (VmHWM) is its own, and the two sides alternate.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import Result, machine_line

SIDES = ("ours", "hands-on")


def peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM not in /proc/self/status (Linux only)")


def slow_bert_tokenizer(tokenizer, directory: Path):
    """`transformers`' pure-Python BERT tokenizer (`BertTokenizer` until v4, `BertTokenizerLegacy` in v5)
    over our vocabulary, cased like ours (`Tokenizer.train`'s default): the hands-on's tokenizer."""
    try:
        from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy as SlowBert
    except ImportError:  # transformers 4: BertTokenizer is the slow one
        from transformers import BertTokenizer as SlowBert

    vocab = tokenizer.backend.get_vocab()
    lines = "".join(token + "\n" for token in sorted(vocab, key=vocab.get))  # line i = token id i
    (directory / "vocab.txt").write_text(lines, encoding="utf-8")
    return SlowBert(str(directory / "vocab.txt"), do_lower_case=False)


def hands_on_binarize(text_path: Path, tokenizer, out_path: Path) -> int:
    """The hands-on's way: the slow BertTokenizer per line into one Python list of ints, then a tensor."""
    import torch

    from minitransformer.data.wikitext import read_lines

    ids: list[int] = []
    separator = tokenizer.sep_id
    slow = slow_bert_tokenizer(tokenizer, out_path.parent)
    for line in read_lines(text_path, unk_token="[UNK]"):
        ids.extend(slow.convert_tokens_to_ids(slow.tokenize(line.rstrip("\r\n"))))
        ids.append(separator)
    torch.save(torch.tensor(ids, dtype=torch.long), out_path)
    return len(ids)


def child(side: str, text_path: str, tokenizer_dir: str, work_dir: str) -> None:
    """Run one side once in this (fresh) process; print a JSON line of measurements."""
    from minitransformer.data.wikitext import binarize
    from minitransformer.tokenization import Tokenizer

    tokenizer = Tokenizer.from_pretrained(tokenizer_dir)
    before = peak_rss_mb()
    start = time.perf_counter()
    if side == "ours":
        num_tokens = binarize(text_path, tokenizer, cache_dir=work_dir).num_tokens
    else:
        num_tokens = hands_on_binarize(Path(text_path), tokenizer, Path(work_dir) / "corpus.pt")
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {"seconds": seconds, "num_tokens": num_tokens, "peak_mb": peak_rss_mb(), "base_mb": before}
        )
    )


def measure(side: str, text: Path, tokenizer_dir: Path, tmp: Path) -> dict:
    """Run `side` in a subprocess on `text`, output in a fresh folder that is removed afterwards."""
    with tempfile.TemporaryDirectory(dir=tmp) as work_dir:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.data_prep",
                "--child",
                side,
                str(text),
                str(tokenizer_dir),
                work_dir,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool = False, data_dir: str | None = None) -> list[Result]:
    """Benchmark each corpus size; print a table and return the headline (the largest size)."""
    from minitransformer.data.wikitext import read_lines, wikitext_path
    from minitransformer.tokenization import Tokenizer

    sizes_mb = [2] if quick else [10, 100]
    sources = [wikitext_path("wikitext-2", split, data_dir) for split in ("valid", "test")]
    unit = b"".join(path.read_bytes() for path in sources)
    print(f"\n[data-prep] {machine_line()}")
    print(
        f"{'size':>7} {'side':<9} {'seconds':>8} {'MB/s':>6} {'Mtok/s':>7} {'peak RSS':>9} {'(imports)':>9}"
    )
    result = None
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        tokenizer = Tokenizer.train((line for path in sources for line in read_lines(path)), vocab_size=8000)
        tokenizer.save_pretrained(tmp / "tokenizer")
        for mb in sizes_mb:
            text = tmp / f"corpus_{mb}mb.txt"
            with open(text, "wb") as f:
                for _ in range(max(1, round(mb * 1e6 / len(unit)))):
                    f.write(unit)
            size_mb = text.stat().st_size / 1e6
            runs = {side: measure(side, text, tmp / "tokenizer", tmp) for side in SIDES}
            counts = [runs[side]["num_tokens"] for side in SIDES]
            if abs(counts[0] - counts[1]) > 1e-3 * counts[0]:
                raise AssertionError(f"the two sides disagree on the token count: {runs}")
            for side, r in runs.items():
                print(
                    f"{size_mb:5.0f}MB {side:<9} {r['seconds']:8.2f} {size_mb / r['seconds']:6.2f} "
                    f"{r['num_tokens'] / r['seconds'] / 1e6:7.2f} {r['peak_mb']:7.0f}MB {r['base_mb']:7.0f}MB"
                )
            ours, base = (size_mb / runs[side]["seconds"] for side in SIDES)
            print(f"{size_mb:5.0f}MB speed ratio {ours / base:.2f}x, {runs['ours']['num_tokens']:,} tokens")
            rss = f"peak RSS ours {runs['ours']['peak_mb']:.0f} MB, baseline {runs['hands-on']['peak_mb']:.0f} MB"
            result = Result(f"data-prep-{mb}MB", ours, base, "MB/s", note=rss)
            text.unlink()
    return [result]


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        child(*sys.argv[2:])
    else:
        sys.exit(
            "usage: python -m benchmarks --only data-prep  (this module's entry point is for its subprocesses)"
        )
