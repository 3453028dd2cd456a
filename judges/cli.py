"""``medalign judge run|serve`` and ``medalign audit verify|summary``.

    medalign judge serve --port 8000 --latency-ms 50
    medalign judge run judge.yaml --dry-run
    medalign judge run judge.yaml judges.0.concurrency=32
    medalign audit verify runs/.../judge-xxxx/transcripts.jsonl
    medalign audit summary runs/.../judge-xxxx/transcripts.jsonl --reference-ranking ranked.parquet

Nothing heavy is imported at module level.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

FAULTS = ("rate_limit", "server_error", "hang", "drop", "truncated", "malformed", "bad_json",
          "empty_choices", "refusal", "out_of_range")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``medalign judge`` and ``medalign audit``."""
    _register_judge(subparsers)
    _register_audit(subparsers)


def _register_judge(subparsers: argparse._SubParsersAction) -> None:
    judge = subparsers.add_parser("judge", help="LLM judges: run a judging job, serve the local judge",
                                  description="Judge pairs or tuples of responses with LLM judges "
                                              "(both orders, transcripts, cache, budget).")
    sub = judge.add_subparsers(dest="judge_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("run", help="judge a pairs/tuples/samples file into reward tuples",
                       description="Run the judges of a YAML config (see judges/run_config.py) on "
                                   "its input file; write transcripts.jsonl, scores, ranked tuples, "
                                   "pairs and judge_report.json into output_dir. A rerun judges "
                                   "only what is missing.")
    p.add_argument("config", help="judge run YAML")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value",
                   help="config overrides, e.g. judges.0.concurrency=32 ranking.pair_mode=all")
    p.add_argument("--dry-run", action="store_true",
                   help="print the number of calls and an upper cost estimate; call nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)

    p = sub.add_parser("serve", help="serve the local rubric judge (OpenAI-compatible, 127.0.0.1)",
                       description="An OpenAI-compatible server on 127.0.0.1 whose model rates "
                                   "responses against the doctor's standard answer. Point any "
                                   "OpenAI client at http://127.0.0.1:PORT/v1 (any API key).")
    p.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (default 8000)")
    p.add_argument("--model", default="medalign-rubric-v2", help="model id to answer to")
    p.add_argument("--latency-ms", type=float, default=0.0, help="injected delay per request")
    p.add_argument("--faults", default="", help=f"comma-separated fault modes: {', '.join(FAULTS)}")
    p.add_argument("--fault-rate", type=float, default=0.0, help="probability of a fault per request")
    p.add_argument("--fault-seed", type=int, default=0, help="seed of the fault draws")
    p.add_argument("--retry-after-s", type=float, default=0.05, help="Retry-After sent with 429s")
    p.add_argument("--hang-s", type=float, default=30.0, help="how long a 'hang' fault stalls")
    p.add_argument("--position-bias", type=float, default=0.0,
                   help="points added to the response in position A (to test the audit)")
    p.add_argument("--noise-std", type=float, default=0.0, help="gaussian noise on ratings (points)")
    p.add_argument("--noise-seed", type=int, default=0, help="seed of the noise")
    p.set_defaults(func=_serve)


def _register_audit(subparsers: argparse._SubParsersAction) -> None:
    audit = subparsers.add_parser("audit", help="check and summarise judge transcripts",
                                  description="Audit judge transcripts: verify the hash chain, "
                                              "or summarise statuses, biases and agreement.")
    asub = audit.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", required=True)
    p = asub.add_parser("verify", help="detect edited, deleted, inserted or reordered lines",
                        description="Recompute the hash chain of a transcripts.jsonl. Exit 0 when "
                                    "intact, 1 with one line per problem otherwise.")
    p.add_argument("transcripts", help="transcripts.jsonl")
    p.add_argument("--head", help="head file (default: TRANSCRIPTS.head.json when present)")
    p.set_defaults(func=_verify)
    p = asub.add_parser("summary", help="per-judge statistics and inter-judge agreement",
                        description="Per judge: calls, statuses, swap consistency, first-position "
                                    "win rate, score-length correlation, score histogram, agreement "
                                    "with a reference ranking; across judges: Cohen's kappa and "
                                    "Krippendorff's alpha (ordinal) with bootstrap intervals.")
    p.add_argument("transcripts", help="transcripts.jsonl")
    p.add_argument("--reference-ranking", metavar="FILE",
                   help="parquet/jsonl with prompt_id, ranks (0 = best) and optional response_ids")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--json", metavar="OUT", help="also write the summary as JSON to OUT")
    p.set_defaults(func=_summary)


def _run(args: argparse.Namespace) -> int:
    from judges.pipeline import judge_and_rank
    from judges.run_config import JudgeRunConfig, estimate
    from judges.tuples import load_tuples
    from medalign.config import load_config

    cfg = load_config(args.config, JudgeRunConfig, args.overrides)
    tuples, quarantined = load_tuples(cfg.input.path, cfg.input.kind, cfg.input.source_order)
    note = f", {len(quarantined)} rows quarantined" if quarantined else ""
    print(f"{len(tuples)} prompts from {cfg.input.path}{note}")
    if args.dry_run:
        for row in estimate(tuples, cfg):
            cost = "unknown (no price)" if row["cost_max"] is None else f"<= {row['cost_max']:.4f}"
            print(f"judge {row['judge']} ({row['model']} @ {row['endpoint']}, {row['template']}): "
                  f"{row['judgments']} judgments, {row['already_ok']} already ok, "
                  f"{row['cached']} cached -> {row['calls']} calls, ~{row['prompt_tokens_est']} "
                  f"prompt tokens, <= {row['completion_tokens_max']} completion tokens, cost {cost}"
                  + (f", budget {row['budget']}" if row["budget"] else ""))
        return 0
    report = judge_and_rank(tuples, quarantined, cfg.judges, cfg.ranking, Path(cfg.output_dir),
                            progress=not args.no_progress)
    print(json.dumps({k: report[k] for k in ("calls", "cache_hits", "already_done", "status_counts",
                                             "ok_fraction", "swap_consistency", "pairs", "cost",
                                             "budget_stopped", "reference_agreement")},
                     indent=2, ensure_ascii=False))
    print(f"outputs in {cfg.output_dir}")
    return 0 if report["status_counts"].get("ok", 0) else 1


def _serve(args: argparse.Namespace) -> int:
    from judges.server import serve

    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = sorted(set(faults) - set(FAULTS))
    if unknown:
        print(f"error: unknown fault modes {unknown}; known: {', '.join(FAULTS)}", file=sys.stderr)
        return 2
    print(f"serving {args.model} on http://127.0.0.1:{args.port}/v1 (Ctrl-C to stop)", flush=True)
    serve(port=args.port, model=args.model, latency_ms=args.latency_ms, faults=faults,
          fault_rate=args.fault_rate, fault_seed=args.fault_seed, retry_after_s=args.retry_after_s,
          hang_s=args.hang_s, position_bias=args.position_bias, noise_std=args.noise_std,
          noise_seed=args.noise_seed)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from judges.transcripts import verify_transcript

    result = verify_transcript(args.transcripts, args.head)
    if result.ok:
        print(f"ok: {result.lines} lines, hash chain intact")
        return 0
    for problem in result.problems:
        print(problem)
    print(f"FAILED: {len(result.problems)} problems in {result.lines} lines")
    return 1


def _summary(args: argparse.Namespace) -> int:
    from judges.audit import summarize
    from judges.audit_format import format_summary, load_reference_ranks

    ranks = load_reference_ranks(args.reference_ranking) if args.reference_ranking else None
    summary = summarize(args.transcripts, ranks, n_resamples=args.resamples)
    print(format_summary(summary))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0
