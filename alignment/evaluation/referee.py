"""HuatuoGPT's referee protocol: an LLM compares two models' answers to each case, then scores
each 1-10 (``judges/prompts/huatuo_referee.yaml``), in both orders, through ``judges.api``
(transcripts, cache, statuses).

Per pair of models (A, B) and eval set:

* per category (intent for single-turn sets, department for multi-turn sets) and overall: the
  mean score of each model and the paper's performance ratio, mean(A) / mean(B), with a 95%
  bootstrap interval over cases;
* wins / ties / losses of A (the scores of a case, averaged over both orders, differing by at
  most ``tie_tolerance`` is a tie), each share with a bootstrap interval, and the win rate (ties
  count half) with its interval.

Only ``ok`` results become scores, and by default results carrying a flag (a candidate that wrote
a rating line or addressed the judge, a reply copied from a candidate: judges/flags.py) are left
out too; both are counted by reason (``excluded``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import combinations
from pathlib import Path

import numpy as np

from alignment.evaluation.cases import Case
from alignment.metrics.stats import mean_with_ci, pairwise_outcome, win_rate
from judges.api import PairItem, PairResult, judge_pairs_multi
from judges.config import JudgeConfig


def model_pairs(models: list[str], mode: str, baseline: str | None) -> list[tuple[str, str]]:
    """Every pair of models (``all``), or each model against ``baseline`` (``baseline``)."""
    if mode == "baseline":
        return [(m, baseline) for m in models if m != baseline]
    return list(combinations(models, 2))


def referee_items(cases: list[Case], responses: dict[str, list[str]], pairs: list[tuple[str, str]]) -> list[PairItem]:
    """One judge item per case and pair of models (A = the pair's first model)."""
    items = []
    for a, b in pairs:
        for i, case in enumerate(cases):
            tags = {"eval_set": case.eval_set, **({"category": case.category} if case.category else {})}
            items.append(PairItem(prompt_id=case.key, history=case.messages[:-1],
                                  question=case.messages[-1]["content"], reference=case.reference,
                                  a_id=f"{case.key}#{a}", a_text=responses[a][i],
                                  b_id=f"{case.key}#{b}", b_text=responses[b][i],
                                  language=case.language, tags=tags))
    return items


def run_referee(cases: list[Case], responses: dict[str, list[str]], pairs: list[tuple[str, str]],
                judge: JudgeConfig, store_dir: str | Path, progress: bool = False):
    """Judge every (case, pair): results by pair, in case order, and the run's statistics."""
    items = referee_items(cases, responses, pairs)
    results, stats = judge_pairs_multi(items, [judge], store_dir, progress)
    flat = results[judge.name]
    by_pair = {pair: flat[k * len(cases):(k + 1) * len(cases)] for k, pair in enumerate(pairs)}
    return by_pair, stats[0]


def usable(result: PairResult, include_flagged: bool) -> str | None:
    """Why a result gives no score (``status:<s>`` or ``flagged``), or None when it is used."""
    if result.status != "ok":
        return f"status:{result.status}"
    if result.flags and not include_flagged:
        return "flagged"
    return None


def _ratio_ci(a: list[float], b: list[float], n_bootstrap: int, seed: int) -> tuple[float | None, float | None]:
    if not a:
        return None, None
    rng = np.random.default_rng(seed)
    x, y = np.asarray(a), np.asarray(b)
    idx = rng.integers(0, len(x), (n_bootstrap, len(x)))
    ratios = x[idx].mean(axis=1) / np.maximum(y[idx].mean(axis=1), 1e-12)
    lo, hi = np.quantile(ratios, [0.025, 0.975])
    return float(lo), float(hi)


def score_table(a: list[float], b: list[float], tie_tolerance: float, n_bootstrap: int, seed: int) -> dict:
    """Mean scores, performance ratio and W/T/L (with intervals) of paired scores of A and B."""
    outcomes = [pairwise_outcome(x, y, tie_tolerance) for x, y in zip(a, b)]
    rate = win_rate(outcomes, n_resamples=n_bootstrap, seed=seed)
    lo, hi = _ratio_ci(a, b, n_bootstrap, seed)
    shares = {name: mean_with_ci([float(o == v) for o in outcomes], n_bootstrap, seed=seed)
              for name, v in (("wins", 1.0), ("ties", 0.5), ("losses", 0.0))}
    return {"n": len(a), "mean_a": sum(a) / len(a) if a else None, "mean_b": sum(b) / len(b) if b else None,
            "performance_ratio": sum(a) / sum(b) if a and sum(b) else None, "ratio_ci": [lo, hi],
            "wins": rate["wins"], "ties": rate["ties"], "losses": rate["losses"],
            "win_share": shares["wins"], "tie_share": shares["ties"], "loss_share": shares["losses"],
            "win_rate": rate["win_rate"], "win_rate_ci": [rate["ci_low"], rate["ci_high"]]}


def summarise_pair(cases: list[Case], results: list[PairResult], tie_tolerance: float, n_bootstrap: int,
                   seed: int, include_flagged: bool = False) -> dict:
    """The pair's table over every set (``overall``), per eval set (overall and per category),
    and what was excluded (by reason)."""
    excluded: Counter = Counter()
    points: dict[str, list[tuple[str, float, float]]] = defaultdict(list)    # set -> (category, a, b)
    for case, r in zip(cases, results):
        why = usable(r, include_flagged)
        if why:
            excluded[why] += 1
        else:
            points[case.eval_set].append((case.category or "-", r.score_a, r.score_b))

    def table(pts: list[tuple[str, float, float]]) -> dict:
        return score_table([p[1] for p in pts], [p[2] for p in pts], tie_tolerance, n_bootstrap, seed)

    sets = {name: {"overall": table(pts),
                   "by_category": {cat: table([p for p in pts if p[0] == cat]) for cat in sorted({p[0] for p in pts})}}
            for name, pts in sorted(points.items())}
    return {"overall": table([p for pts in points.values() for p in pts]), "sets": sets,
            "judged": len(results), "excluded": dict(excluded)}


def case_outcomes(cases: list[Case], by_pair: dict[tuple[str, str], list[PairResult]], models: list[str],
                  tie_tolerance: float, include_flagged: bool = False) -> list[list[tuple[int, int, float]]]:
    """Per case, the (model i, model j, outcome of i) of every usable pair result (leaderboard.py)."""
    index = {m: k for k, m in enumerate(models)}
    out = [[] for _ in cases]
    for (a, b), results in by_pair.items():
        for c, r in enumerate(results):
            if usable(r, include_flagged) is None:
                out[c].append((index[a], index[b], pairwise_outcome(r.score_a, r.score_b, tie_tolerance)))
    return out
