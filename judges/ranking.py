"""From judgments to ranked reward tuples and (chosen, rejected) pairs.

* :func:`reward_comparisons`: which comparisons of a pair may become reward data. By default a
  pair counts only when every one of its judgments is ``ok`` (both orders:
  ``require_both_orders``) and none is flagged (``exclude_flagged``, see :mod:`judges.flags`);
  :func:`exclusion` says why a pair does not count (``not_ok``, ``half_judged``, ``flagged``).
* :func:`response_evidence` / :func:`response_scores`: a response's score is the mean of its
  scores over the reward comparisons it appears in (each judged order of each pair, from every
  judge), with the judgment ids behind it (lineage); a response with none has no score (None),
  and is left out of rankings and pairs.
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
from dataclasses import dataclass, field
from typing import Literal

from judges.api import Comparison, PairResult

PairMode = Literal["adjacent", "all", "best_vs_worst"]


def exclusion(result: PairResult, require_both_orders: bool = True,
              exclude_flagged: bool = True) -> str | None:
    """Why the pair gives no reward data (``flagged``, ``not_ok``, ``half_judged``), or None."""
    comps = result.comparisons
    if exclude_flagged and any(c.flags for c in comps):
        if not require_both_orders and any(c.status == "ok" and not c.flags for c in comps):
            return None
        return "flagged"
    if not any(c.status == "ok" for c in comps):
        return "not_ok"
    if require_both_orders and result.half_judged:
        return "half_judged"
    return None


def reward_comparisons(result: PairResult, require_both_orders: bool = True,
                       exclude_flagged: bool = True) -> list[Comparison]:
    """The comparisons of ``result`` that may become reward data (see the module doc)."""
    if exclusion(result, require_both_orders, exclude_flagged) is not None:
        return []
    return [c for c in result.comparisons
            if c.status == "ok" and not (exclude_flagged and c.flags)]


@dataclass
class Evidence:
    """The scores a response got and the judgments they came from."""

    scores: list[float] = field(default_factory=list)
    judgment_ids: list[str] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores)


def response_evidence(results: list[PairResult], require_both_orders: bool = True,
                      exclude_flagged: bool = True) -> dict[str, Evidence]:
    """Response id -> its scores over its reward comparisons and their judgment ids."""
    out: dict[str, Evidence] = defaultdict(Evidence)
    for r in results:
        for c in reward_comparisons(r, require_both_orders, exclude_flagged):
            jids = c.judgment_id.split("+")            # a single-answer comparison has two
            for rid, score in ((r.item.a_id, c.score_a), (r.item.b_id, c.score_b)):
                out[rid].scores.append(score)
                out[rid].judgment_ids.extend(jids)
    return dict(out)


def response_scores(results: list[PairResult], require_both_orders: bool = True,
                    exclude_flagged: bool = True) -> dict[str, float]:
    """Response id -> mean score over its reward comparisons (ids without one are absent)."""
    return {rid: ev.mean for rid, ev in
            response_evidence(results, require_both_orders, exclude_flagged).items()}


def comparison_counts(results: list[PairResult], require_both_orders: bool = True,
                      exclude_flagged: bool = True) -> dict[str, int]:
    """Response id -> number of reward comparisons behind its score."""
    return {rid: len(ev.scores) for rid, ev in
            response_evidence(results, require_both_orders, exclude_flagged).items()}


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
