"""``mode: batch``: judge through the provider's Batch API (OpenAI: half price, results within 24 h).

For the judgments not yet ``ok`` in the transcript and not in the cache:

1. reserve the budget of each (at the batch price, ``price.batch_*``); what the budget does not
   allow is ``not_run``, as online;
2. write their requests as JSONL, one a line (``{"custom_id": judgment id, "method": "POST",
   "url": "/v1/chat/completions", "body": the same body as an online call}``), at most
   ``batch.max_requests`` a batch; upload each file (``POST /v1/files``, ``purpose=batch``) and
   create the batch (``POST /v1/batches``);
3. save the batch id and its judgment ids in ``<store_dir>/checkpoints/batches-<judge>.json``
   at once, so a client that dies resumes polling the same batch instead of paying twice;
4. poll every ``batch.poll_interval_s`` until each batch ends (or ``batch.max_wait_s`` passes:
   the judgments still out are ``not_run`` and the next run resumes);
5. download the output and error files and map every line, by ``custom_id``, into the same
   transcript rows and cache entries as online calls (``attempts`` name the batch). A request
   the provider answered with an error, or that a failed / expired / cancelled batch left
   without a result, is an ``api_error`` row, judged again by the next run.

A batch the provider no longer knows (404: e.g. the local server was restarted) is dropped from
the state file and its judgments are sent again.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from judges.budget import estimate_tokens
from judges.client import OpenAIJudge, backoff_delay, completion_from_json, scrub
from judges.engine import (EngineContext, Judgment, RunStats, finish_stats, record_completion,
                           record_failure, write_cached)

ENDPOINT = "/v1/chat/completions"
ENDED = ("completed", "failed", "expired", "cancelled")


def state_path(store_dir: Path, judge: str) -> Path:
    return Path(store_dir) / "checkpoints" / f"batches-{judge}.json"


def _load_state(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return json.loads(path.read_text(encoding="utf-8"))["batches"]


def _save_state(path: Path, batches: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"batches": batches}, indent=1), encoding="utf-8")
    os.replace(tmp, path)


async def run_batch_judgments(judgments: list[Judgment], judge: OpenAIJudge, ctx: EngineContext,
                              store_dir: Path) -> RunStats:
    """Judge everything not yet ok through the Batch API; returns the run's statistics."""
    stats = RunStats(judge=ctx.cfg.name, run_id=ctx.run_id, planned=len(judgments),
                     truncated_bytes=ctx.store.truncated_bytes, mode="batch")
    start = time.perf_counter()
    todo = []
    for j in judgments:
        if ctx.store.is_done(j.judgment_id):
            stats.already_done += 1
        elif not write_cached(j, ctx, stats):
            todo.append(j)
    by_id = {j.judgment_id: j for j in todo}
    path = state_path(store_dir, ctx.cfg.name)
    history = _load_state(path)           # every batch of this store, collected ones kept
    api = _BatchApi(judge)
    for b in history:
        if not b.get("collected") and not await api.known(b):
            b.update(collected=True, status="unknown to the provider: sent again")
    batches = [b for b in history if not b.get("collected")]
    out = {jid for b in batches for jid in b["judgment_ids"]}
    reservations = {}
    for j in todo:
        if j.judgment_id in out:
            continue
        reservation = ctx.budget.try_reserve(estimate_tokens(j.messages), ctx.cfg.decoding.max_tokens)
        if reservation is None:
            stats.not_run += 1
            continue
        reservations[j.judgment_id] = reservation
    fresh = [j for j in todo if j.judgment_id in reservations]
    for i in range(0, len(fresh), ctx.cfg.batch.max_requests):
        chunk = fresh[i: i + ctx.cfg.batch.max_requests]
        try:
            entry = await api.submit(chunk, judge.params, ctx)
        except api.errors as e:           # refused (e.g. 400): every request of it is an api_error
            _refused(chunk, e, reservations, ctx, stats)
            continue
        batches.append(entry)
        history.append(entry)
        _save_state(path, history)
    await _poll_and_collect(batches, history, api, by_id, reservations, ctx, stats, path)
    finish_stats(stats, ctx, start)
    return stats


