"""LLM calls that are not ratings (a simulated patient's turn, a rubric-criterion grading) run
through the judges package's engine: bounded concurrency, retries, the content cache, the
budget and the hash-chained transcript, exactly like judge calls.

    with CallSession(cfg, template, parse, store_dir, "patient_transcripts.jsonl") as session:
        results = session.run([Call("case1#t1", messages, "en")])   # one batch, in order

A :class:`Call` is one chat request; its judgment id hashes the judge name, the cache key
(rendered messages, endpoint, model, decoding, template hash, parser version, seed) and the
call id, so calling again with the same calls only makes the ones not yet ``ok`` (a crashed run
resumes). ``parse(text, finish_reason) -> judges.parsers.Parsed`` decides a reply's status;
only ``ok`` results carry a text: a failure is a status (``api_error``, ``parse_error``,
``refused``, ``not_run`` when the budget stopped the run), never a made-up reply.

``cfg.base_url == "local"`` serves the local judge server for the whole session (its models:
the rubric, ``medalign-patient``, ``medalign-grader``); any other URL is an OpenAI-compatible
endpoint whose key comes from ``cfg.api_key_env``.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from judges.api import api_key_for, run_sync, transcript_key_for
from judges.budget import Budget
from judges.cache import CompletionCache, cache_key
from judges.client import OpenAIJudge
from judges.config import JudgeConfig
from judges.engine import EngineContext, Judgment, RunStats, run_judgments
from judges.flags import candidate_flags
from judges.parsers import Parsed
from judges.transcripts import TranscriptStore, read_rows
from medalign.config import StrictModel, canonical_json

Parse = Callable[[str | None, str | None], Parsed]


class CallTemplate(StrictModel):
    """The versioned part every call template shares (subclasses add their variants)."""

    id: str                               # stable name, written in every transcript row
    version: int = 1                      # bump when the wording changes

    @property
    def hash(self) -> str:
        """sha256 of the template's canonical content (enters cache keys and transcript rows)."""
        return hashlib.sha256(canonical_json(self).encode("utf-8")).hexdigest()[:16]


@dataclass
class Call:
    """One chat request to make."""

    call_id: str                          # what is asked: "<case>#t<turn>", "<example>#c<i>"
    messages: list[dict]
    language: str
    shown: dict[str, str] = field(default_factory=dict)  # untrusted text shown ("A" -> text): flagged
    shown_ids: dict[str, str] = field(default_factory=dict)  # "A" -> the shown text's id
    tags: dict[str, str] | None = None    # metadata kept in the transcript row


@dataclass
class CallResult:
    call: Call
    status: str                           # ok | api_error | parse_error | refused | out_of_range | not_run
    text: str | None                      # the reply, only when ok
    judgment_id: str
    error: str | None = None
    flags: list[str] = field(default_factory=list)


def summarize_runs(stats: list[RunStats]) -> dict:
    """Calls, cache hits, tokens, cost and statuses over a session's batches."""
    statuses: Counter = Counter()
    for s in stats:
        statuses.update(s.statuses)
    costs = [s.cost for s in stats]
    return {"batches": len(stats), "planned": sum(s.planned for s in stats),
            "api_calls": sum(s.api_calls for s in stats), "attempts": sum(s.attempts for s in stats),
            "cache_hits": sum(s.cache_hits for s in stats),
            "already_done": sum(s.already_done for s in stats),
            "not_run": sum(s.not_run for s in stats), "statuses": dict(statuses),
            "tokens": sum(s.prompt_tokens + s.completion_tokens for s in stats),
            "cost": None if any(c is None for c in costs) else sum(costs),
            "budget_stopped": next((s.budget_stopped for s in stats if s.budget_stopped), None),
            "wall_s": round(sum(s.wall_s for s in stats), 3)}


