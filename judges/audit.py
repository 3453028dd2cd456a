"""The audit report over a transcript (``medalign audit summary``).

Per judge: calls, status counts, swap consistency, first-position win rate, the correlation of a
score with the length of the response it scores, a score histogram, agreement with a reference
ranking (when one is given), latency and cost. Across judges: Cohen's kappa for every two judges
and Krippendorff's alpha for all of them, with bootstrap intervals. Flags (:mod:`judges.flags`) and
half-judged pairs (one order ok, another not) are counted per judge; rows written before flags
existed (parser version 1) are counted as such, since their flags cannot be known.

Units of agreement are response pairs: for each unordered pair {x, y} of responses to one prompt,
a judge's verdict is the sign of (mean score of x - mean score of y) over its ok rows (pairwise
templates: the rows that showed x and y together, both orders; single-answer templates: the
responses' mean ratings). Kappa is over these verdicts (nominal -1/0/+1); alpha uses the
**ordinal** metric on the same verdicts, so judges with different scales (1-10 ratings, A/B/C
verdicts) can be compared. Statistics use each judgment's latest record.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from judges.server.prompt_parse import PromptNotUnderstood, parse_prompt
from judges.server.rubric import text_length
from judges.stats import bootstrap_ci, cohen_kappa, krippendorff_alpha, spearman
from judges.transcripts import latest_rows, read_rows, row_pair_id


def _pair_diffs(rows: list[dict]) -> dict[tuple, float]:
    """Unit (prompt_id, x, y) with x < y -> mean score(x) - score(y) for one judge."""
    ok = [r for r in rows if r["status"] == "ok" and r.get("scores")]   # ratings only
    diffs: dict[tuple, list[float]] = defaultdict(list)
    singles: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in ok:
        pos, sc = r["positions"], r["scores"]
        if "B" not in pos:
            singles[r["prompt_id"]][pos["A"]].append(sc["A"])
            continue
        x, y = sorted((pos["A"], pos["B"]))
        sx, sy = (sc["A"], sc["B"]) if pos["A"] == x else (sc["B"], sc["A"])
        diffs[(r["prompt_id"], x, y)].append(sx - sy)
    for pid, by_id in singles.items():
        means = {rid: sum(v) / len(v) for rid, v in by_id.items()}
        for x, y in itertools.combinations(sorted(means), 2):
            diffs[(pid, x, y)].append(means[x] - means[y])
    return {k: sum(v) / len(v) for k, v in diffs.items()}


def swap_consistency(rows: list[dict]) -> tuple[float | None, int]:
    """Share of pairs judged in both orders whose verdict sign is the same in both."""
    by_pair: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["status"] != "ok" or "B" not in r["positions"]:
            continue
        pos, sc = r["positions"], r["scores"]
        x, y = sorted((pos["A"], pos["B"]))
        diff = (sc["A"] - sc["B"]) if pos["A"] == x else (sc["B"] - sc["A"])
        first = "x_first" if pos["A"] == x else "y_first"
        by_pair[(r["prompt_id"], x, y, r.get("sample_index", 0))][first].append(diff)
    both = [(np.sign(np.mean(v["x_first"])), np.sign(np.mean(v["y_first"])))
            for v in by_pair.values() if "x_first" in v and "y_first" in v]
    if not both:
        return None, 0
    return sum(a == b for a, b in both) / len(both), len(both)


def first_position_win_rate(rows: list[dict]) -> tuple[float | None, float | None, int]:
    """(share of decided pairwise rows won by position A, share of ties, rows)."""
    pw = [r for r in rows if r["status"] == "ok" and "B" in r["positions"]]
    if not pw:
        return None, None, 0
    wins = sum(r["scores"]["A"] > r["scores"]["B"] for r in pw)
    ties = sum(r["scores"]["A"] == r["scores"]["B"] for r in pw)
    decided = len(pw) - ties
    return (wins / decided if decided else None), ties / len(pw), len(pw)


def length_correlation(rows: list[dict]) -> tuple[float | None, int]:
    """Spearman correlation of each score with the length of the response it scores."""
    scores, lengths = [], []
    for r in rows:
        if r["status"] != "ok":
            continue
        try:
            prompt = parse_prompt(r["messages"])
        except PromptNotUnderstood:
            continue
        for slot, text in prompt.responses.items():
            scores.append(r["scores"][slot])
            lengths.append(text_length(text, prompt.language))
    if len(scores) < 3 or len(set(scores)) < 2 or len(set(lengths)) < 2:
        return None, len(scores)
    return spearman(scores, lengths), len(scores)


def histogram(rows: list[dict]) -> dict[str, int]:
    counts = Counter()
    for r in rows:
        if r["status"] == "ok" and r.get("scores"):      # a patient's turn has no score
            for v in r["scores"].values():
                counts[f"{v:g}"] += 1
    return dict(sorted(counts.items(), key=lambda kv: float(kv[0])))


def reference_agreement(rows: list[dict], ranks_by_id: dict[str, int]) -> tuple[float | None, int]:
    """Share of response pairs (with different reference ranks) the judge orders the same way."""
    agree = total = 0
    for (pid, x, y), diff in _pair_diffs(rows).items():
        if x in ranks_by_id and y in ranks_by_id and ranks_by_id[x] != ranks_by_id[y]:
            total += 1
            ref_prefers_x = ranks_by_id[x] < ranks_by_id[y]
            agree += (diff > 0) == ref_prefers_x and diff != 0
    return (agree / total if total else None), total


def flag_counts(rows: list[dict]) -> tuple[dict[str, int], int, int]:
    """(judgments per flag, flagged judgments, rows that predate flags)."""
    counts: Counter = Counter()
    flagged = unknown = 0
    for r in rows:
        if "flags" not in r:
            unknown += 1
            continue
        counts.update(r["flags"] or [])
        flagged += bool(r["flags"])
    return dict(sorted(counts.items())), flagged, unknown


def half_judged_pairs(rows: list[dict]) -> tuple[int, int]:
    """(pairs with an ok order and a not-ok one, pairs judged) over pairwise rows."""
    by_pair: dict[tuple, set] = defaultdict(set)
    for r in rows:
        pid = row_pair_id(r)
        if pid is not None:
            by_pair[(pid, r.get("sample_index", 0))].add(r["status"] == "ok")
    return sum(v == {True, False} for v in by_pair.values()), len(by_pair)


def judge_summary(all_rows: list[dict], ranks_by_id: dict[str, int] | None = None) -> dict:
    rows = latest_rows(all_rows)
    latencies = [r["latency_s"] for r in all_rows if not r["cache_hit"] and r["latency_s"]]
    costs = [r["cost"] for r in all_rows if r["cost"] is not None]
    swap, swap_n = swap_consistency(rows)
    first, ties, first_n = first_position_win_rate(rows)
    corr, corr_n = length_correlation(rows)
    flags, flagged, unknown = flag_counts(rows)
    half, pairs = half_judged_pairs(rows)
    out = {
        "calls": sum(not r["cache_hit"] for r in all_rows), "rows": len(all_rows),
        "cache_hits": sum(bool(r["cache_hit"]) for r in all_rows),
        "judgments": len(rows), "superseded_rows": len(all_rows) - len(rows),
        "status_counts": dict(Counter(r["status"] for r in rows)),
        "retried_calls": sum(len(r["attempts"] or []) > 1 for r in all_rows),
        "swap_consistency": swap, "swap_pairs": swap_n,
        "first_position_win_rate": first, "tie_rate": ties, "pairwise_rows": first_n,
        "length_spearman": corr, "length_points": corr_n,
        "flags": flags, "flagged_judgments": flagged, "rows_without_flags": unknown,
        "half_judged_pairs": half, "pairs": pairs,
        "score_histogram": histogram(rows),
        "latency_p50_s": float(np.median(latencies)) if latencies else None,
        "latency_p95_s": float(np.quantile(latencies, 0.95)) if latencies else None,
        "tokens": sum((r["tokens"]["prompt"] or 0) + (r["tokens"]["completion"] or 0)
                      for r in all_rows if not r["cache_hit"]),
        "cost": sum(costs) if costs else None,
    }
    if ranks_by_id:
        out["reference_agreement"], out["reference_pairs"] = reference_agreement(rows, ranks_by_id)
    return out


def inter_judge(rows_by_judge: dict[str, list[dict]], n_resamples: int = 1000, seed: int = 0) -> dict:
    """Kappa per two judges and alpha over all, on pair verdicts, with 95% bootstrap intervals."""
    verdicts = {j: {u: float(np.sign(d)) for u, d in _pair_diffs(latest_rows(rows)).items()}
                for j, rows in rows_by_judge.items()}
    judges = sorted(verdicts)
    out: dict = {"kappa": {}, "alpha_ordinal": None}
    for a, b in itertools.combinations(judges, 2):
        units = sorted(set(verdicts[a]) & set(verdicts[b]))
        if len(units) < 2:
            continue
        pairs = [(verdicts[a][u], verdicts[b][u]) for u in units]

        def kappa(sample):
            return cohen_kappa([p[0] for p in sample], [p[1] for p in sample])

        lo, hi = bootstrap_ci(pairs, kappa, n_resamples, seed=seed)
        out["kappa"][f"{a} vs {b}"] = {"kappa": kappa(pairs), "ci95": [lo, hi], "units": len(units)}
    units = sorted(set().union(*[set(v) for v in verdicts.values()])) if verdicts else []
    if len(judges) >= 2 and len(units) >= 2:
        matrix = np.array([[verdicts[j].get(u, np.nan) for u in units] for j in judges])
        cols = list(range(len(units)))

        def alpha(sample):
            return krippendorff_alpha(matrix[:, sample], "ordinal")

        lo, hi = bootstrap_ci(cols, alpha, n_resamples, seed=seed)
        out["alpha_ordinal"] = {"alpha": alpha(cols), "ci95": [lo, hi], "units": len(units)}
    return out


def summarize(path: str | Path, ranks_by_id: dict[str, int] | None = None,
              n_resamples: int = 1000) -> dict:
    """The whole audit summary of one transcript file."""
    rows = read_rows(path)
    by_judge: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_judge[r["judge"]].append(r)
    return {"transcript": str(path), "rows": len(rows),
            "judges": {j: judge_summary(rs, ranks_by_id) for j, rs in sorted(by_judge.items())},
            "inter_judge": inter_judge(by_judge, n_resamples) if len(by_judge) > 1 else None}
