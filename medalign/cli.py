"""The ``medalign`` command.

Each package adds its own sub-commands through ``<package>.cli.register(subparsers)``:

    medalign run JOB.yaml [key.sub=value ...]     jobs/        run a pipeline (Ray)
    medalign submit JOB.yaml                      jobs/        submit it to a Ray cluster
    medalign bootstrap ...                        alignment/   tokenizer + tiny model from a corpus
    medalign data validate|build|stats|preview    data_recipes/
    medalign judge run|serve                      judges/
    medalign audit verify|summary                 judges/

A package's ``cli.py`` imports nothing heavy at module level (torch, transformers, ray are
imported inside the handlers), so ``medalign --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from medalign.config import ConfigError
from medalign.errors import StageFailed, UserError

_PACKAGES = ("jobs.cli", "alignment.cli", "data_recipes.cli", "judges.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medalign",
        description="Medical RLHF/RLAIF pipeline: data recipes, SFT, LLM judges, reward model, "
                    "PPO / rejection sampling, evaluation. Start with: medalign run jobs/quickstart.yaml",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _PACKAGES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse stops collecting ``key.sub=value`` positionals at the first option; accept them
    # anywhere on the line for commands that take overrides (``run JOB --until sft seed=1``).
    stray = [a for a in extra if a.startswith("-") or "=" not in a]
    if extra and (stray or not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = list(args.overrides or []) + extra
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ConfigError, UserError, StageFailed, OSError) as e:
        print(user_error_text(e), file=sys.stderr)
        return 1 if isinstance(e, StageFailed) else 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def user_error_text(error: Exception) -> str:
    """What to print, without a traceback, for an error the user can fix: one line per problem,
    naming the file (and line and field where there is one)."""
    if isinstance(error, ConfigError):
        if len(error.problems) == 1:
            return f"error: {error.problems[0]}"
        return f"error: {len(error.problems)} problems in the config:\n  " + "\n  ".join(error.problems)
    if isinstance(error, OSError) and error.filename is not None:
        reason = error.strerror or str(error)
        return f"error: {error.filename}: {reason[:1].lower() + reason[1:]}"
    return f"error: {error}"


if __name__ == "__main__":
    sys.exit(main())