async def _poll_and_collect(batches: list[dict], history: list[dict], api: "_BatchApi",
                            by_id: dict[str, Judgment], reservations: dict, ctx: EngineContext,
                            stats: RunStats, path: Path) -> None:
    """Poll until every batch ended (or ``max_wait_s``); map each ended batch's results."""
    cfg = ctx.cfg.batch
    deadline = None if cfg.max_wait_s is None else time.monotonic() + cfg.max_wait_s
    waiting = [b for b in batches if not b.get("collected")]
    bar = _progress_bar(sum(len(b["judgment_ids"]) for b in waiting), ctx)
    while waiting:
        for b in list(waiting):
            remote = await api.retrieve(b["id"])
            b["status"] = remote.status
            if remote.status in ENDED:
                await _collect(b, remote, api, by_id, reservations, ctx, stats)
                b["collected"] = True
                waiting.remove(b)
                _save_state(path, history)
                if bar is not None:
                    bar.update(len(b["judgment_ids"]))
        if not waiting or (deadline is not None and time.monotonic() >= deadline):
            break
        await asyncio.sleep(cfg.poll_interval_s)
    for b in waiting:                     # still running: the next run resumes them
        stats.not_run += sum(1 for jid in b["judgment_ids"] if jid in by_id)
    stats.batches = [{k: b.get(k) for k in ("id", "status", "collected", "requests", "counts")}
                     for b in batches]
    if bar is not None:
        bar.close()


async def _collect(b: dict, remote, api: "_BatchApi", by_id: dict[str, Judgment], reservations: dict,
                   ctx: EngineContext, stats: RunStats) -> None:
    """Transcript rows (and cache entries) for every judgment of an ended batch."""
    lines = []
    for file_id in (remote.output_file_id, remote.error_file_id):
        if file_id:
            lines += [json.loads(raw) for raw in (await api.content(file_id)).splitlines() if raw.strip()]
    b["counts"] = {"results": len(lines), "requests": len(b["judgment_ids"])}
    wall = max(0.0, float((remote.completed_at or remote.failed_at or remote.expired_at
                           or remote.cancelled_at or time.time()) - remote.created_at))
    seen = set()
    for line in lines:
        j = by_id.get(line.get("custom_id"))
        if j is None or j.judgment_id in seen or j.judgment_id not in b["judgment_ids"]:
            continue                      # not ours, or judged since: nothing to write
        seen.add(j.judgment_id)
        _record_line(j, line, b["id"], wall, reservations.pop(j.judgment_id, None), ctx, stats)
    why = remote.errors.data[0].message if remote.errors and remote.errors.data else remote.status
    for jid in b["judgment_ids"]:
        if jid in by_id and jid not in seen:
            reservation = reservations.pop(jid, None)
            if reservation is not None:
                ctx.budget.settle(reservation, 0, 0)
            record_failure(by_id[jid], ctx, stats, f"batch {b['id']} ended {remote.status} without a "
                           f"result for this request ({why})",
                           [{"attempt": 1, "ok": False, "batch_id": b["id"], "error": str(why)}], wall)


def _refused(chunk: list[Judgment], error: Exception, reservations: dict, ctx: EngineContext,
             stats: RunStats) -> None:
    text = scrub(f"the batch could not be created: {type(error).__name__}: {error}"[:500], judge_key(ctx))
    for j in chunk:
        ctx.budget.settle(reservations.pop(j.judgment_id), 0, 0)
        record_failure(j, ctx, stats, text, [{"attempt": 1, "ok": False, "error": text}])


def judge_key(ctx: EngineContext) -> str | None:
    return next(iter(ctx.secrets), None)


