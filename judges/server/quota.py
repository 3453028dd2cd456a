"""The local server's rate limit: requests and tokens per minute, answered the way OpenAI does.

Two token buckets (requests, tokens) refill continuously at ``limit / 60`` per second and hold at
most ``rate_window_s`` seconds' worth (60 s, a whole minute, like OpenAI; a benchmark may scale
the window down so that its first burst is small and the steady rate shows within minutes). A
chat request is charged one request and its prompt tokens plus its ``max_tokens`` when admitted;
one the buckets cannot cover gets a 429 with ``retry-after`` (seconds until it would fit). Every
reply carries ``x-ratelimit-limit-*``, ``x-ratelimit-remaining-*`` and ``x-ratelimit-reset-*``
(time until the bucket is full again, formatted like ``"1.5s"`` / ``"6m0s"``).

``timeline`` counts admitted requests, their tokens and 429s per wall-clock second, for tests and
``benchmarks/judge_rate_limit.py`` (``GET /v1/medalign/rate``).
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict

from judges.ratelimit import Bucket, format_duration


class ServerQuota:
    """Admission of chat requests under ``requests_per_minute`` / ``tokens_per_minute``."""

    def __init__(self, requests_per_minute: float | None, tokens_per_minute: float | None,
                 window_s: float = 60.0, clock=time.monotonic):
        self.clock = clock
        self.limits = {"requests": requests_per_minute, "tokens": tokens_per_minute}
        self.buckets = {kind: Bucket(limit / 60.0, limit * window_s / 60.0, limit * window_s / 60.0,
                                     clock())
                        for kind, limit in self.limits.items() if limit is not None}
        self.timeline: dict[int, Counter] = defaultdict(Counter)

    @property
    def active(self) -> bool:
        return bool(self.buckets)

    def admit(self, tokens: float) -> tuple[bool, dict[str, str]]:
        """(admitted?, headers). Charges the buckets only when the request is admitted."""
        now = self.clock()
        need = {"requests": 1.0, "tokens": float(tokens)}
        waits = {kind: b.wait_s(need[kind], now) for kind, b in self.buckets.items()}
        too_big = [k for k, b in self.buckets.items() if need[k] > b.capacity]
        admitted = not too_big and all(w <= 0 for w in waits.values())
        second = int(time.time())
        if admitted:
            for kind, bucket in self.buckets.items():
                bucket.level -= need[kind]
            self.timeline[second]["requests"] += 1
            self.timeline[second]["tokens"] += int(tokens)
        else:
            self.timeline[second]["rate_limited"] += 1
        headers = self._headers()
        if not admitted:
            wait = max(waits.values()) if not too_big else 60.0
            headers["retry-after"] = str(max(1, math.ceil(wait))) if wait >= 1 else f"{wait:.3f}"
            headers["retry-after-ms"] = str(int(math.ceil(wait * 1000)))
        return admitted, headers

    def _headers(self) -> dict[str, str]:
        headers = {}
        for kind, bucket in self.buckets.items():
            headers[f"x-ratelimit-limit-{kind}"] = f"{self.limits[kind]:g}"
            headers[f"x-ratelimit-remaining-{kind}"] = str(max(0, int(bucket.level)))
            headers[f"x-ratelimit-reset-{kind}"] = format_duration(
                max(0.0, bucket.capacity - bucket.level) / bucket.rate)
        return headers

    def report(self) -> dict:
        """Limits and the per-second timeline (``GET /v1/medalign/rate``)."""
        return {"limits": {k: v for k, v in self.limits.items() if v is not None},
                "capacity": {k: b.capacity for k, b in self.buckets.items()},
                "timeline": [{"second": s, **dict(c)} for s, c in sorted(self.timeline.items())]}
