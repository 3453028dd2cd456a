"""The ``Judge`` protocol and its OpenAI-compatible implementation.

A judge turns chat messages into a :class:`Completion` or raises :class:`CallFailed` after its
retries. :class:`OpenAIJudge` talks to any OpenAI-compatible endpoint (OpenAI, a vLLM server, the
local rubric server) through :class:`ChatClient` (``openai.AsyncOpenAI`` underneath), with:

* a per-call timeout (the client's own HTTP timeout, plus an asyncio guard);
* retries with exponential backoff and jitter for 429, 5xx, timeouts, dropped connections,
  unreadable bodies and empty ``choices``; a 429/503 ``Retry-After`` (or ``retry-after-ms``) is
  honoured: the next attempt waits at least that long (capped by ``max_retry_after_s``);
* no retry for other 4xx (bad request, auth): they fail at once;
* every attempt recorded (error, status, wait) so the transcript row shows the whole story;
* calls paced to a requests/tokens-per-minute budget and the provider's ``x-ratelimit-*``
  headers, with adaptive concurrency (:mod:`judges.ratelimit`);
* one client for all of a judge's calls, on openai's aiohttp transport
  (``openai.DefaultAioHttpClient``), which costs about half the CPU per call of the default
  httpx2 transport (see ``benchmarks/judge_throughput.py``).

The API key is passed to the client and nowhere else; error texts are scrubbed of it before they
reach a transcript or a log.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import re
import time
from dataclasses import dataclass, field
from typing import Protocol

from judges.budget import estimate_tokens
from judges.config import JudgeConfig, RateLimitConfig, RetryConfig
from judges.ratelimit import RateController

_KEYLIKE = re.compile(r"(sk-|Bearer\s+)[A-Za-z0-9_\-\.]{6,}")


@dataclass
class Completion:
    """A judge's reply to one call."""

    text: str | None                      # message content (None when the API sent none)
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    logprobs: list[dict] | None           # choices[0].logprobs.content as plain dicts
    refusal: str | None = None            # message.refusal when the API sets it
    model: str | None = None              # model name the endpoint reports
    system_fingerprint: str | None = None  # the backend configuration the endpoint reports
    attempts: list[dict] = field(default_factory=list)
    latency_s: float = 0.0                # wall time of all attempts and waits


class CallFailed(Exception):
    """Every attempt failed (or a non-retryable error): the judgment is an ``api_error``."""

    def __init__(self, error: str, attempts: list[dict], latency_s: float):
        super().__init__(error)
        self.error, self.attempts, self.latency_s = error, attempts, latency_s


class Judge(Protocol):
    """Anything that answers chat messages: an OpenAI-compatible client, a fake in a test."""

    name: str

    async def complete(self, messages: list[dict]) -> Completion: ...

    async def aclose(self) -> None: ...


def scrub(text: str, secret: str | None) -> str:
    """Remove the API key (and anything shaped like one) from an error text."""
    if secret:
        text = text.replace(secret, "***")
    return _KEYLIKE.sub(r"\1***", text)