def _record_line(j: Judgment, line: dict, batch_id: str, wall: float, reservation, ctx: EngineContext,
                 stats: RunStats) -> None:
    response = line.get("response") or {}
    status = response.get("status_code")
    body = response.get("body")
    stats.api_calls += 1
    attempt = {"attempt": 1, "batch_id": batch_id, "request_id": response.get("request_id"),
               "status_code": status}
    error = None
    if status is not None and 200 <= status < 300:
        try:
            completion = completion_from_json(body)
        except Exception as e:  # noqa: BLE001 - empty choices: an api_error row, judged again later
            error = str(e)
        else:
            completion.attempts, completion.latency_s = [{**attempt, "ok": True}], wall
            cost = (ctx.budget.settle(reservation, completion.prompt_tokens, completion.completion_tokens)
                    if reservation is not None else
                    ctx.budget.spend(completion.prompt_tokens, completion.completion_tokens))
            record_completion(j, ctx, stats, completion, cost)
            return
    if error is None:
        detail = (body or {}).get("error") if isinstance(body, dict) else None
        detail = detail or line.get("error") or {}
        error = f"HTTP {status}: {detail.get('message', 'no message')}"[:500] if status else \
            f"{detail.get('code', 'error')}: {detail.get('message', 'no message')}"[:500]
    if reservation is not None:
        ctx.budget.settle(reservation, 0, 0)
    record_failure(j, ctx, stats, f"batch {batch_id}: {error}", [{**attempt, "ok": False, "error": error}], wall)


class _BatchApi:
    """The Batch API calls, each retried like a judge call on 429, 5xx and dropped connections."""

    def __init__(self, judge: OpenAIJudge):
        self.client, self.retry, self._judge = judge.client, judge.cfg.retry, judge
        o = judge.chat._openai
        self.errors = (o.APIStatusError, o.APIConnectionError)   # what a refused call raises

    async def _call(self, make):
        import random

        o = self._judge.chat._openai
        rng = random.Random(0)
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                return await make()
            except (o.APIConnectionError, o.RateLimitError, o.InternalServerError):
                if attempt == self.retry.max_attempts:
                    raise
                await asyncio.sleep(backoff_delay(attempt, self.retry, rng))

    async def known(self, b: dict) -> bool:
        """False when the provider no longer knows the batch (its judgments are sent again)."""
        o = self._judge.chat._openai
        try:
            await self.retrieve(b["id"])
        except o.NotFoundError:
            return False
        return True

    async def retrieve(self, batch_id: str):
        return await self._call(lambda: self.client.batches.retrieve(batch_id))

    async def content(self, file_id: str) -> bytes:
        reply = await self._call(lambda: self.client.files.content(file_id))
        return reply.content

    async def submit(self, chunk: list[Judgment], params: dict, ctx: EngineContext) -> dict:
        """Upload a chunk's JSONL and create its batch; the batch's state entry."""
        data = "".join(json.dumps({"custom_id": j.judgment_id, "method": "POST", "url": ENDPOINT,
                                   "body": {"messages": j.messages, **params}}, ensure_ascii=False) + "\n"
                       for j in chunk).encode("utf-8")
        upload = await self._call(lambda: self.client.files.create(
            file=(f"judge-{ctx.cfg.name}-{ctx.run_id}.jsonl", data, "application/jsonl"), purpose="batch"))
        batch = await self._call(lambda: self.client.batches.create(
            input_file_id=upload.id, endpoint=ENDPOINT, completion_window=ctx.cfg.batch.completion_window,
            metadata={"judge": ctx.cfg.name, "run_id": ctx.run_id}))
        return {"id": batch.id, "input_file_id": upload.id, "status": batch.status, "collected": False,
                "requests": len(chunk), "created_at": int(time.time()),
                "judgment_ids": [j.judgment_id for j in chunk]}


def _progress_bar(total: int, ctx: EngineContext):
    if not ctx.progress or total == 0:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=f"judge {ctx.cfg.name} (batch)", unit="call", position=ctx.bar_position)
