"""Where a pretraining run's tokens come from, shared by the model run (run.py) and the n-gram baseline
(baseline.py): the dataset's files, the run's tokenizer, the binarized splits; and the files a run folder holds."""

from __future__ import annotations

from pathlib import Path

from minitransformer.checkpoint import read_config
from minitransformer.data.classification import load_trec, write_lm_corpus
from minitransformer.data.download import ensure_trec
from minitransformer.data.induction import InductionSpec, write_corpus
from minitransformer.data.lm_data import binarize_splits, run_tokenizer
from minitransformer.data.paths import default_cache_dir
from minitransformer.data.wikitext import TokenFile, wikitext_path
from minitransformer.runs.options import RunPlan
from minitransformer.tokenization import Tokenizer

RUN_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "training_args.json",
    "metrics.jsonl",
    "checkpoints",
    "run_state.json",
)


def dataset_location(plan: RunPlan) -> str:
    """The dataset name or folder `wikitext_path` reads; trec-questions and induction are built once,
    in the cache."""
    if plan.dataset not in ("trec-questions", "induction"):
        return plan.dataset
    cache_root = Path(plan.cache_dir or default_cache_dir() / "binarized").parent
    if plan.dataset == "induction":
        return str(write_corpus(cache_root, induction_spec(plan), plan.seed))
    directory = cache_root / "trec-questions"
    if not (directory / "valid.txt").is_file():
        if plan.download:
            ensure_trec(plan.data_dir, progress=not plan.no_progress)
        train, _ = load_trec(plan.data_dir)
        write_lm_corpus(train, directory)
    return str(directory)


def induction_spec(plan: RunPlan) -> InductionSpec:
    """The induction corpus of this run: passages of one block (a line's words and its [SEP])."""
    return InductionSpec(passage_words=block_size(plan) - 1)


def block_size(plan: RunPlan) -> int:
    """Training block length: the model's context (the --init-from checkpoint's, when continuing)."""
    return read_config(plan.init_from)[1].num_max_positions if plan.init_from else plan.num_max_positions


def run_tokens(plan: RunPlan, out: Path) -> tuple[Tokenizer, TokenFile, TokenFile]:
    """The run's tokenizer (trained, given or resumed) and its training and validation splits as token ids
    (what the model run and the n-gram baseline both read)."""
    dataset = dataset_location(plan)
    train_file = wikitext_path(dataset, plan.train_split, plan.data_dir)
    valid_file = wikitext_path(dataset, plan.valid_split, plan.data_dir)
    tokenizer = run_tokenizer(
        out, train_file, resume=bool(plan.resume), init_from=plan.init_from, given=plan.tokenizer,
        kind=plan.tokenizer_kind, vocab_size=plan.vocab_size, lowercase=plan.lowercase,
    )  # fmt: skip
    return tokenizer, *binarize_splits((train_file, valid_file), tokenizer, plan.cache_dir)
