"""`python -m minitransformer COMMAND ...`: the secondary commands, one table.

The two programs keep their own names (`python -m pretrain`, `python -m adapt`); everything else is a
command here. Each command is a module with `main(argv)`, imported only when it runs.
"""

from __future__ import annotations

import importlib
import sys

from .runs.errors import run_cli

COMMANDS = {  # command → (module with main(argv), what it does)
    "hf": ("minitransformer.interop.hf", "Hugging Face checkpoints: compare, convert (import), export"),
    "explore": ("minitransformer.explore.__main__", "write the explorer page of a model folder"),
    "predict": ("adapt.predict", "labels and class probabilities from an adapted classifier"),
    "compare": ("adapt.compare", "several adapt runs side by side, as a table and a bar chart"),
    "study": ("adapt.study", "the spread over seeds of each fine-tuning stability technique"),
}


def usage() -> str:
    lines = ["usage: python -m minitransformer COMMAND [options]  (COMMAND --help for its options)", ""]
    lines += [f"  {name:<9}{summary}" for name, (_, summary) in COMMANDS.items()]
    return "\n".join(lines + ["", "The programs: python -m pretrain, python -m adapt."])


def main(argv: list[str] | None = None) -> int:
    """Run COMMAND with the rest of the command line; its exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] not in COMMANDS:
        print(f"error: unknown command {argv[0]!r}; one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    results = []
    status = run_cli(lambda: results.append(module.main(argv[1:])))
    return results[0] if status == 0 and isinstance(results[0], int) else status


if __name__ == "__main__":
    sys.exit(main())