class CallSession:
    """An open transcript, cache and endpoint for batches of calls (a context manager)."""

    def __init__(self, cfg: JudgeConfig, template: CallTemplate, parse: Parse,
                 store_dir: str | Path, transcript: str, parser_version: str,
                 progress: bool = False):
        self.cfg, self.template, self.parse = cfg, template, parse
        self.store_dir, self.transcript = Path(store_dir), transcript
        self.parser_version, self.progress = parser_version, progress
        self.stats: list[RunStats] = []
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "CallSession":
        cfg = self.cfg
        self.key = api_key_for(cfg)                       # fails before anything starts
        chain_key = transcript_key_for([cfg])
        self.secrets = tuple(k for k in (self.key, chain_key.decode("utf-8") if chain_key else None)
                             if k)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.store = TranscriptStore.open(self.store_dir / self.transcript, key=chain_key,
                                          secrets=self.secrets)
        self._stack.callback(self.store.close)
        self.cache = CompletionCache(cfg.cache_dir or self.store_dir / "cache")
        self._stack.callback(self.cache.close)
        self.url = cfg.base_url
        if cfg.is_local:
            from judges.server import running_server
            self.url = self._stack.enter_context(running_server(**cfg.local.model_dump()))
        self.run_id = uuid.uuid4().hex[:12]
        self.budget = Budget(cfg.budget, cfg.price, free=cfg.is_local)   # one for the session
        self._key_parts = {"endpoint": cfg.endpoint_identity(), "model": cfg.model,
                           "decoding": cfg.decoding.model_dump(), "template_hash": self.template.hash,
                           "parser_version": self.parser_version, "seed": cfg.seed}
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def _judgment(self, call: Call) -> Judgment:
        key = cache_key(messages=call.messages, sample_index=0, **self._key_parts)
        jid = hashlib.sha256(f"{self.cfg.name}|{key}|{call.call_id}".encode("utf-8")).hexdigest()[:32]
        positions = dict(call.shown_ids) or {"A": call.call_id}
        return Judgment(jid, call.call_id, positions, "single", 0, call.language, call.messages, key,
                        sample_ids=list(call.shown_ids.values()), texts=dict(call.shown),
                        flag_details=candidate_flags(call.shown, call.shown_ids), tags=call.tags)

    def run(self, calls: list[Call]) -> list[CallResult]:
        """Make every call not yet ok (concurrently); one result per call, in order."""
        judgments = [self._judgment(c) for c in calls]
        unique = list({j.judgment_id: j for j in judgments}.values())
        stats = run_sync(self._run(unique))
        self.stats.append(stats)
        texts = self._texts(judgments)
        out = []
        for call, j in zip(calls, judgments):
            rec = self.store.latest.get(j.judgment_id)
            status = rec["status"] if rec else "not_run"
            text = texts.get(j.judgment_id) if status == "ok" else None
            if status == "ok" and text is None:
                status, error = "not_run", "its ok reply is neither in the cache nor the transcript"
            else:
                error = rec.get("error") if rec else "the budget stopped the run before this call"
            out.append(CallResult(call, status, text, j.judgment_id, error,
                                  list(rec.get("flags") or []) if rec else []))
        return out

    async def _run(self, judgments: list[Judgment]) -> RunStats:
        judge = OpenAIJudge(self.cfg, self.url, self.key, seed=len(self.stats))
        ctx = EngineContext(self.cfg, self.template, self.store, self.cache, self.budget,
                            self.run_id, self.progress, secrets=self.secrets, parse=self.parse)
        ctx.row_constants["parser_version"] = self.parser_version
        try:
            return await run_judgments(judgments, judge, ctx)
        finally:
            await judge.aclose()

    def _texts(self, judgments: list[Judgment]) -> dict[str, str]:
        """The ok replies by judgment id: from the cache, else (cache removed) the transcript."""
        texts, missing = {}, set()
        for j in judgments:
            rec = self.store.latest.get(j.judgment_id)
            if rec is None or rec["status"] != "ok":
                continue
            hit = self.cache.get(j.cache_key)
            if hit is not None:
                texts[j.judgment_id] = hit["completion"]
            else:
                missing.add(j.judgment_id)
        if missing:
            for row in read_rows(self.store.path):
                if row.get("judgment_id") in missing and row.get("status") == "ok":
                    texts[row["judgment_id"]] = row.get("completion")
        return texts
