"""Judge response tuples and turn the verdicts into reward data (shared by the ``judge`` stage
and ``medalign judge run``).

For each tuple (a prompt and its k responses), pairs of responses are judged (``all`` pairs, or a
``round_robin`` subset), by every judge, in both orders. A response's score is its mean over its
reward comparisons (by default: pairs whose judgments are all ``ok``, both orders, and none
flagged; :func:`judges.ranking.reward_comparisons`); responses are ranked with ties kept (dense
ranks, 0 = best) and (chosen, rejected) pairs are extracted with margins. Every row of
``scores``, ``ranked`` and ``pairs`` lists the ``judgment_ids`` it came from. Outputs in ``out/``:

``transcripts.jsonl``  every judge call (hash-chained)      ``scores.parquet``   one row per response
``ranked.parquet``     one row per ranked prompt            ``pairs.parquet``    one row per pair
``judge_report.json``  statuses, swap consistency, position bias, calls, tokens, cost, audit
``quarantine.jsonl``   input rows that could not be used (only when there are some)
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import Field

from judges.api import TRANSCRIPTS, PairItem, judge_pairs_multi
from judges.audit import first_position_win_rate, summarize
from judges.config import JudgeConfig
from judges.ranking import Evidence, PairMode, dense_ranks, exclusion, extract_pairs, response_evidence
from judges.transcripts import latest_rows, read_rows
from judges.tuples import Quarantined, ResponseTuple
from medalign.artifacts import write_json_atomic
from medalign.config import StrictModel

REPORT = "judge_report.json"


class PairingSpec(StrictModel):
    """Which pairs of a prompt's responses are judged, and how many ok comparisons give a score
    (shared by the judge stage's ``ranking`` and rsft's ``judging``)."""

    pairing: Literal["all", "round_robin"] = "all"     # all k(k-1)/2 pairs, or a cycle subset
    round_robin_rounds: int = Field(1, ge=1)           # round_robin: pair i with i+1..i+rounds
    min_comparisons: int = Field(1, ge=1)              # ok comparisons a response needs to be scored (ranked)
    require_both_orders: bool = True                   # a pair is reward data only when every order is ok
    exclude_flagged: bool = True                       # flagged judgments (judges.flags) give no reward data

    def reward_rule(self) -> dict:
        """The keyword arguments of judges.ranking's reward functions."""
        return {"require_both_orders": self.require_both_orders,
                "exclude_flagged": self.exclude_flagged}


class RankingConfig(PairingSpec):
    """Which pairs to judge and how verdicts become reward tuples and pairs."""

    pair_mode: PairMode = "adjacent"                   # adjacent | all | best_vs_worst
    min_margin: float = Field(0.0, ge=0.0)             # drop extracted pairs below this margin
    tie_tolerance: float = Field(0.0, ge=0.0)          # scores this close share a rank


def check_orders(judges: list[JudgeConfig], ranking: RankingConfig) -> None:
    """A judge that sees one order and ``require_both_orders`` contradict each other: say so
    (a config error) rather than pick one silently."""
    for i, j in enumerate(judges):
        if not j.both_orders and ranking.require_both_orders:
            raise ValueError(f"judges.{i}.both_orders is false: its pairs are judged in one order "
                             "only, which ranking.require_both_orders (true) does not take as "
                             "reward data; set ranking.require_both_orders: false to accept them")


def pairs_to_judge(k: int, cfg: PairingSpec) -> list[tuple[int, int]]:
    """Index pairs (i < j) of a tuple of k responses to send to the judges."""
    if cfg.pairing == "all":
        return list(itertools.combinations(range(k), 2))
    found = set()
    for r in range(1, min(cfg.round_robin_rounds, k - 1) + 1):
        for i in range(k):
            j = (i + r) % k
            found.add((min(i, j), max(i, j)))
    return sorted(found)


def build_items(tuples: list[ResponseTuple], cfg: PairingSpec) -> list[PairItem]:
    items = []
    for t in tuples:
        history, question = t.messages[:-1], t.messages[-1]["content"]
        for i, j in pairs_to_judge(len(t.responses), cfg):
            items.append(PairItem(t.prompt_id, history, question, t.reference,
                                  t.response_ids[i], t.responses[i], t.response_ids[j],
                                  t.responses[j], t.language, t.tags))
    return items


