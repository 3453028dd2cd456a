"""From judgments to ranked reward tuples and (chosen, rejected) pairs.

* :func:`response_scores`: a response's score is the mean of its scores over all ok comparisons
  (each judged order of each pair it appears in, from every judge); a response with no ok
  comparison has no score (None), and is left out of rankings and pairs.
* :func:`dense_ranks`: 0 = best; equal scores share a rank; the next distinct score gets the next
  rank ("dense"), so ranks [0, 0, 1] mean two tied best responses and one worse one.
* :func:`source_ranks`: ranks from where each response came from, as ChiMed-GPT did
  (doctor > gpt-4 > gpt-3.5 > weak model).
* :func:`extract_pairs`: ``adjacent`` (each response against each one of the next rank),
  ``all`` (every pair of different rank) or ``best_vs_worst`` (top rank against bottom rank);
  the margin is the score difference (rank difference when there are no scores), and pairs
  below ``min_margin`` are dropped and counted.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from judges.api import PairResult

PairMode = Literal["adjacent", "all", "best_vs_worst"]


def response_scores(results: list[PairResult]) -> dict[str, float]:
    """Response id -> mean score over its ok comparisons (ids without one are absent)."""
    sums: dict[str, list[float]] = defaultdict(list)
    for r in results:
        for c in r.comparisons:
            if c.status == "ok":
                sums[r.item.a_id].append(c.score_a)
                sums[r.item.b_id].append(c.score_b)
    return {rid: sum(v) / len(v) for rid, v in sums.items()}


def comparison_counts(results: list[PairResult]) -> dict[str, int]:
    """Response id -> number of ok comparisons behind its score."""
    counts: dict[str, int] = defaultdict(int)
    for r in results:
        for c in r.comparisons:
            if c.status == "ok":
                counts[r.item.a_id] += 1
                counts[r.item.b_id] += 1
    return dict(counts)


def dense_ranks(scores: list[float], tie_tolerance: float = 0.0) -> list[int]:
    """Dense ranks, 0 = highest score; scores within ``tie_tolerance`` of the previous distinct
    level share its rank. ``dense_ranks([7, 9, 7, 3]) == [1, 0, 1, 2]``."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    ranks = [0] * len(scores)
    rank, level = -1, None
    for i in order:
        if level is None or level - scores[i] > tie_tolerance:
            rank, level = rank + 1, scores[i]
        ranks[i] = rank
    return ranks


def source_ranks(sources: list[str], order: list[str]) -> list[int]:
    """Ranks from the position of each response's source in ``order`` (best first); sources
    not in ``order`` are an error (a ranking must not guess)."""
    unknown = sorted({s for s in sources if s not in order})
    if unknown:
        raise ValueError(f"sources {unknown} are not in the ranking order {order}")
    levels = sorted({order.index(s) for s in sources})
    return [levels.index(order.index(s)) for s in sources]


@dataclass
class ExtractedPair:
    chosen: int                           # index into the responses of the tuple
    rejected: int
    margin: float


def extract_pairs(ranks: list[int], scores: list[float] | None, mode: PairMode = "adjacent",
                  min_margin: float = 0.0) -> tuple[list[ExtractedPair], int]:
    """Pairs from one ranked tuple; returns (pairs, number dropped for a small margin)."""
    if not ranks:
        return [], 0
    top, bottom = min(ranks), max(ranks)
    pairs, dropped = [], 0
    for i, ri in enumerate(ranks):
        for j, rj in enumerate(ranks):
            if ri >= rj:
                continue
            if mode == "adjacent" and rj != ri + 1:
                continue
            if mode == "best_vs_worst" and (ri != top or rj != bottom):
                continue
            margin = (scores[i] - scores[j]) if scores is not None else float(rj - ri)
            if margin < min_margin:
                dropped += 1
                continue
            pairs.append(ExtractedPair(i, j, margin))
    return pairs, dropped