def retry_after_seconds(headers) -> float | None:
    """Seconds a server asked us to wait: ``retry-after-ms``, ``retry-after`` (seconds or date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return max(0.0, email.utils.mktime_tz(parsed) - time.time())


def backoff_delay(attempt: int, r: RetryConfig, rng: random.Random,
                  retry_after: float | None = None) -> float:
    """Wait before attempt ``attempt + 1``: exponential with jitter, at least ``retry_after``."""
    base = min(r.backoff_max_s, r.backoff_base_s * (2 ** (attempt - 1)))
    delay = base * (1.0 + r.jitter * rng.uniform(-1.0, 1.0))
    if retry_after is not None:
        delay = max(delay, min(retry_after, r.max_retry_after_s))
    return max(0.0, delay)


class ChatClient:
    """An OpenAI-compatible ``/v1/chat/completions`` client: retries, Retry-After, and calls paced
    to the provider's rate limits (:class:`judges.ratelimit.RateController`). The judges and the
    endpoint generation backend (:mod:`alignment.generation_endpoint`) both use it."""

    def __init__(self, base_url: str, api_key: str | None, *, concurrency: int, timeout_s: float,
                 retry: RetryConfig, rate_limit: RateLimitConfig | None = None, seed: int = 0):
        import httpx2
        import openai

        self._key, self.timeout_s, self.retry = api_key, timeout_s, retry
        # httpx2 logs every request at INFO; a judge run makes thousands of them
        for noisy in ("httpx2", "httpx", "httpcore2"):
            if logging.getLogger(noisy).level == logging.NOTSET:
                logging.getLogger(noisy).setLevel(logging.WARNING)
        self._openai, self._httpx = openai, httpx2
        limits = httpx2.Limits(max_connections=concurrency + 8,
                               max_keepalive_connections=concurrency + 8)
        # One client for every call. Its HTTP transport is aiohttp (openai's own
        # DefaultAioHttpClient): about half the client CPU per call of the default httpx2
        # transport, whose pool also scans every connection on each request.
        # "EMPTY" is the conventional non-key for servers that want none (vLLM, the local one).
        self.openai = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "EMPTY", max_retries=0, timeout=timeout_s,
            http_client=openai.DefaultAioHttpClient(limits=limits, timeout=timeout_s))
        self.rate = RateController(rate_limit or RateLimitConfig(adaptive=False), concurrency)
        self._rng = random.Random(seed)

    async def complete(self, messages: list[dict], params: dict, est_prompt_tokens: int = 0) -> Completion:
        """One chat completion with ``params`` (model, decoding, ...), retried as the module says."""
        attempts: list[dict] = []
        start = time.perf_counter()
        charge = self.rate.charge(est_prompt_tokens, int(params.get("max_tokens") or 0))
        for attempt in range(1, self.retry.max_attempts + 1):
            ticket = await self.rate.acquire(charge)
            t0 = time.perf_counter()
            try:
                reply = await asyncio.wait_for(self._post(messages, params), timeout=self.timeout_s + 1.0)
                out = completion_from_json(_json_body(reply))
            except Exception as exc:  # classified below; anything unknown is retried
                error, status, retryable, wait_hint = self._classify(exc)
                self._after_failure(ticket, exc, status, wait_hint)
            else:
                self.rate.on_reply(ticket, reply.headers, est_prompt_tokens, out.prompt_tokens)
                self.rate.release(ticket)
                out.attempts = attempts + [{"attempt": attempt, "ok": True,
                                            "latency_s": round(time.perf_counter() - t0, 4)}]
                out.latency_s = time.perf_counter() - start
                return out
            record = {"attempt": attempt, "ok": False, "error": error, "status_code": status,
                      "latency_s": round(time.perf_counter() - t0, 4)}
            if not retryable or attempt == self.retry.max_attempts:
                attempts.append(record)
                raise CallFailed(error, attempts, time.perf_counter() - start)
            record["wait_s"] = round(backoff_delay(attempt, self.retry, self._rng, wait_hint), 4)
            attempts.append(record)
            await asyncio.sleep(record["wait_s"])
        raise AssertionError("unreachable")

    def _after_failure(self, ticket, exc: Exception, status: int | None, wait_hint: float | None) -> None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
        if status == 429:
            self.rate.on_rate_limited(ticket, headers, wait_hint)
        self.rate.release(ticket)

    async def _post(self, messages: list[dict], params: dict):
        """POST /chat/completions through the client's generic ``post``; returns the raw reply
        (its JSON body is read by :func:`_json_body`, its rate-limit headers by the controller).

        The same request as ``chat.completions.create``, minus two per-call costs that matter
        at hundreds of calls a second: the TypedDict transform of the request body (ours is
        plain JSON already) and the pydantic model of the response (we read a few fields).
        HTTP errors still surface as the client's exceptions (RateLimitError, ...)."""
        return await self.openai.post("/chat/completions", cast_to=self._httpx.Response,
                                      body={"messages": messages, **params})

    def _classify(self, exc: Exception) -> tuple[str, int | None, bool, float | None]:
        """(error text, HTTP status, retryable?, Retry-After seconds)."""
        o = self._openai
        if isinstance(exc, (_EmptyChoices, _Unreadable)):
            return str(exc), 200, True, None
        root = _root_cause(exc)
        # the aiohttp transport reports a refused or reset connection as an httpx2
        # ConnectTimeout (so openai raises APITimeoutError): only a real timeout at the root
        # (or our own asyncio guard) is a timeout
        if isinstance(exc, (asyncio.TimeoutError, o.APITimeoutError)) and (
                root is exc or isinstance(root, TimeoutError)):
            return f"timeout after {self.timeout_s:g}s", None, True, None
        if isinstance(exc, o.APIStatusError):
            status = exc.status_code
            retryable = status in (408, 409, 429) or status >= 500
            wait = retry_after_seconds(exc.response.headers) if status in (429, 503) else None
            return scrub(f"HTTP {status}: {exc.message}"[:500], self._key), status, retryable, wait
        if isinstance(exc, o.APIConnectionError):
            return scrub(f"connection error: {type(root).__name__}: {root}"[:500], self._key), \
                None, True, None
        return scrub(f"{type(exc).__name__}: {exc}"[:500], self._key), None, True, None

    async def aclose(self) -> None:
        await self.openai.close()


