"""The judges API other packages use: judge pairs of responses, both orders, with transcripts.

    from judges.api import PairItem, judge_pairs
    results = judge_pairs(items, cfg, store_dir=out)       # sync; runs asyncio inside

Per pair and per order (``ab``: a shown as Response A; ``ba``: swapped) the judge is called
``samples_per_order`` times. A :class:`PairResult` has ``status == "ok"`` only when every one of
its judgments parsed ok; ``score_a``/``score_b`` are means over its ok judgments (None when none
is ok), and ``consistent`` says whether the verdict (sign of a - b) survived the swap (None when an
order is missing). Non-ok judgments are never scores. With ``cfg.soft_scores`` a judgment's score
is its soft score (expected value under the judge's token log-probabilities) when the endpoint
returned log-probabilities, its parsed score otherwise. A pair whose judgments the budget did not
allow is ``not_run``. With a single-answer template each response is rated on its own (once per
response, shared across pairs) and ``consistent`` is None.

Transcripts go to ``store_dir/transcripts.jsonl``, the cache to ``store_dir/cache/`` (or
``cfg.cache_dir``), and each run's statistics to ``store_dir/judge_runs.jsonl``. Calling again
with the same items judges only what is not yet ok.

Lineage: every judgment row carries ``pair_id`` (:func:`pair_id`: the same for both orders of a
pair, and for every judge) and ``sample_ids``; a result lists its ``judgment_ids``. Flags
(:mod:`judges.flags`) are on each :class:`Comparison` and, merged, on the :class:`PairResult`:
callers that turn results into reward data or win rates skip flagged results unless told
otherwise (:func:`judges.ranking.reward_comparisons`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path

from judges.budget import Budget
from judges.cache import CompletionCache, cache_key
from judges.client import OpenAIJudge
from judges.config import JudgeConfig
from judges.engine import EngineContext, Judgment, RunStats, run_judgments
from judges.errors import JudgeSetupError
from judges.flags import candidate_flags, flag_names
from judges.parsers import PARSER_VERSION
from judges.templates import TemplateSpec, load_template, render
from judges.transcripts import TranscriptStore, pair_id
from medalign.config import ConfigError, canonical_json

TRANSCRIPTS = "transcripts.jsonl"
RUN_LOG = "judge_runs.jsonl"
_STATUS_PRIORITY = ("api_error", "parse_error", "out_of_range", "refused", "not_run")
_POSITION = {"response_a": "A", "response_b": "B", "response": "A"}   # template slot -> position


@dataclass
class PairItem:
    """Two responses to one prompt. ``history`` is the chat before the final user turn."""

    prompt_id: str
    history: list[dict]
    question: str
    reference: str | None
    a_id: str
    a_text: str
    b_id: str
    b_text: str
    language: str | None = None           # "zh" | "en"; None = detected from the question
    tags: dict[str, str] | None = None    # prompt metadata kept in the transcript (department, intent)


@dataclass
class Comparison:
    """One judgment seen from the pair's side (scores already mapped to a and b)."""

    judgment_id: str
    order: str                            # ab | ba | single
    sample_index: int
    status: str
    score_a: float | None
    score_b: float | None
    flags: list[str] = field(default_factory=list)   # judges.flags names on this judgment


@dataclass
class PairResult:
    item: PairItem
    status: str             # ok | api_error | parse_error | out_of_range | refused | not_run
    score_a: float | None
    score_b: float | None
    consistent: bool | None
    judgment_ids: list[str]
    judge: str = ""
    comparisons: list[Comparison] = field(default_factory=list)

    @property
    def flags(self) -> list[str]:
        """Every flag on any of the pair's judgments (sorted, distinct)."""
        return sorted({f for c in self.comparisons for f in c.flags})

    @property
    def half_judged(self) -> bool:
        """Some of the pair's judgments are ok and some are not (e.g. one order failed)."""
        oks = {c.status == "ok" for c in self.comparisons}
        return oks == {True, False}


