"""Configuration of one judge: endpoint, model, template, decoding, concurrency, retries, budget.

A ``JudgeConfig`` says everything that decides what a judge call returns and how the client
behaves. The endpoint is ``base_url``: ``"local"`` starts the built-in rubric server
(:mod:`judges.server`) for the duration of a call to :func:`judges.api.judge_pairs`; any other
value is an OpenAI-compatible URL (OpenAI, a vLLM server, ...) whose key is read from the
environment variable named by ``api_key_env`` at call time, never stored. With
``transcript_key_env`` the transcript's hash chain is keyed (HMAC-SHA256 with the key held in that
variable; only a key id is written), so rewriting a transcript needs the key
(:mod:`judges.transcripts`).

    cfg = JudgeConfig(base_url="https://api.openai.com/v1", model="gpt-4o",
                      api_key_env="OPENAI_API_KEY", template="huatuo_pairwise",
                      price=PriceConfig(input_per_mtok=2.5, output_per_mtok=10.0),
                      budget=BudgetConfig(max_cost=5.0))
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from medalign.config import StrictModel

FaultMode = Literal["rate_limit", "server_error", "hang", "drop", "truncated", "malformed",
                    "bad_json", "empty_choices", "refusal", "out_of_range", "obey_injection"]


class DecodingConfig(StrictModel):
    """Sampling parameters sent with every judge request (all part of the cache key)."""

    temperature: float = Field(0.0, ge=0.0, le=2.0)      # 0 = greedy: judgments repeat exactly
    top_p: float = Field(1.0, gt=0.0, le=1.0)            # nucleus sampling mass
    max_tokens: int = Field(256, ge=1)                   # completion length cap per call
    logprobs: bool = False                               # ask for token log-probs (soft scores)
    top_logprobs: int = Field(5, ge=0, le=20)            # alternatives per token when logprobs


class RetryConfig(StrictModel):
    """Retries of a failed call (429, 5xx, timeouts, dropped connections, empty replies)."""

    max_attempts: int = Field(4, ge=1)                   # first try included
    backoff_base_s: float = Field(0.25, ge=0.0)          # delay before retry n: base * 2**(n-1)
    backoff_max_s: float = Field(20.0, ge=0.0)           # cap on one backoff delay
    jitter: float = Field(0.5, ge=0.0, le=1.0)           # +/- fraction of random jitter on a delay
    max_retry_after_s: float = Field(120.0, ge=0.0)      # cap on a server's Retry-After


class BudgetConfig(StrictModel):
    """Stop starting new calls once a limit would be passed; finished work is kept."""

    max_calls: int | None = Field(None, ge=0)            # API calls (cache hits are free)
    max_tokens: int | None = Field(None, ge=0)           # prompt + completion tokens
    max_cost: float | None = Field(None, ge=0.0)         # currency units of the price table


class PriceConfig(StrictModel):
    """Price per million tokens; None = unknown (a cost budget then refuses to run). The batch
    prices apply to ``mode: batch`` (OpenAI's Batch API costs half the online price)."""

    input_per_mtok: float | None = Field(None, ge=0.0)   # prompt tokens
    output_per_mtok: float | None = Field(None, ge=0.0)  # completion tokens
    batch_input_per_mtok: float | None = Field(None, ge=0.0)   # prompt tokens through the Batch API
    batch_output_per_mtok: float | None = Field(None, ge=0.0)  # completion tokens through the Batch API

    @property
    def known(self) -> bool:
        return self.input_per_mtok is not None and self.output_per_mtok is not None

    def for_mode(self, mode: str) -> "PriceConfig":
        """The prices a call in ``mode`` (online | batch) pays, as an online price table."""
        if mode == "online":
            return self
        return PriceConfig(input_per_mtok=self.batch_input_per_mtok,
                           output_per_mtok=self.batch_output_per_mtok)


class RateLimitConfig(StrictModel):
    """Stay within a provider's rate limits: pace calls to a requests- and tokens-per-minute
    budget, read the provider's ``x-ratelimit-*`` headers, and adapt the calls in flight (between
    1 and ``concurrency``): additive increase while calls succeed, multiplicative decrease on a
    429 or when the provider's remaining quota is near zero below what our own pacing expects
    (someone else shares it). See :mod:`judges.ratelimit`."""

    requests_per_minute: float | None = Field(None, gt=0)  # budget of calls a minute (None: the provider's headers only)
    tokens_per_minute: float | None = Field(None, gt=0)    # budget of prompt + max_tokens a minute (None: headers only)
    adaptive: bool = True                                   # AIMD on the calls in flight (false: always `concurrency`)
    decrease_factor: float = Field(0.5, gt=0, lt=1)         # calls in flight are multiplied by this on a 429
    low_remaining: float = Field(0.05, ge=0, lt=1)          # remaining below this share of the provider's limit is near zero


class BatchConfig(StrictModel):
    """``mode: batch``: the OpenAI Batch API (upload a JSONL of requests, create a batch, poll,
    download the results). See :mod:`judges.batch`."""

    completion_window: str = "24h"                       # the window the provider may take (OpenAI: 24h only)
    poll_interval_s: float = Field(30.0, gt=0)           # seconds between status checks
    max_requests: int = Field(50_000, ge=1)              # requests per batch (OpenAI: at most 50,000)
    max_wait_s: float | None = Field(None, gt=0)         # give up waiting after this long (None: until the batch ends); a rerun resumes


class LocalServerOptions(StrictModel):
    """Behaviour of the local rubric server (``base_url: local`` or ``medalign judge serve``)."""

    model: str = "medalign-rubric-v2"                    # model id the server answers to
    latency_ms: float = Field(0.0, ge=0.0)               # injected delay per request
    faults: list[FaultMode] = Field(default_factory=list)  # fault modes to inject
    fault_rate: float = Field(0.0, ge=0.0, le=1.0)       # probability a request gets a fault
    fault_seed: int = 0                                  # seeds the fault draws
    retry_after_s: float = Field(0.05, ge=0.0)           # Retry-After sent with injected 429s
    hang_s: float = Field(30.0, ge=0.0)                  # how long a "hang" fault stalls
    position_bias: float = 0.0                           # points added to the first position
    noise_std: float = Field(0.0, ge=0.0)                # gaussian noise on each rating (points)
    noise_seed: int = 0                                  # seeds the per-request noise
    requests_per_minute: float | None = Field(None, gt=0)  # rate limit on calls (429 past it; None: none)
    tokens_per_minute: float | None = Field(None, gt=0)    # rate limit on prompt + max_tokens (None: none)
    rate_window_s: float = Field(60.0, gt=0)             # the quota a client may burst: this many seconds' worth
    batch_min_s: float = Field(0.0, ge=0.0)              # a batch stays in progress at least this long

    def identity(self) -> str:
        """What changes the server's answers (latency and faults do not; faults are never cached)."""
        return (f"local:{self.model}:bias={self.position_bias}:noise={self.noise_std}"
                f":seed={self.noise_seed}")


class JudgeConfig(StrictModel):
    """One judge. Several of them make an ensemble (``judges: [...]`` in stage and run configs)."""

    name: str = "rubric"                                 # label in transcripts and reports
    base_url: str = "local"                              # "local" or an OpenAI-compatible URL
    model: str = "medalign-rubric-v2"                    # model id sent to the endpoint
    api_key_env: str | None = None                       # env var holding the key (never logged)
    template: str = "huatuo_pairwise"                    # built-in template id or a YAML path
    decoding: DecodingConfig = Field(default_factory=DecodingConfig)
    both_orders: bool = True                             # judge (A,B) and (B,A) for every pair
    soft_scores: bool = False                            # score = expected value under logprobs
    samples_per_order: int = Field(1, ge=1)              # repeat each call (temperature > 0)
    seed: int | None = 0                                 # sent as `seed`; None = not sent
    mode: Literal["online", "batch"] = "online"          # online calls, or the provider's Batch API (half price, hours)
    concurrency: int = Field(16, ge=1)                   # calls in flight at once (at most; see rate_limit)
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)  # rpm / tpm budget, adaptive concurrency
    batch: BatchConfig = Field(default_factory=BatchConfig)  # mode: batch only
    timeout_s: float = Field(60.0, gt=0.0)               # per-call timeout
    retry: RetryConfig = Field(default_factory=RetryConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    price: PriceConfig = Field(default_factory=PriceConfig)
    cache_dir: str | None = None                         # None = <store_dir>/cache
    transcript_key_env: str | None = None                # env var with the HMAC key of the transcript chain (None: plain sha256)
    local: LocalServerOptions = Field(default_factory=LocalServerOptions)  # base_url: local only

    @field_validator("base_url")
    @classmethod
    def _url_or_local(cls, v: str) -> str:
        if v != "local" and not v.startswith(("http://", "https://")):
            raise ValueError("must be 'local' or an http(s):// URL of an OpenAI-compatible API")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _consistent(self) -> "JudgeConfig":
        if self.budget.max_cost is not None and not self.price.known and self.base_url != "local":
            raise ValueError("budget.max_cost needs price.input_per_mtok and price.output_per_mtok")
        if (self.mode == "batch" and self.budget.max_cost is not None and self.base_url != "local"
                and not self.price.for_mode("batch").known):
            raise ValueError("mode: batch with budget.max_cost needs price.batch_input_per_mtok and "
                             "price.batch_output_per_mtok")
        if self.soft_scores and not self.decoding.logprobs:
            raise ValueError("soft_scores needs decoding.logprobs: true")
        return self

    @property
    def is_local(self) -> bool:
        return self.base_url == "local"

    def endpoint_identity(self) -> str:
        """The endpoint as it enters cache keys: a URL, or the local server's answer-shaping options."""
        return self.local.identity() if self.is_local else self.base_url
