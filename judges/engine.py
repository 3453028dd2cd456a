"""Run a list of judgments against one judge: cache, budget, bounded concurrency, transcripts.

A :class:`Judgment` is one judge call: one rendered prompt (one order of a pair, or one response
for a single-answer template) and one sample index. For each judgment, in a pool of
``cfg.concurrency`` workers:

1. already ``ok`` in the transcript (an earlier run) -> skipped, nothing written;
2. in the cache -> parsed from the cached completion, written with ``cache_hit: true``;
3. otherwise, if the budget allows, the judge is called (with its retries), the completion is
   parsed, one row is written to the transcript, and an ``ok`` completion goes to the cache;
4. if the budget does not allow it, the judgment is left for a later run (``not_run``).

Exactly one row is written per judgment per run, after its last attempt; retries live inside it.
Each row carries the judgment's lineage (``pair_id`` links the two orders of a pair,
``sample_ids`` the responses compared) and its flags (:mod:`judges.flags`). The values of the
API keys in use never reach the transcript or the cache, even when a server echoes one inside
its completion: they are masked (see :func:`judges.transcripts.mask_secrets`).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from judges.budget import Budget, estimate_tokens
from judges.cache import CompletionCache
from judges.client import CallFailed, Completion, Judge
from judges.config import JudgeConfig
from judges.flags import flag_names, parroted
from judges.parsers import PARSER_VERSION, Parsed, parse_completion, soft_scores
from judges.templates import TemplateSpec
from judges.transcripts import TranscriptStore, mask_secrets


@dataclass
class Judgment:
    """One judge call to make."""

    judgment_id: str
    prompt_id: str
    positions: dict[str, str]             # "A" (and "B") -> the response id shown there
    order: str                            # "ab" | "ba" (pairwise) | "single"
    sample_index: int
    language: str
    messages: list[dict]
    cache_key: str
    pair_id: str | None = None            # links the orders of one pair (None: single answer)
    sample_ids: list[str] = field(default_factory=list)   # the responses compared
    texts: dict[str, str] = field(default_factory=dict)   # position -> candidate text shown
    flag_details: list[dict] = field(default_factory=list)  # candidate flags (judges.flags)
    tags: dict[str, str] | None = None    # prompt metadata for audits (department, intent)


@dataclass
class EngineContext:
    cfg: JudgeConfig
    spec: TemplateSpec
    store: TranscriptStore
    cache: CompletionCache
    budget: Budget
    run_id: str
    progress: bool = False
    bar_position: int = 0                 # terminal line of this judge's progress bar
    secrets: tuple[str, ...] = ()         # values masked in everything written (API keys)
    # reads a completion (text, finish_reason) into a Parsed; None: the template's rating parser.
    # Callers whose replies are not ratings (a simulated patient, a rubric-criterion grader)
    # pass their own, so they still get the cache, budget, retries and transcript of the engine.
    parse: Callable[[str | None, str | None], Parsed] | None = None
    # the same in every row of the run: computed once, not per call (a template hash is a
    # model dump + sha256, ~70 us; a run writes hundreds of rows a second)
    row_constants: dict = field(init=False)

    def __post_init__(self) -> None:
        cfg = self.cfg
        self.row_constants = {
            "model": cfg.model, "endpoint": cfg.endpoint_identity(),
            "decoding": cfg.decoding.model_dump(), "seed": cfg.seed, "template_id": self.spec.id,
            "template_hash": self.spec.hash, "judge": cfg.name, "run_id": self.run_id,
            "parser_version": PARSER_VERSION}


@dataclass
class RunStats:
    """What one run of one judge did (goes into reports)."""

    judge: str
    run_id: str
    planned: int = 0                      # judgments asked for
    already_done: int = 0                 # ok in the transcript before this run
    cache_hits: int = 0
    api_calls: int = 0                    # judgments sent to the endpoint (retries count once)
    attempts: int = 0                     # HTTP attempts, retries included
    not_run: int = 0                      # left for a later run (budget)
    statuses: Counter = field(default_factory=Counter)   # rows written this run, by status
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = 0.0
    budget_stopped: str | None = None
    truncated_bytes: int = 0              # partial transcript tail removed at open
    wall_s: float = 0.0
    mode: str = "online"                  # online | batch
    rate: dict | None = None              # rate controller: 429s, decreases, window, provider quota
    batches: list[dict] = field(default_factory=list)   # mode batch: id, status, counts per batch

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["statuses"] = dict(self.statuses)
        return d


async def run_judgments(judgments: list[Judgment], judge: Judge, ctx: EngineContext) -> RunStats:
    """Judge everything not yet ok; returns the run's statistics."""
    stats = RunStats(judge=ctx.cfg.name, run_id=ctx.run_id, planned=len(judgments),
                     truncated_bytes=ctx.store.truncated_bytes)
    start = time.perf_counter()
    todo = []
    for j in judgments:
        if ctx.store.is_done(j.judgment_id):
            stats.already_done += 1
        else:
            todo.append(j)
    queue: asyncio.Queue = asyncio.Queue()
    for j in todo:
        queue.put_nowait(j)
    bar = _progress_bar(len(todo), ctx)

    async def worker() -> None:
        while not queue.empty():
            j = queue.get_nowait()
            await _judge_one(j, judge, ctx, stats)
            if bar is not None:
                bar.update(1)

    workers = [asyncio.create_task(worker()) for _ in range(min(ctx.cfg.concurrency, len(todo)) or 0)]
    try:
        await asyncio.gather(*workers)
    finally:
        for w in workers:
            w.cancel()
        if bar is not None:
            bar.close()
        ctx.store.write_head()
    finish_stats(stats, ctx, start)
    chat = getattr(judge, "chat", None)
    if chat is not None:
        stats.rate = chat.rate.stats.to_dict()
    return stats