# --------------------------------------------------------------------------------------------
# Planning: items -> judgments
# --------------------------------------------------------------------------------------------

def _judgment(item: PairItem, cfg: JudgeConfig, spec: TemplateSpec, key_parts: dict,
              positions: dict[str, str], texts: dict[str, str], order: str,
              sample_index: int) -> Judgment:
    lang, messages = render(spec, language=item.language, history=item.history,
                            question=item.question, reference=item.reference, responses=texts)
    key = cache_key(messages=messages, sample_index=sample_index, **key_parts)
    ident = f"{cfg.name}|{key}|{item.prompt_id}|{canonical_json(positions)}"
    jid = hashlib.sha256(ident.encode("utf-8")).hexdigest()[:32]
    by_slot = {_POSITION[slot]: text for slot, text in texts.items()}
    single = order == "single"
    return Judgment(jid, item.prompt_id, positions, order, sample_index, lang, messages, key,
                    pair_id=None if single else pair_id(item.prompt_id, item.a_id, item.b_id),
                    sample_ids=[positions["A"]] if single else [item.a_id, item.b_id],
                    texts=by_slot, flag_details=candidate_flags(by_slot, positions),
                    tags=item.tags or None)


def plan_judgments(items: list[PairItem], cfg: JudgeConfig, spec: TemplateSpec
                   ) -> tuple[list[Judgment], list[list[Judgment]]]:
    """(unique judgments to run, the judgments of each item in item order)."""
    unique: dict[str, Judgment] = {}
    per_item: list[list[Judgment]] = []
    # the cache-key parts every judgment shares, computed once (not per judgment)
    key_parts = {"endpoint": cfg.endpoint_identity(), "model": cfg.model,
                 "decoding": cfg.decoding.model_dump(), "template_hash": spec.hash,
                 "parser_version": PARSER_VERSION, "seed": cfg.seed}
    for item in items:
        mine = []
        for s in range(cfg.samples_per_order):
            if spec.kind == "single_rating":
                for rid, text in ((item.a_id, item.a_text), (item.b_id, item.b_text)):
                    mine.append(_judgment(item, cfg, spec, key_parts, {"A": rid},
                                          {"response": text}, "single", s))
                continue
            mine.append(_judgment(item, cfg, spec, key_parts, {"A": item.a_id, "B": item.b_id},
                                  {"response_a": item.a_text, "response_b": item.b_text}, "ab", s))
            if cfg.both_orders:
                mine.append(_judgment(item, cfg, spec, key_parts, {"A": item.b_id, "B": item.a_id},
                                      {"response_a": item.b_text, "response_b": item.a_text}, "ba", s))
        for j in mine:
            unique.setdefault(j.judgment_id, j)
        per_item.append(mine)
    return list(unique.values()), per_item


# --------------------------------------------------------------------------------------------
# Assembly: transcript records -> pair results
# --------------------------------------------------------------------------------------------

