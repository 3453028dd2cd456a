"""A judge run against a rate-limited provider: how close to the allowed rate, how many 429s.

The local judge server runs in its own process (``medalign judge serve --rpm R --tpm T``) and
limits chat calls as OpenAI does: token buckets refilled at R requests and T tokens (prompt +
``max_tokens``) a minute, 429 with ``retry-after`` past them, ``x-ratelimit-*`` headers on every
reply. The judge client paces itself (:mod:`judges.ratelimit`). By default it is given NO budget:
it learns the limits from the headers alone; ``--budget`` gives it R and T as its configured
``rate_limit``.

The server's burst is scaled down (``--window-s``, default 6 s of quota instead of OpenAI's 60 s)
so the first burst is small and the steady rate shows within a few minutes; the refill rate, and
so the allowed rate per minute, is unchanged. The run makes about ``--minutes`` minutes' worth of
calls at the allowed rate, then prints, per minute of the run, requests/min, tokens/min and the
429 count (from the server's per-second timeline), and the steady-state rate (after the first
``--warmup-s`` seconds) as a fraction of the allowed rate. Whichever limit binds (tokens, with
judge prompts of ~700 tokens and max_tokens 256) should be reached at >= 0.9 with no 429 after
warm-up.

    .venv/bin/python benchmarks/judge_rate_limit.py                       # 600 rpm, 100k tpm, 3 min
    .venv/bin/python benchmarks/judge_rate_limit.py --minutes 1 --budget
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from judge_throughput import make_items, process_server  # noqa: E402  (the same pairs and server)


@contextlib.contextmanager
def limited_server(rpm: float, tpm: float, window_s: float):
    """``medalign judge serve`` with a rate limit, in its own process; yields its base URL."""
    with process_server(extra_args=("--rpm", str(rpm), "--tpm", str(tpm), "--rate-window-s", str(window_s))) as (url, _):
        yield url


def call_charge(items, cfg) -> float:
    """Mean tokens one call is charged by the server (its prompt count + max_tokens)."""
    from judges.api import plan_judgments
    from judges.server.replies import count_tokens
    from judges.templates import load_template

    judgments, _ = plan_judgments(items, cfg, load_template(cfg.template))
    counts = [sum(count_tokens(m["content"]) + 4 for m in j.messages) for j in judgments]
    return sum(counts) / len(counts) + cfg.decoding.max_tokens


def per_minute(timeline: list[dict], t0: int) -> list[dict]:
    """Requests, tokens and 429s in each minute since ``t0`` (a partial last minute is scaled)."""
    end = max(row["second"] for row in timeline) + 1
    rows = []
    for start in range(t0, end, 60):
        span = [r for r in timeline if start <= r["second"] < start + 60]
        seconds = min(60, end - start)
        rows.append({"minute": (start - t0) // 60 + 1, "seconds": seconds,
                     "requests_per_min": sum(r.get("requests", 0) for r in span) * 60 / seconds,
                     "tokens_per_min": sum(r.get("tokens", 0) for r in span) * 60 / seconds,
                     "rate_limited": sum(r.get("rate_limited", 0) for r in span)})
    return rows


def steady_state(timeline: list[dict], t0: int, warmup_s: int) -> dict:
    """Rates from ``t0 + warmup_s`` to the last admitted call, and the 429s in that span."""
    admitted = [r["second"] for r in timeline if r.get("requests")]
    start, end = t0 + warmup_s, max(admitted) + 1
    span = [r for r in timeline if start <= r["second"] < end]
    seconds = max(1, end - start)
    return {"seconds": seconds, "requests_per_min": sum(r.get("requests", 0) for r in span) * 60 / seconds,
            "tokens_per_min": sum(r.get("tokens", 0) for r in span) * 60 / seconds,
            "rate_limited": sum(r.get("rate_limited", 0) for r in span)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rpm", type=float, default=600, help="server limit: requests per minute")
    p.add_argument("--tpm", type=float, default=100_000, help="server limit: tokens per minute")
    p.add_argument("--window-s", type=float, default=6.0, help="server burst: seconds' worth of quota")
    p.add_argument("--minutes", type=float, default=3.0, help="minutes' worth of calls at the allowed rate")
    p.add_argument("--warmup-s", type=int, default=10, help="seconds left out of the steady-state figures")
    p.add_argument("--concurrency", type=int, default=32, help="the judge's ceiling on calls in flight")
    p.add_argument("--budget", action="store_true", help="give the client R and T as its rate_limit budget")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args(argv)

    from judges.api import judge_pairs_multi
    from judges.config import JudgeConfig

    budget = {"requests_per_minute": args.rpm, "tokens_per_minute": args.tpm} if args.budget else {}
    probe = JudgeConfig(base_url="http://127.0.0.1:1/v1")
    charge = call_charge(make_items(40), probe)
    calls_per_min = min(args.rpm, args.tpm / charge)
    n_calls = int(math.ceil(calls_per_min * args.minutes)) + 20
    items = make_items((n_calls + 1) // 2, seed=7)       # both orders: 2 calls per pair
    binding = "tokens" if args.tpm / charge < args.rpm else "requests"
    print(f"limits {args.rpm:g} requests/min, {args.tpm:g} tokens/min (burst {args.window_s:g} s); "
          f"~{charge:.0f} tokens per call, so {binding} bind at {calls_per_min:.1f} calls/min; "
          f"{len(items) * 2} calls; client budget: {budget or 'none (headers only)'}", flush=True)
    with limited_server(args.rpm, args.tpm, args.window_s) as url, tempfile.TemporaryDirectory() as tmp:
        cfg = JudgeConfig(base_url=url, concurrency=args.concurrency, timeout_s=120,
                          rate_limit=budget, retry={"max_attempts": 8})
        t0 = int(time.time())
        _, stats = judge_pairs_multi(items, [cfg], Path(tmp) / "store")
        with urllib.request.urlopen(url + "/medalign/rate", timeout=30) as reply:
            rate = json.loads(reply.read())
    s = stats[0]
    minutes = per_minute(rate["timeline"], t0)
    steady = steady_state(rate["timeline"], t0, args.warmup_s)
    fraction = {"requests": steady["requests_per_min"] / args.rpm, "tokens": steady["tokens_per_min"] / args.tpm}
    result = {"limits": {"requests_per_min": args.rpm, "tokens_per_min": args.tpm, "burst_s": args.window_s},
              "client_budget": budget or None, "calls": s.api_calls, "ok": s.statuses.get("ok", 0),
              "wall_s": s.wall_s, "by_minute": minutes, "steady_state": steady,
              "fraction_of_allowed": fraction, "binding": binding, "client_rate": s.rate,
              "load": os.getloadavg()[0], "timeline": rate["timeline"]}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{s.api_calls} calls, {s.statuses.get('ok', 0)} ok, {s.wall_s:.0f} s "
          f"(load average {result['load']:.1f} on {os.cpu_count()} cores)")
    print(f"{'minute':>6} {'seconds':>7} {'requests/min':>12} {'tokens/min':>10} {'429s':>5}")
    for m in minutes:
        print(f"{m['minute']:>6} {m['seconds']:>7} {m['requests_per_min']:>12.1f} {m['tokens_per_min']:>10.0f} "
              f"{m['rate_limited']:>5}")
    print(f"steady state (after {args.warmup_s} s, {steady['seconds']} s): {steady['requests_per_min']:.1f} "
          f"requests/min ({fraction['requests']:.3f} of the limit), {steady['tokens_per_min']:.0f} tokens/min "
          f"({fraction['tokens']:.3f} of the limit), {steady['rate_limited']} 429s")
    print(f"client: {s.rate['rate_limited']} 429s seen, {s.rate['decreases']} decreases, window "
          f"{s.rate['min_window']:.1f}..{s.rate['max_window']:.1f}")
    return 0 if fraction[binding] >= 0.9 and steady["rate_limited"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