def rank_tuples(tuples: list[ResponseTuple], evidence: dict[str, Evidence],
                cfg: RankingConfig) -> tuple[list[dict], list[dict], list[dict], Counter]:
    """(score rows, ranked rows, pair rows, counters) from the responses' evidence."""
    score_rows, ranked, pairs, n = [], [], [], Counter()
    for t in tuples:
        keep = []
        for i, rid in enumerate(t.response_ids):
            ev = evidence.get(rid)
            c = len(ev.scores) if ev else 0
            score_rows.append({"prompt_id": t.prompt_id, "response_id": rid, "response_index": i,
                               "score": ev.mean if c else None, "comparisons": c,
                               "judgment_ids": sorted(set(ev.judgment_ids)) if ev else []})
            if c >= cfg.min_comparisons:
                keep.append(i)
        n["scored_responses"] += len(keep)
        n["unscored_responses"] += len(t.response_ids) - len(keep)
        if len(keep) < 2:
            n["unranked_prompts"] += 1
            continue
        s = [evidence[t.response_ids[i]].mean for i in keep]
        ranks = dense_ranks(s, cfg.tie_tolerance)
        n["ranked_prompts"] += 1
        ranked.append({"prompt_id": t.prompt_id, "messages": t.messages,
                       "responses": [t.responses[i] for i in keep],
                       "response_ids": [t.response_ids[i] for i in keep], "scores": s, "ranks": ranks,
                       "judgment_ids": _lineage(evidence, [t.response_ids[i] for i in keep])})
        extracted, dropped = extract_pairs(ranks, s, cfg.pair_mode, cfg.min_margin)
        n["pairs_dropped_margin"] += dropped
        for p in extracted:
            ci, ri = keep[p.chosen], keep[p.rejected]
            pairs.append({"prompt_id": t.prompt_id, "messages": t.messages,
                          "chosen": t.responses[ci], "rejected": t.responses[ri],
                          "chosen_score": s[p.chosen], "rejected_score": s[p.rejected],
                          "margin": p.margin, "chosen_id": t.response_ids[ci],
                          "rejected_id": t.response_ids[ri],
                          "judgment_ids": _lineage(evidence, [t.response_ids[ci], t.response_ids[ri]])})
    n["pairs"] = len(pairs)
    return score_rows, ranked, pairs, n


def _lineage(evidence: dict[str, Evidence], response_ids: list[str]) -> list[str]:
    """The judgment ids behind the scores of some responses (sorted, distinct)."""
    return sorted({j for rid in response_ids for j in evidence[rid].judgment_ids})


def _write_parquet(path: Path, rows: list[dict], schema) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def _schemas():
    import pyarrow as pa

    msgs = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    return {
        "scores": pa.schema([("prompt_id", pa.string()), ("response_id", pa.string()),
                             ("response_index", pa.int64()), ("score", pa.float64()),
                             ("comparisons", pa.int64()), ("judgment_ids", pa.list_(pa.string()))]),
        "ranked": pa.schema([("prompt_id", pa.string()), ("messages", msgs),
                             ("responses", pa.list_(pa.string())),
                             ("response_ids", pa.list_(pa.string())),
                             ("scores", pa.list_(pa.float64())), ("ranks", pa.list_(pa.int64())),
                             ("judgment_ids", pa.list_(pa.string()))]),
        "pairs": pa.schema([("prompt_id", pa.string()), ("messages", msgs), ("chosen", pa.string()),
                            ("rejected", pa.string()), ("chosen_score", pa.float64()),
                            ("rejected_score", pa.float64()), ("margin", pa.float64()),
                            ("chosen_id", pa.string()), ("rejected_id", pa.string()),
                            ("judgment_ids", pa.list_(pa.string()))]),
    }


def reference_agreement(tuples: list[ResponseTuple], scores: dict[str, float | None]) -> dict:
    """How often the judges' mean scores order two responses as a known ranking does."""
    agree = total = 0
    for t in tuples:
        if t.reference_ranks is None:
            continue
        for i, j in itertools.combinations(range(len(t.responses)), 2):
            ri, rj = t.reference_ranks[i], t.reference_ranks[j]
            si, sj = scores.get(t.response_ids[i]), scores.get(t.response_ids[j])
            if ri == rj or si is None or sj is None:
                continue
            total += 1
            agree += (si > sj) == (ri < rj) and si != sj
    return {"reference_agreement": agree / total if total else None, "reference_pairs": total}