def _comparisons(item: PairItem, judgments: list[Judgment], latest: dict[str, dict],
                 soft: bool) -> list[Comparison]:
    out = []
    singles: dict[int, dict[str, dict]] = {}
    for j in judgments:
        rec = latest.get(j.judgment_id)
        status = rec["status"] if rec else "not_run"
        scores = None
        if rec and status == "ok":
            scores = rec["soft_scores"] if soft and rec.get("soft_scores") else rec["scores"]
        # candidate flags are known before a call; a record adds what its reply showed
        flags = list(rec.get("flags") or []) if rec else flag_names(j.flag_details)
        if j.order == "single":
            singles.setdefault(j.sample_index, {})[j.positions["A"]] = {
                "status": status, "scores": scores, "jid": j.judgment_id, "flags": flags}
            continue
        a, b = (("A", "B") if j.order == "ab" else ("B", "A"))
        out.append(Comparison(j.judgment_id, j.order, j.sample_index, status,
                              scores[a] if scores else None, scores[b] if scores else None, flags))
    for s, by_id in singles.items():
        ra, rb = by_id[item.a_id], by_id[item.b_id]
        status = next((r["status"] for r in (ra, rb) if r["status"] != "ok"), "ok")
        ok = status == "ok"
        out.append(Comparison(ra["jid"] + "+" + rb["jid"], "single", s, status,
                              ra["scores"]["A"] if ok else None, rb["scores"]["A"] if ok else None,
                              sorted(set(ra["flags"]) | set(rb["flags"]))))
    return out


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def assemble(item: PairItem, judgments: list[Judgment], latest: dict[str, dict], judge: str,
             soft: bool = False) -> PairResult:
    """The pair's result from its judgments' latest records (``soft``: use soft scores where a
    record has them)."""
    comps = _comparisons(item, judgments, latest, soft)
    ok = [c for c in comps if c.status == "ok"]
    bad = {c.status for c in comps if c.status != "ok"}
    status = "ok" if not bad else next(s for s in _STATUS_PRIORITY if s in bad)
    score_a = sum(c.score_a for c in ok) / len(ok) if ok else None
    score_b = sum(c.score_b for c in ok) / len(ok) if ok else None
    by_order: dict[str, list[float]] = {}
    for c in ok:
        by_order.setdefault(c.order, []).append(c.score_a - c.score_b)
    consistent = None
    if "ab" in by_order and "ba" in by_order:
        diff = {o: sum(v) / len(v) for o, v in by_order.items()}
        consistent = _sign(diff["ab"]) == _sign(diff["ba"])
    return PairResult(item, status, score_a, score_b, consistent,
                      [j.judgment_id for j in judgments], judge, comps)


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------

def api_key_for(cfg: JudgeConfig) -> str | None:
    """The key from the environment variable the config names (never stored anywhere)."""
    if cfg.api_key_env is None:
        return None
    key = os.environ.get(cfg.api_key_env)
    if not key:
        raise JudgeSetupError(f"judge {cfg.name!r}: environment variable {cfg.api_key_env} "
                              "(api_key_env) is not set: export it with the endpoint's API key")
    return key


def transcript_key_for(cfgs: list[JudgeConfig]) -> bytes | None:
    """The HMAC key of the transcript chain (judges sharing a transcript must name one variable)."""
    names = sorted({c.transcript_key_env for c in cfgs if c.transcript_key_env})
    if len(names) > 1:
        raise JudgeSetupError(f"judges writing one transcript name different transcript_key_env "
                              f"variables {names}: give them all the same one")
    if not names:
        return None
    key = os.environ.get(names[0])
    if not key:
        raise JudgeSetupError(f"environment variable {names[0]} (transcript_key_env) is not set: "
                              "export the transcript's HMAC key (32+ random bytes, e.g. hex)")
    return key.encode("utf-8")


def load_templates(cfgs: list[JudgeConfig]) -> list[TemplateSpec]:
    """Every judge's template, or one clear error naming the judge and its template."""
    specs = []
    for i, cfg in enumerate(cfgs):
        try:
            specs.append(load_template(cfg.template))
        except (ValueError, OSError) as e:
            why = "; ".join(e.problems) if isinstance(e, ConfigError) else str(e)
            raise JudgeSetupError(f"judges.{i}.template ({cfg.name}): {why}") from None
    return specs


