"""``medalign judge run|serve`` (and ``medalign audit ...``, :mod:`judges.audit_cli`).

    medalign judge serve --port 8000 --latency-ms 50
    medalign judge serve --host 0.0.0.0 --api-key-env MEDALIGN_JUDGE_KEY   # for other nodes
    medalign judge run judge.yaml --dry-run
    medalign judge run judge.yaml judges.0.concurrency=32

A user error (a missing API-key variable, an unknown template, an unreadable input, a missing
file) prints one line, ``error: ...``, and exits 2: never a traceback. Nothing heavy is imported
at module level.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from pathlib import Path

from judges import audit_cli
from judges.errors import JudgeSetupError

QUARANTINE_LINES = 5                      # quarantined rows named on the terminal (all in the file)
FAULTS = ("rate_limit", "server_error", "hang", "drop", "truncated", "malformed", "bad_json",
          "empty_choices", "refusal", "out_of_range", "obey_injection")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``medalign judge`` and ``medalign audit``."""
    _register_judge(subparsers)
    audit_cli.register(subparsers, user_errors)


def user_errors(handler):
    """Print a user error as one line (exit 2) instead of a traceback."""
    from judges.transcripts import TranscriptError

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (JudgeSetupError, TranscriptError) as e:
            print(f"error: {e}", file=sys.stderr)
        except BrokenPipeError:                 # output piped into `head`
            return 0
        except OSError as e:                    # a missing or unreadable file
            print(f"error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 2
    return run


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
    p.set_defaults(func=user_errors(_run))

    p = sub.add_parser("serve", help="serve the local rubric judge (OpenAI-compatible, 127.0.0.1)",
                       description="An OpenAI-compatible server whose model rates responses "
                                   "against the doctor's standard answer. It binds 127.0.0.1 "
                                   "unless --host says otherwise; bound to any other address it "
                                   "needs --api-key-env and rejects calls without that key (401). "
                                   "Point any OpenAI client at http://HOST:PORT/v1. Besides the "
                                   "rubric it serves two deterministic models for evaluation: "
                                   "medalign-patient (a simulated patient that answers from the "
                                   "case card in its prompt) and medalign-grader (grades the demo "
                                   "world's HealthBench-format rubric criteria).")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; e.g. 0.0.0.0 for cluster workers, "
                        "which needs --api-key-env)")
    p.add_argument("--api-key-env", metavar="VAR",
                   help="environment variable holding the key every request must send "
                        "(Authorization: Bearer KEY)")
    p.add_argument("--model", default="medalign-rubric-v2",
                   help="model id of the rubric (default medalign-rubric-v2)")
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
    p.add_argument("--rpm", type=float, default=None, metavar="N",
                   help="rate limit: chat calls per minute (429 past it, x-ratelimit-* headers)")
    p.add_argument("--tpm", type=float, default=None, metavar="N",
                   help="rate limit: tokens per minute (prompt + max_tokens of each call)")
    p.add_argument("--rate-window-s", type=float, default=60.0, metavar="S",
                   help="the rate limit's burst: S seconds' worth of quota (default 60, a whole "
                        "minute like OpenAI; smaller shows the steady rate sooner)")
    p.add_argument("--batch-min-s", type=float, default=0.0, metavar="S",
                   help="a Batch API batch stays in progress at least S seconds")
    p.set_defaults(func=user_errors(_serve))


def _run(args: argparse.Namespace) -> int:
    from judges.api import api_key_for, load_templates
    from judges.pipeline import judge_and_rank
    from judges.run_config import JudgeRunConfig, estimate
    from judges.tuples import load_tuples
    from medalign.config import load_config

    cfg = load_config(args.config, JudgeRunConfig, args.overrides)
    load_templates(cfg.judges)                     # an unknown template fails here, in one line
    tuples, quarantined = load_tuples(cfg.input.path, cfg.input.kind, cfg.input.source_order,
                                      cfg.input.max_response_chars)
    note = f", {len(quarantined)} quarantined (see quarantine.jsonl)" if quarantined else ""
    print(f"{len(tuples)} prompts from {cfg.input.path}{note}")
    for q in quarantined[:QUARANTINE_LINES]:
        print(f"  quarantined {q.file}:{q.row}: {q.reason}")
    if len(quarantined) > QUARANTINE_LINES:
        print(f"  ... {len(quarantined) - QUARANTINE_LINES} more in quarantine.jsonl")
    if not tuples:
        raise JudgeSetupError(f"{cfg.input.path}: no usable rows to judge")
    if args.dry_run:
        for row in estimate(tuples, cfg):
            cost = "unknown (no price)" if row["cost_max"] is None else f"<= {row['cost_max']:.4f} online"
            if row["cost_max_batch"] is not None:
                cost += f", <= {row['cost_max_batch']:.4f} batch"
            cost += f" (mode {row['mode']})"
            print(f"judge {row['judge']} ({row['model']} @ {row['endpoint']}, {row['template']}): "
                  f"{row['judgments']} judgments, {row['already_ok']} already ok, "
                  f"{row['cached']} cached -> {row['calls']} calls, ~{row['prompt_tokens_est']} "
                  f"prompt tokens, <= {row['completion_tokens_max']} completion tokens, cost {cost}"
                  + (f", budget {row['budget']}" if row["budget"] else ""))
        return 0
    for judge in cfg.judges:                       # a missing key fails here, in one line
        api_key_for(judge)
    report = judge_and_rank(tuples, quarantined, cfg.judges, cfg.ranking, Path(cfg.output_dir),
                            progress=not args.no_progress)
    shown = {k: report[k] for k in ("calls", "cache_hits", "already_done", "status_counts",
                                    "ok_fraction", "swap_consistency", "pairs", "cost",
                                    "budget_stopped", "reference_agreement")}
    shown["reward_data"] = report["reward_data"]["judges"]
    print(json.dumps(shown, indent=2, ensure_ascii=False))
    print(f"outputs in {cfg.output_dir}")
    return 0 if report["status_counts"].get("ok", 0) else 1


def _serve(args: argparse.Namespace) -> int:
    from judges.server import check_exposure, serve

    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = sorted(set(faults) - set(FAULTS))
    if unknown:
        print(f"error: unknown fault modes {unknown}; known: {', '.join(FAULTS)}", file=sys.stderr)
        return 2
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise JudgeSetupError(f"environment variable {args.api_key_env} (--api-key-env) is "
                                  "not set: export the key clients must send")
    check_exposure(args.host, api_key)
    need = f", API key from ${args.api_key_env} required" if api_key else ""
    if args.rpm or args.tpm:
        need += (f", rate limit {args.rpm or '-'} requests / {args.tpm or '-'} tokens per minute "
                 f"(burst {args.rate_window_s:g} s)")
    print(f"serving {args.model} on http://{args.host}:{args.port}/v1{need} (Ctrl-C to stop)",
          flush=True)
    serve(port=args.port, host=args.host, api_key=api_key, model=args.model,
          latency_ms=args.latency_ms, faults=faults, fault_rate=args.fault_rate, fault_seed=args.fault_seed, retry_after_s=args.retry_after_s,
          hang_s=args.hang_s, position_bias=args.position_bias, noise_std=args.noise_std,
          noise_seed=args.noise_seed, requests_per_minute=args.rpm, tokens_per_minute=args.tpm,
          rate_window_s=args.rate_window_s, batch_min_s=args.batch_min_s)
    return 0