def judge_and_rank(tuples: list[ResponseTuple], quarantined: list[Quarantined],
                   judges: list[JudgeConfig], cfg: RankingConfig, out: Path,
                   progress: bool = False) -> dict:
    """Judge, rank, write every output; returns the report (also written to judge_report.json)."""
    out.mkdir(parents=True, exist_ok=True)
    if quarantined:
        with open(out / "quarantine.jsonl", "w", encoding="utf-8") as f:
            for q in quarantined:
                f.write(json.dumps(q.__dict__, ensure_ascii=False) + "\n")
    items = build_items(tuples, cfg)
    results, stats = judge_pairs_multi(items, judges, out, progress=progress)
    every = [r for rs in results.values() for r in rs]
    evidence = response_evidence(every, **cfg.reward_rule())
    score_rows, ranked, pairs, n = rank_tuples(tuples, evidence, cfg)
    schemas = _schemas()
    _write_parquet(out / "scores.parquet", score_rows, schemas["scores"])
    _write_parquet(out / "ranked.parquet", ranked, schemas["ranked"])
    _write_parquet(out / "pairs.parquet", pairs, schemas["pairs"])
    report = _report(tuples, quarantined, items, results, stats, n, out)
    report["reward_data"] = reward_data_report(results, cfg)
    report.update(reference_agreement(tuples, {rid: ev.mean for rid, ev in evidence.items()}))
    write_json_atomic(out / REPORT, report)
    return report


def reward_data_report(results: dict[str, list], cfg: RankingConfig) -> dict:
    """Per judge: pairs used as reward data, pairs left out by reason, flags by name."""
    out = {"require_both_orders": cfg.require_both_orders, "exclude_flagged": cfg.exclude_flagged,
           "judges": {}}
    for judge, rs in results.items():
        reasons = Counter(exclusion(r, **cfg.reward_rule()) or "used" for r in rs)
        out["judges"][judge] = {
            "pairs": len(rs), "pairs_used": reasons.pop("used", 0), "pairs_excluded": dict(reasons),
            "half_judged_pairs": sum(r.half_judged for r in rs),
            "flagged_pairs": sum(bool(r.flags) for r in rs),
            "flags": dict(Counter(f for r in rs for f in r.flags))}
    return out


def _report(tuples, quarantined, items, results, stats, n: Counter, out: Path) -> dict:
    planned = {jid for rs in results.values() for r in rs for jid in r.judgment_ids}
    rows = [r for r in latest_rows(read_rows(out / TRANSCRIPTS)) if r["judgment_id"] in planned]
    status = Counter(r["status"] for r in rows)
    status["not_run"] = len(planned) - len(rows)
    flags = [r.consistent for rs in results.values() for r in rs if r.consistent is not None]
    first, ties, _ = first_position_win_rate(rows)
    return {
        "prompts": len(tuples), "quarantined": len(quarantined), "pairs_judged": len(items),
        "judgments": len(planned), "status_counts": {k: v for k, v in status.items() if v},
        "ok_fraction": status["ok"] / len(planned) if planned else None,
        "swap_consistency": sum(flags) / len(flags) if flags else None,
        "first_position_win_rate": first, "tie_rate": ties,
        "calls": sum(s.api_calls for s in stats), "attempts": sum(s.attempts for s in stats),
        "cache_hits": sum(s.cache_hits for s in stats),
        "already_done": sum(s.already_done for s in stats),
        "tokens": sum(s.prompt_tokens + s.completion_tokens for s in stats),
        "cost": None if any(s.cost is None for s in stats) else sum(s.cost for s in stats),
        "budget_stopped": [s.budget_stopped for s in stats if s.budget_stopped] or None,
        "truncated_transcript_bytes": max((s.truncated_bytes for s in stats), default=0),
        "runs": [s.to_dict() for s in stats],
        **dict(n),
        "audit": summarize(out / TRANSCRIPTS, n_resamples=200),
    }


def stage_metrics(report: dict) -> dict:
    """The report's headline numbers (what the job summary shows)."""
    keys = ("calls", "ok_fraction", "swap_consistency", "first_position_win_rate", "pairs",
            "prompts", "ranked_prompts", "judgments", "cache_hits", "tokens", "cost",
            "quarantined", "reference_agreement")
    out = {k: report.get(k) for k in keys}
    per_judge = report.get("reward_data", {}).get("judges", {}).values()
    out["half_judged_pairs"] = sum(j["half_judged_pairs"] for j in per_judge)
    out["flagged_pairs"] = sum(j["flagged_pairs"] for j in per_judge)
    out.update({f"status_{k}": v for k, v in report["status_counts"].items()})
    return out
