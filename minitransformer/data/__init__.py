"""Data pipelines, one concept per module.

- `paths`: where data lives (`--data-dir` -> `$MINITRANSFORMER_DATA` -> `~/.cache/minitransformer`)
- `wikitext`: WikiText splits, word counts, memmap binarization, LM blocks
- `download`: fetch WikiText / TREC from their canonical sources (sha256-checked, atomic)
- `masking`: masked-LM corruption
- `classification`: TREC and TSV/CSV labelled text, encoding, dynamic-padding batches
- `induction`: a synthetic corpus of made-up words whose segments repeat at random places (induction heads)
"""