async def ajudge_pairs_multi(items: list[PairItem], cfgs: list[JudgeConfig], store_dir: str | Path,
                             progress: bool = False
                             ) -> tuple[dict[str, list[PairResult]], list[RunStats]]:
    """Every judge on every item, concurrently, into one transcript. Returns (results by judge
    name, run statistics per judge)."""
    names = [c.name for c in cfgs]
    if len(set(names)) != len(names):
        raise ValueError(f"judge names must be unique, got {names}")
    keys = [api_key_for(cfg) for cfg in cfgs]          # fail before anything starts
    specs = load_templates(cfgs)
    chain_key = transcript_key_for(cfgs)
    secrets = tuple(k for k in [*keys, chain_key.decode("utf-8") if chain_key else None] if k)
    store_dir = Path(store_dir)
    store = TranscriptStore.open(store_dir / TRANSCRIPTS, key=chain_key, secrets=secrets)
    run_id = uuid.uuid4().hex[:12]
    plans = []
    with contextlib.ExitStack() as stack:
        urls: dict[str, str] = {}
        for cfg in cfgs:
            if cfg.is_local and cfg.local.model_dump_json() not in urls:   # one server per options
                from judges.server import running_server
                urls[cfg.local.model_dump_json()] = stack.enter_context(
                    running_server(**cfg.local.model_dump()))
        caches: dict[str, CompletionCache] = {}
        try:
            coros = []
            for i, (cfg, spec) in enumerate(zip(cfgs, specs)):
                unique, per_item = plan_judgments(items, cfg, spec)
                plans.append((cfg, spec, per_item))
                cdir = str(Path(cfg.cache_dir) if cfg.cache_dir else store_dir / "cache")
                cache = caches.setdefault(cdir, CompletionCache(cdir))
                url = urls[cfg.local.model_dump_json()] if cfg.is_local else cfg.base_url
                judge = OpenAIJudge(cfg, url, keys[i], seed=i)
                ctx = EngineContext(cfg, spec, store, cache,
                                    Budget(cfg.budget, cfg.price.for_mode(cfg.mode), free=cfg.is_local),
                                    run_id, progress, bar_position=i, secrets=secrets)
                coros.append(_run_and_close(unique, judge, ctx, store_dir))
            stats = list(await asyncio.gather(*coros))
        finally:
            for cache in caches.values():
                cache.close()
            store.close()
    _log_runs(store_dir, stats)
    results = {cfg.name: [assemble(item, js, store.latest, cfg.name, cfg.soft_scores)
                          for item, js in zip(items, per_item)] for cfg, _, per_item in plans}
    return results, stats


async def _run_and_close(judgments: list[Judgment], judge: OpenAIJudge, ctx: EngineContext,
                         store_dir: Path) -> RunStats:
    try:
        if ctx.cfg.mode == "batch":
            from judges.batch import run_batch_judgments
            return await run_batch_judgments(judgments, judge, ctx, store_dir)
        return await run_judgments(judgments, judge, ctx)
    finally:
        await judge.aclose()


def _log_runs(store_dir: Path, stats: list[RunStats]) -> None:
    with open(store_dir / RUN_LOG, "a", encoding="utf-8") as f:
        for s in stats:
            f.write(json.dumps(s.to_dict(), ensure_ascii=False, sort_keys=True) + "\n")


def _run(coro: Coroutine):
    """``asyncio.run`` on uvloop's event loop when it is installed: it spends less CPU per
    call than asyncio's own loop, which shows at hundreds of judge calls a second."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def run_sync(coro: Coroutine):
    """Run a coroutine to completion from sync code, also when this thread already runs a loop
    (a notebook): then it runs on a fresh loop in a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_run, coro).result()


def judge_pairs(items: list[PairItem], cfg: JudgeConfig, store_dir: str | Path,
                progress: bool = False) -> list[PairResult]:
    """Judge every pair with one judge (both orders by default). See the module docstring."""
    results, _ = run_sync(ajudge_pairs_multi(items, [cfg], store_dir, progress))
    return results[cfg.name]


def judge_pairs_multi(items: list[PairItem], cfgs: list[JudgeConfig], store_dir: str | Path,
                      progress: bool = False) -> tuple[dict[str, list[PairResult]], list[RunStats]]:
    """Several judges (an ensemble) on the same pairs; results by judge name, and run stats."""
    return run_sync(ajudge_pairs_multi(items, cfgs, store_dir, progress))