def finish_stats(stats: RunStats, ctx: EngineContext, start: float) -> None:
    """Budget, cost and wall time into a run's statistics (online and batch runs)."""
    stats.budget_stopped = ctx.budget.stopped
    stats.cost = ctx.budget.cost if ctx.budget.cost_known else None
    stats.wall_s = round(time.perf_counter() - start, 3)


def _progress_bar(total: int, ctx: EngineContext):
    if not ctx.progress or total == 0:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=f"judge {ctx.cfg.name}", unit="call", position=ctx.bar_position)


async def _judge_one(j: Judgment, judge: Judge, ctx: EngineContext, stats: RunStats) -> None:
    if write_cached(j, ctx, stats):
        return
    reservation = ctx.budget.try_reserve(estimate_tokens(j.messages), ctx.cfg.decoding.max_tokens)
    if reservation is None:
        stats.not_run += 1
        return
    stats.api_calls += 1
    try:
        completion = await judge.complete(j.messages)
    except CallFailed as failed:
        ctx.budget.settle(reservation, 0, 0)
        record_failure(j, ctx, stats, failed.error, failed.attempts, failed.latency_s)
        return
    cost = ctx.budget.settle(reservation, completion.prompt_tokens, completion.completion_tokens)
    record_completion(j, ctx, stats, completion, cost)


def write_cached(j: Judgment, ctx: EngineContext, stats: RunStats) -> bool:
    """Write the judgment's row from the cache (``cache_hit: true``); False when not cached."""
    cached = ctx.cache.get(j.cache_key)
    if cached is None:
        return False
    completion = Completion(text=cached["completion"], finish_reason=cached.get("finish_reason"),
                            prompt_tokens=cached.get("prompt_tokens"),
                            completion_tokens=cached.get("completion_tokens"),
                            logprobs=cached.get("logprobs"), model=cached.get("model"))
    parsed = _parse(ctx, completion)
    _write(j, ctx, stats, completion, parsed, None, cache_hit=True, cost=0.0)
    stats.cache_hits += 1
    return True


def record_failure(j: Judgment, ctx: EngineContext, stats: RunStats, error: str,
                   attempts: list[dict], latency_s: float = 0.0) -> None:
    """Write an ``api_error`` row: every attempt failed (or a batch had no result for it)."""
    stats.attempts += len(attempts)
    stub = Completion(None, None, None, None, None, attempts=attempts, latency_s=latency_s)
    _write(j, ctx, stats, stub, None, error, cache_hit=False, cost=0.0)


def record_completion(j: Judgment, ctx: EngineContext, stats: RunStats, completion: Completion,
                      cost: float | None) -> None:
    """Parse a completion, write its row, and cache it when it parsed ``ok`` (online and batch)."""
    stats.attempts += len(completion.attempts)
    stats.prompt_tokens += completion.prompt_tokens or 0
    stats.completion_tokens += completion.completion_tokens or 0
    if completion.refusal and not completion.text:
        parsed = Parsed("refused", error="the judge declined: " + completion.refusal[:160])
    else:
        parsed = _parse(ctx, completion)
    row = _write(j, ctx, stats, completion, parsed, None, cache_hit=False, cost=cost)
    if parsed.status == "ok":
        text = mask_secrets(completion.text, ctx.secrets)
        ctx.cache.put(j.cache_key, {
            "completion": text, "finish_reason": completion.finish_reason,
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            # tokens could spell a masked key across pieces: none are kept then
            "logprobs": completion.logprobs if text == completion.text else None,
            "model": completion.model, "judgment_id": j.judgment_id,
            "timestamp": row["timestamp"]})


def _parse(ctx: EngineContext, completion: Completion) -> Parsed:
    if ctx.parse is not None:
        return ctx.parse(completion.text, completion.finish_reason)
    return parse_completion(ctx.spec, completion.text, completion.finish_reason)


def _write(j: Judgment, ctx: EngineContext, stats: RunStats, completion: Completion,
           parsed: Parsed | None, api_error: str | None, *, cache_hit: bool,
           cost: float | None) -> dict:
    """Build the judgment's final transcript row and append it."""
    status = "api_error" if parsed is None else parsed.status
    soft = soft_scores(ctx.spec, completion.text or "", parsed, completion.logprobs) \
        if parsed is not None else None
    details = j.flag_details + parroted(parsed.statement if parsed else None, j.texts, j.positions)
    row = {
        "prompt_id": j.prompt_id, "positions": j.positions, "order": j.order,
        "pair_id": j.pair_id, "sample_ids": j.sample_ids,
        "flags": flag_names(details), "flag_details": details or None, "tags": j.tags,
        "messages": j.messages, "completion": completion.text,
        "scores": parsed.scores if parsed is not None else None, "soft_scores": soft,
        "span": list(parsed.span) if parsed is not None and parsed.span else None,
        "status": status, **ctx.row_constants,
        "latency_s": round(completion.latency_s, 4),
        "tokens": {"prompt": completion.prompt_tokens, "completion": completion.completion_tokens},
        "cost": cost, "cache_hit": cache_hit,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "judgment_id": j.judgment_id, "sample_index": j.sample_index, "language": j.language,
        "details": parsed.details if parsed is not None and parsed.details else None,
        "finish_reason": completion.finish_reason,
        "error": api_error if parsed is None else parsed.error,
        "attempts": completion.attempts, "cache_key": j.cache_key,
    }
    stats.statuses[status] += 1
    return ctx.store.append(row)
