"""Calls paced to a provider's rate limits, with adaptive concurrency.

A long judge run (100k+ comparisons) meets a provider's limits long before the CPU: requests per
minute and tokens per minute, where a call counts its prompt plus its ``max_tokens`` when it is
admitted. :class:`RateController` keeps a run inside them with two mechanisms:

* **Pacing.** Two token buckets (requests, tokens) refill at the budget's rate: the configured
  ``requests_per_minute`` / ``tokens_per_minute``, or the provider's own
  ``x-ratelimit-limit-*`` when lower or when none is configured. A call starts only when both
  hold enough. The provider's ``x-ratelimit-remaining-*`` (read on every reply) set our
  buckets' levels (less what we sent since that call), and
  ``x-ratelimit-reset-*`` (time until the provider's bucket is full again) gives its burst
  capacity. Token counts are calibrated: the prompt estimate is
  scaled by the highest recent ratio of the prompt tokens the provider reported to our estimate
  (an overcharge is corrected by the next reply's headers; an undercharge would be a 429).
* **Concurrency (AIMD).** At most ``window`` calls are in flight, between 1 and the judge's
  ``concurrency``: +1/window per success (one more per round of calls), times
  ``decrease_factor`` on a 429 (after which nothing starts before its ``retry-after``), and
  times ``decrease_factor`` when a reply shows the provider's remaining quota near zero
  (below ``low_remaining`` of its limit) while our own buckets expected more: the quota is
  shared with someone else. Only one decrease per round: replies to calls sent before the last
  decrease do not decrease again.

Until the first reply, one call is in flight (a probe): a run that starts with ``concurrency``
calls at once would meet the provider's burst limit before it knows the quota.

Everything runs on one event loop; the clock is injectable for tests.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from dataclasses import dataclass, field

from judges.config import RateLimitConfig

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
CALIBRATION_BOUNDS = (0.2, 5.0)           # provider tokens / our estimate, clipped to this range
REJECTED_MEMORY_S = 120.0                 # 429s remembered this long (to leave them out of "spent")


def parse_duration(text: str | None) -> float | None:
    """Seconds in an OpenAI reset header: ``"12ms"``, ``"1s"``, ``"6m0s"``, ``"1h2m3.5s"`` or a
    plain number of seconds; None when unreadable."""
    if text is None:
        return None
    text = text.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


def format_duration(seconds: float) -> str:
    """The reset header format: ``"120ms"`` below a second, ``"1.5s"``, ``"6m0s"``."""
    if seconds < 1:
        return f"{int(round(seconds * 1000))}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:.3g}s"


@dataclass
class ProviderQuota:
    """The ``x-ratelimit-*`` headers of one reply (None where absent)."""

    limit_requests: float | None = None
    limit_tokens: float | None = None
    remaining_requests: float | None = None
    remaining_tokens: float | None = None
    reset_requests_s: float | None = None
    reset_tokens_s: float | None = None

    @classmethod
    def from_headers(cls, headers) -> "ProviderQuota | None":
        if headers is None:
            return None

        def number(name: str) -> float | None:
            try:
                value = float(headers.get(name))
            except (TypeError, ValueError):
                return None
            return value if value >= 0 else None     # Azure sends -1 for "not applicable"

        quota = cls(number("x-ratelimit-limit-requests"), number("x-ratelimit-limit-tokens"),
                    number("x-ratelimit-remaining-requests"), number("x-ratelimit-remaining-tokens"),
                    parse_duration(headers.get("x-ratelimit-reset-requests")),
                    parse_duration(headers.get("x-ratelimit-reset-tokens")))
        return quota if any(v is not None for v in quota.__dict__.values()) else None


@dataclass
class Bucket:
    """A token bucket: ``level`` refills at ``rate`` per second up to ``capacity``."""

    rate: float
    capacity: float
    level: float
    at: float

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
        self.at = now

    def wait_s(self, amount: float, now: float) -> float:
        self.refill(now)
        need = min(amount, self.capacity) - self.level
        return 0.0 if need <= 0 else need / self.rate


@dataclass
class Ticket:
    """One admitted call: what it was charged and the state when it started."""

    tokens: float
    sent_at: float
    sent_requests: int                    # requests sent before and including this one
    sent_tokens: float                    # tokens charged before and including this one


@dataclass
class RateStats:
    """What the controller did (into a run's statistics)."""

    rate_limited: int = 0                 # 429 replies
    decreases: int = 0                    # multiplicative decreases of the window
    paced_s: float = 0.0                  # time calls waited for the buckets or a retry-after
    min_window: float = 0.0
    max_window: float = 0.0
    provider: dict = field(default_factory=dict)   # the last quota headers seen

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class RateController:
    """Admission of calls: pacing to the budgets and an AIMD window of calls in flight."""

    def __init__(self, cfg: RateLimitConfig, max_concurrency: int, clock=time.monotonic):
        self.cfg, self.max_window, self.clock = cfg, float(max_concurrency), clock
        self.window = float(max_concurrency)
        self.in_flight = 0
        self._outstanding: dict[int, float] = {}   # request seq -> tokens of the calls in flight
        self.requests = self._bucket(cfg.requests_per_minute)
        self.tokens = self._bucket(cfg.tokens_per_minute)
        self.sent_requests, self.sent_tokens = 0, 0.0
        self.calibration = 1.0                # provider prompt tokens / our estimate (high end)
        self._ratios: deque[float] = deque(maxlen=64)
        self._rejected: deque[tuple[float, int, float]] = deque()   # (time, request seq, tokens) of 429s
        self.paused_until = 0.0
        self.probing = True                   # one call in flight until a reply shows the quota
        self.last_decrease = float("-inf")
        self.stats = RateStats(min_window=self.window, max_window=self.window)
        self._slot = asyncio.Event()

    def _bucket(self, per_minute: float | None) -> Bucket | None:
        if per_minute is None:
            return None
        return Bucket(per_minute / 60.0, per_minute, per_minute, self.clock())

    def charge(self, est_prompt_tokens: int, max_tokens: int) -> float:
        """Tokens a call counts against the budget: calibrated prompt estimate + ``max_tokens``."""
        return est_prompt_tokens * self.calibration + max_tokens

    def _wait_s(self, tokens: float, now: float) -> float:
        waits = [self.paused_until - now]
        if self.requests is not None:
            waits.append(self.requests.wait_s(1, now))
        if self.tokens is not None:
            waits.append(self.tokens.wait_s(tokens, now))
        return max(waits)

    async def acquire(self, tokens: float) -> Ticket:
        """Wait until a call charged ``tokens`` may start; returns its ticket."""
        while True:
            if self.in_flight >= (1 if self.probing else max(1, int(self.window))):
                self._slot.clear()
                await self._slot.wait()
                continue
            now = self.clock()
            wait = self._wait_s(tokens, now)
            if wait > 0:
                self.stats.paced_s += min(wait, 0.5)
                await asyncio.sleep(min(wait, 0.5))
                continue
            for bucket, amount in ((self.requests, 1), (self.tokens, tokens)):
                if bucket is not None:
                    bucket.level -= amount
            ticket = Ticket(tokens, now, self.sent_requests + 1, self.sent_tokens + tokens)
            self.in_flight += 1
            self._outstanding[ticket.sent_requests] = tokens
            self.sent_requests, self.sent_tokens = ticket.sent_requests, ticket.sent_tokens
            return ticket

    def release(self, ticket: Ticket) -> None:
        self.in_flight -= 1
        self._outstanding.pop(ticket.sent_requests, None)
        self._slot.set()

    def _older_in_flight(self, ticket: Ticket) -> tuple[int, float]:
        """Calls sent before ``ticket`` and still unanswered: the provider may admit them after it."""
        n, tokens = 0, 0.0
        for seq, charge in self._outstanding.items():     # insertion order = send order
            if seq >= ticket.sent_requests:
                break
            n, tokens = n + 1, tokens + charge
        return n, tokens

    def on_reply(self, ticket: Ticket, headers, est_prompt: int | None = None,
                 prompt_tokens: int | None = None) -> None:
        """A 2xx reply: calibrate, read the provider's quota, grow the window."""
        self.probing = False
        if est_prompt and prompt_tokens:
            self._ratios.append(min(max(prompt_tokens / est_prompt, CALIBRATION_BOUNDS[0]),
                                    CALIBRATION_BOUNDS[1]))
            self.calibration = max(self._ratios)
        shared = self._read_quota(ticket, ProviderQuota.from_headers(headers))
        if shared:
            self._decrease(ticket)
        elif self.cfg.adaptive:
            self.window = min(self.max_window, self.window + 1.0 / self.window)
            self.stats.max_window = max(self.stats.max_window, self.window)

    def on_rate_limited(self, ticket: Ticket, headers, retry_after_s: float | None) -> None:
        """A 429: nothing starts before its retry-after; the window shrinks."""
        self.stats.rate_limited += 1
        self.probing = False
        now = self.clock()
        self._rejected.append((now, ticket.sent_requests, ticket.tokens))
        while self._rejected and self._rejected[0][0] < now - REJECTED_MEMORY_S:
            self._rejected.popleft()
        self._read_quota(ticket, ProviderQuota.from_headers(headers))
        if retry_after_s:
            self.paused_until = max(self.paused_until, self.clock() + retry_after_s)
        self._decrease(ticket)

    def _decrease(self, ticket: Ticket) -> None:
        if not self.cfg.adaptive or ticket.sent_at < self.last_decrease:
            return                                   # one decrease per round of calls
        self.window = max(1.0, self.window * self.cfg.decrease_factor)
        self.last_decrease = self.clock()
        self.stats.decreases += 1
        self.stats.min_window = min(self.stats.min_window, self.window)

    def _read_quota(self, ticket: Ticket, quota: ProviderQuota | None) -> bool:
        """Adopt the provider's limits and remaining quota; True when its remaining quota is
        near zero below what our buckets expected (the quota is shared)."""
        if quota is None:
            return False
        self.stats.provider = {k: v for k, v in quota.__dict__.items() if v is not None}
        now = self.clock()
        shared = False
        # sent after this call and not refused (a 429 charges nothing), plus older calls in flight
        refused = [tokens for _, seq, tokens in self._rejected if seq > ticket.sent_requests]
        older_n, older_tokens = self._older_in_flight(ticket)
        for kind, spent in (("requests", self.sent_requests - ticket.sent_requests + older_n - len(refused)),
                            ("tokens", self.sent_tokens - ticket.sent_tokens + older_tokens - sum(refused))):
            limit = getattr(quota, f"limit_{kind}")
            remaining = getattr(quota, f"remaining_{kind}")
            reset = getattr(quota, f"reset_{kind}_s")
            bucket = self._adopt(kind, limit, remaining, reset, now)
            if bucket is None or remaining is None:
                continue
            # the provider's level now: its remaining when it admitted the call, minus what we
            # sent since and the older calls still unanswered (which it may have admitted after
            # this call: counting one twice only lowers the burst, not the steady rate). No refill is credited for the time since: when the provider admitted
            # the call (between sending and the reply) is unknown, and crediting the whole
            # latency overshoots on a busy provider. The provider is the authority either way
            # (a one-way sync would keep every underestimate of ours and none of the
            # overestimates, and pace below the limit).
            expected = min(bucket.capacity, remaining - spent)
            bucket.refill(now)
            low = limit is not None and remaining <= self.cfg.low_remaining * limit
            shared = shared or (low and bucket.level - expected > ticket.tokens)
            bucket.level = expected
        return shared

    def _adopt(self, kind: str, limit: float | None, remaining: float | None, reset: float | None,
               now: float) -> Bucket | None:
        """Our bucket for ``kind``, created or slowed to the provider's limit when that is lower."""
        bucket = self.requests if kind == "requests" else self.tokens
        if limit is None or limit <= 0:
            return bucket
        rate = limit / 60.0
        capacity = limit
        if remaining is not None and reset is not None:
            capacity = min(limit, remaining + reset * rate)   # reset = time until full again
        if bucket is None:
            bucket = Bucket(rate, capacity, min(capacity, remaining if remaining is not None else capacity), now)
            setattr(self, kind, bucket)
        elif rate < bucket.rate - 1e-12:
            bucket.refill(now)
            bucket.rate = rate
        if capacity < bucket.capacity:
            bucket.capacity = max(capacity, 1.0)
            bucket.level = min(bucket.level, bucket.capacity)
        return bucket
