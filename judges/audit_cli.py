"""``medalign audit verify|summary|list|show|view``: the auditor's commands.

    medalign audit verify runs/.../transcripts.jsonl [--key-env MEDALIGN_TRANSCRIPT_KEY]
    medalign audit summary runs/.../transcripts.jsonl
    medalign audit list runs/.../transcripts.jsonl --disagree --flag parroted_candidate
    medalign audit show 3f2a9c runs/.../transcripts.jsonl
    medalign audit view runs/.../transcripts.jsonl --out audit.html

Nothing heavy is imported at module level.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from judges.errors import JudgeSetupError

FLAG_CHOICES = ("candidate_rating_statement", "candidate_judge_instruction", "parroted_candidate")
STATUS_CHOICES = ("ok", "parse_error", "api_error", "refused", "out_of_range")


def register(subparsers: argparse._SubParsersAction, guard) -> None:
    """Add ``medalign audit``; ``guard`` wraps a handler so user errors print one line."""
    audit = subparsers.add_parser("audit", help="check, summarise and browse judge transcripts",
                                  description="Audit judge transcripts: verify the hash chain, "
                                              "summarise statuses, biases and agreement, list and "
                                              "show comparisons, or write the HTML workbench.")
    asub = audit.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", required=True)
    p = asub.add_parser("verify", help="detect edited, deleted, inserted or reordered lines",
                        description="Recompute the hash chain of a transcripts.jsonl. Exit 0 when "
                                    "everything was checked and is intact, 1 with one line per "
                                    "problem, 3 when nothing is wrong but something could not be "
                                    "checked (no head file, a keyed chain without --key-env); "
                                    "what was not checked is listed.")
    p.add_argument("transcripts", help="transcripts.jsonl")
    p.add_argument("--head", help="head file (default: TRANSCRIPTS.head.json when present)")
    p.add_argument("--key-env", metavar="VAR",
                   help="environment variable holding the HMAC key of a keyed chain")
    p.set_defaults(func=guard(_verify))
    p = asub.add_parser("summary", help="per-judge statistics and inter-judge agreement",
                        description="Per judge: calls, statuses, swap consistency, first-position "
                                    "win rate, score-length correlation, flags, half-judged pairs, "
                                    "score histogram, agreement with a reference ranking; across "
                                    "judges: Cohen's kappa and Krippendorff's alpha (ordinal) with "
                                    "bootstrap intervals.")
    p.add_argument("transcripts", help="transcripts.jsonl")
    p.add_argument("--reference-ranking", metavar="FILE",
                   help="parquet/jsonl with prompt_id, ranks (0 = best) and optional response_ids")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--json", metavar="OUT", help="also write the summary as JSON to OUT")
    p.set_defaults(func=guard(_summary))
    _register_browse(asub, guard)


def _register_browse(asub, guard) -> None:
    p = asub.add_parser("list", help="one line per comparison (both orders of a pair), filtered",
                        description="List comparisons: a pair judged by one judge, both orders. "
                                    "Filters combine (all must hold).")
    p.add_argument("transcripts", nargs="+", help="transcripts.jsonl files")
    _filters(p)
    p.add_argument("--limit", type=int, default=50, help="lines to print (default 50; 0 = all)")
    p.set_defaults(func=guard(_list))
    p = asub.add_parser("show", help="both orders of one comparison, with the prompt and replies",
                        description="Show a comparison: the rendered prompt, each order's raw reply "
                                    "with the statement the parser read marked, scores, flags, "
                                    "and the reward pairs it produced.")
    p.add_argument("id", help="a pair id or judgment id (or a unique prefix; see audit list)")
    p.add_argument("transcripts", nargs="+", help="transcripts.jsonl files")
    p.add_argument("--no-prompt", action="store_true", help="do not print the rendered prompt")
    p.set_defaults(func=guard(_show))
    p = asub.add_parser("view", help="write the HTML audit workbench (one self-contained file)",
                        description="Write one HTML file that opens from disk with no server and no "
                                    "network: verify banner, per-judge statistics with charts, a "
                                    "filterable judgment table and a comparison view.")
    p.add_argument("transcripts", nargs="+", help="transcripts.jsonl files")
    p.add_argument("--out", required=True, help="HTML file to write")
    p.add_argument("--key-env", metavar="VAR", help="HMAC key variable of keyed chains (verify)")
    p.add_argument("--prompts", metavar="FILE",
                   help="parquet/jsonl with prompt_id and department/intent, for older transcripts")
    p.set_defaults(func=guard(_view))


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--status", action="append", choices=STATUS_CHOICES,
                   help="an order has this status (repeatable)")
    p.add_argument("--judge", action="append", help="judge name (repeatable)")
    p.add_argument("--flag", action="append", choices=FLAG_CHOICES, help="flag (repeatable)")
    p.add_argument("--disagree", action="store_true",
                   help="only comparisons whose verdict flips with the order")
    p.add_argument("--min-gap", type=float, help="only |score gap| >= this")


def key_from_env(var: str | None) -> bytes | None:
    if not var:
        return None
    value = os.environ.get(var)
    if not value:
        raise JudgeSetupError(f"environment variable {var} (--key-env) is not set: export the "
                              "transcript's HMAC key")
    return value.encode("utf-8")


def _verify(args: argparse.Namespace) -> int:
    from judges.transcript_verify import verify_transcript

    result = verify_transcript(args.transcripts, args.head, key_from_env(args.key_env))
    chains = ", ".join(f"{n} {k}" for k, n in sorted(result.chains.items())) or "no rows"
    for problem in result.problems:
        print(problem)
    for note in result.unchecked:
        print(f"not checked: {note}")
    if result.problems:
        print(f"FAILED: {len(result.problems)} problems in {result.lines} lines ({chains})")
        return 1
    if result.unchecked:
        print(f"no problem found in {result.lines} lines ({chains}), but not everything could "
              "be checked (above)")
        return 3
    print(f"ok: {result.lines} lines, hash chain intact ({chains})")
    return 0


def _summary(args: argparse.Namespace) -> int:
    from judges.audit import summarize
    from judges.audit_format import format_summary, load_reference_ranks

    ranks = load_reference_ranks(args.reference_ranking) if args.reference_ranking else None
    summary = summarize(args.transcripts, ranks, n_resamples=args.resamples)
    print(format_summary(summary))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0


def _comparisons(paths: list[str]):
    from judges.comparisons import group, load_rows

    return group(load_rows(paths))


def _list(args: argparse.Namespace) -> int:
    from judges.audit_format import comparison_line
    from judges.comparisons import select

    comps = _comparisons(args.transcripts)
    chosen = select(comps, status=args.status, judge=args.judge, flag=args.flag,
                    disagree=args.disagree, min_gap=args.min_gap)
    shown = chosen if args.limit == 0 else chosen[:args.limit]
    for c in shown:
        print(comparison_line(c))
    more = f" (first {len(shown)} shown; --limit 0 for all)" if len(shown) < len(chosen) else ""
    print(f"{len(chosen)} of {len(comps)} comparisons match{more}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from judges.audit_format import format_comparison
    from judges.comparisons import find, produced_pairs

    found = find(_comparisons(args.transcripts), args.id)
    if not found:
        print(f"error: no comparison or judgment id starts with {args.id!r} in "
              f"{', '.join(args.transcripts)} (see medalign audit list)", file=sys.stderr)
        return 1
    produced = [produced_pairs(p) for p in args.transcripts]
    mark = sys.stdout.isatty()
    for c in found:
        print(format_comparison(c, produced[c.rows[0].get("_file", 0)], not args.no_prompt, mark))
    return 0


def _view(args: argparse.Namespace) -> int:
    from judges.audit_view import write_view

    report = write_view(args.transcripts, args.out, key=key_from_env(args.key_env),
                        prompts=args.prompts)
    print(f"wrote {args.out}: {report['judgments']} judgments, {report['comparisons']} "
          f"comparisons, {report['bytes'] / 1e6:.1f} MB")
    return 0
