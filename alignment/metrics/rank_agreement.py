"""How well reward models' scores agree with a ground-truth quality score, with intervals.

Samples come in groups: the k responses sampled for one case. For each reward model:

* ``spearman``: Spearman's rho between score and quality over every sample, pooled across cases
  (ties get average ranks, :func:`judges.stats.spearman`).
* ``kendall_within_case``: the mean over cases of Kendall's tau-b between the scores and the
  qualities of that case's k samples: does the RM order a prompt's samples the way the truth
  does? A case whose samples all have the same quality (or the same score) has no tau: it is
  left out and counted (``cases_with_tau``).
* ``top_pick_quality``: the mean over cases of the quality of the sample the RM scores highest
  (a tie for the top score: the mean quality of the tied samples). That is what best-of-k
  selection (rejection sampling, RSFT) keeps; ``selection_gain`` is it minus the mean quality of
  all samples (what a random pick keeps), and the table also gives ``oracle_quality`` (the best
  possible pick).

Intervals are percentile bootstraps over CASES (a resample draws whole cases, all k samples of
each: the samples of one case are not independent). Every model is measured on the same
resampled cases, so ``paired`` differences between two models come with a paired interval.

    quality = [np.array([1.0, 0.0, 0.5]), np.array([0.0, 0.0, 1.0])]          # per case
    scores = {"rm_a": [np.array([2.0, -1.0, 0.3]), np.array([0.1, 0.2, 0.9])]}  # per model, per case
    agreement_table(quality, scores, n_resamples=2000, seed=0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from judges.stats import spearman

Groups = Sequence[Sequence[float]]


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b over every pair of items: (concordant - discordant) / sqrt((pairs not
    tied in x) * (pairs not tied in y)). NaN with fewer than two items or when x or y is constant.
    O(n^2): meant for the k samples of one case."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"kendall_tau_b needs two sequences of one length, got {x.shape} and {y.shape}")
    if len(x) < 2:
        return math.nan
    upper = np.triu_indices(len(x), k=1)
    dx = np.sign(x[:, None] - x[None, :])[upper]
    dy = np.sign(y[:, None] - y[None, :])[upper]
    denominator = math.sqrt(np.count_nonzero(dx) * np.count_nonzero(dy))
    return float((dx * dy).sum() / denominator) if denominator > 0 else math.nan


def top_pick_quality(scores: Sequence[float], quality: Sequence[float]) -> float:
    """Quality of the highest-scored sample (the mean over samples tied for the top score)."""
    scores, quality = np.asarray(scores, dtype=float), np.asarray(quality, dtype=float)
    if scores.shape != quality.shape or len(scores) == 0:
        raise ValueError("top_pick_quality needs scores and qualities of one, non-zero length")
    return float(quality[scores == scores.max()].mean())


def percentile_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float | None, float | None]:
    """The central ``confidence`` interval of the finite ``values`` (None, None when there are none)."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if len(finite) == 0:
        return None, None
    alpha = (1.0 - confidence) / 2
    lo, hi = np.quantile(finite, [alpha, 1 - alpha])
    return float(lo), float(hi)


class _Pooled:
    """Every sample's quality and scores in one array, and each case's slice of it."""

    def __init__(self, groups: Groups):
        lengths = [len(g) for g in groups]
        self.starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
        self.lengths = np.asarray(lengths, dtype=int)
        self.values = np.concatenate([np.asarray(g, dtype=float) for g in groups]) if groups else np.zeros(0)

    def rows(self, cases: np.ndarray) -> np.ndarray:
        """Indices into the pooled array of every sample of ``cases`` (repeats kept)."""
        return np.concatenate([np.arange(s, s + n) for s, n in zip(self.starts[cases], self.lengths[cases])])


def _figure(value: float, draws: np.ndarray, confidence: float, n: int | None = None) -> dict:
    lo, hi = percentile_interval(draws, confidence)
    out = {"value": None if not math.isfinite(value) else float(value), "ci_low": lo, "ci_high": hi}
    return out if n is None else {**out, "n": n}


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else math.nan


def agreement_table(quality: Groups, scores: dict[str, Groups], n_resamples: int = 2000,
                    confidence: float = 0.95, seed: int = 0) -> dict:
    """Agreement of each model's scores with ``quality`` (module doc), with bootstrap intervals.

    ``quality[c]`` holds the ground-truth quality of case c's samples and ``scores[m][c]`` model
    m's scores of the same samples, in the same order. Returns ``{"cases", "samples",
    "mean_quality", "oracle_quality", "models": {m: {"spearman", "kendall_within_case",
    "cases_with_tau", "top_pick_quality", "selection_gain"}}, "paired": {"<b> minus <a>": {...}}}``
    where each figure is ``{"value", "ci_low", "ci_high"}``.
    """
    n = len(quality)
    for name, groups in scores.items():
        if [len(g) for g in groups] != [len(q) for q in quality]:
            raise ValueError(f"scores of {name!r} do not match the samples of the quality groups")
    if n == 0:
        raise ValueError("agreement_table needs at least one case")
    draws = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    pooled_quality = _Pooled(quality)
    case_mean = np.array([np.mean(q) for q in quality])
    case_best = np.array([np.max(q) for q in quality])
    table = {"cases": n, "samples": int(pooled_quality.lengths.sum()),
             "mean_quality": _figure(case_mean.mean(), case_mean[draws].mean(axis=1), confidence),
             "oracle_quality": _figure(case_best.mean(), case_best[draws].mean(axis=1), confidence),
             "models": {}, "paired": {}}
    rows = [pooled_quality.rows(d) for d in draws]      # every model's samples sit at the same rows
    resampled: dict[str, dict[str, np.ndarray]] = {}
    for name, groups in scores.items():
        pooled = _Pooled(groups)
        taus = np.array([kendall_tau_b(s, q) for s, q in zip(groups, quality)])
        tops = np.array([top_pick_quality(s, q) for s, q in zip(groups, quality)])
        per_draw = {
            "spearman": np.array([spearman(pooled.values[r], pooled_quality.values[r]) for r in rows]),
            "kendall_within_case": np.array([_nanmean(taus[d]) for d in draws]),
            "top_pick_quality": tops[draws].mean(axis=1),
            "selection_gain": (tops - case_mean)[draws].mean(axis=1),
        }
        values = {"spearman": spearman(pooled.values, pooled_quality.values), "kendall_within_case": _nanmean(taus),
                  "top_pick_quality": tops.mean(), "selection_gain": (tops - case_mean).mean()}
        table["models"][name] = {k: _figure(values[k], per_draw[k], confidence) for k in per_draw}
        table["models"][name]["cases_with_tau"] = int(np.isfinite(taus).sum())
        resampled[name] = {"values": values, "draws": per_draw}
    names = list(scores)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            table["paired"][f"{b} minus {a}"] = {
                k: _figure(resampled[b]["values"][k] - resampled[a]["values"][k],
                           resampled[b]["draws"][k] - resampled[a]["draws"][k], confidence)
                for k in resampled[a]["draws"]}
    return table