class OpenAIJudge:
    """A judge behind an OpenAI-compatible ``/v1/chat/completions`` endpoint."""

    def __init__(self, cfg: JudgeConfig, base_url: str, api_key: str | None, seed: int = 0):
        self.name, self.cfg = cfg.name, cfg
        self.chat = ChatClient(base_url, api_key, concurrency=cfg.concurrency, timeout_s=cfg.timeout_s,
                               retry=cfg.retry, rate_limit=cfg.rate_limit, seed=seed)
        self.client = self.chat.openai
        self.params = judge_request_params(cfg)

    async def complete(self, messages: list[dict]) -> Completion:
        return await self.chat.complete(messages, self.params, estimate_tokens(messages))

    async def aclose(self) -> None:
        await self.chat.aclose()


def judge_request_params(cfg: JudgeConfig) -> dict:
    """The request body of a judge call, less its messages (online and batch alike)."""
    d = cfg.decoding
    params = {"model": cfg.model, "temperature": d.temperature, "top_p": d.top_p,
              "max_tokens": d.max_tokens}
    if cfg.seed is not None:
        params["seed"] = cfg.seed
    if d.logprobs:
        params["logprobs"] = True
        params["top_logprobs"] = d.top_logprobs
    return params


def _json_body(reply) -> dict:
    try:
        return json.loads(reply.content)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _Unreadable(f"response body is not JSON ({e})") from None


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost ``__cause__`` (what the transport actually saw)."""
    seen = {id(exc)}
    while exc.__cause__ is not None and id(exc.__cause__) not in seen:
        exc = exc.__cause__
        seen.add(id(exc))
    return exc


def completion_from_json(data) -> Completion:
    """A :class:`Completion` from an OpenAI chat-completion JSON body (``choices[0]``)."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not choices or not isinstance(choices[0], dict):
        raise _EmptyChoices("empty choices in the response")
    choice = choices[0]
    message = choice.get("message") or {}
    content = (choice.get("logprobs") or {}).get("content")
    logprobs = None
    if content:
        logprobs = [{"token": t["token"], "logprob": t["logprob"],
                     "top_logprobs": [{"token": a["token"], "logprob": a["logprob"]}
                                      for a in (t.get("top_logprobs") or [])]}
                    for t in content]
    usage = data.get("usage") or {}
    return Completion(
        text=message.get("content"), finish_reason=choice.get("finish_reason"),
        prompt_tokens=usage.get("prompt_tokens"), completion_tokens=usage.get("completion_tokens"),
        logprobs=logprobs, refusal=message.get("refusal"), model=data.get("model"),
        system_fingerprint=data.get("system_fingerprint"))


class _EmptyChoices(Exception):
    pass


class _Unreadable(Exception):
    pass
