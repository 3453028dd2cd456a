"""Agreement and correlation statistics in numpy (no scipy), as small pure functions.

* :func:`cohen_kappa`: two raters, nominal categories: (p_o - p_e) / (1 - p_e).
* :func:`krippendorff_alpha`: any number of raters, missing values allowed, ``interval``
  (squared difference) or ``ordinal`` (squared cumulative-rank distance between categories) or
  ``nominal`` metric, from the coincidence matrix: alpha = 1 - D_o / D_e.
* :func:`pearson`, :func:`spearman` (Pearson on average ranks, so ties are handled).
* :func:`bootstrap_ci`: percentile interval of a statistic over resampled units.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def cohen_kappa(a: Sequence, b: Sequence) -> float:
    """Cohen's kappa for two raters' labels of the same items (nan when p_e == 1)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.size == 0:
        raise ValueError("cohen_kappa needs two label sequences of the same, non-zero length")
    cats = np.unique(np.concatenate([a, b]))
    idx_a = np.searchsorted(cats, a)
    idx_b = np.searchsorted(cats, b)
    table = np.zeros((len(cats), len(cats)))
    np.add.at(table, (idx_a, idx_b), 1)
    table /= table.sum()
    p_o = np.trace(table)
    p_e = float(table.sum(1) @ table.sum(0))
    if p_e == 1.0:
        return float("nan")
    return float((p_o - p_e) / (1.0 - p_e))


def _delta(values: np.ndarray, counts: np.ndarray, metric: str) -> np.ndarray:
    """Squared distance between every two category values (Krippendorff's delta^2)."""
    if metric == "nominal":
        return (values[:, None] != values[None, :]).astype(float)
    if metric == "interval":
        return (values[:, None] - values[None, :]) ** 2
    if metric == "ordinal":
        # delta(c, k) = (sum of n_g for g from c to k, minus (n_c + n_k) / 2) ** 2
        cum = np.concatenate([[0.0], np.cumsum(counts)])
        i, j = np.meshgrid(np.arange(len(values)), np.arange(len(values)), indexing="ij")
        lo, hi = np.minimum(i, j), np.maximum(i, j)
        between = cum[hi + 1] - cum[lo]
        return (between - (counts[i] + counts[j]) / 2.0) ** 2
    raise ValueError(f"unknown metric {metric!r}: use nominal, interval or ordinal")


def krippendorff_alpha(data: np.ndarray | Sequence[Sequence[float]], metric: str = "interval") -> float:
    """Krippendorff's alpha. ``data`` is raters x units, ``nan`` = missing. Units with fewer
    than two ratings are ignored. Returns nan when there is no disagreement to expect."""
    x = np.asarray(data, dtype=float)
    if x.ndim != 2:
        raise ValueError("krippendorff_alpha needs a raters x units matrix")
    x = x[:, (~np.isnan(x)).sum(0) >= 2]
    if x.size == 0:
        return float("nan")
    values = np.unique(x[~np.isnan(x)])
    index = {v: k for k, v in enumerate(values)}
    coincidence = np.zeros((len(values), len(values)))
    for unit in x.T:
        present = unit[~np.isnan(unit)]
        m = len(present)
        ids = np.array([index[v] for v in present])
        pair = np.zeros_like(coincidence)
        np.add.at(pair, (ids[:, None].repeat(m, 1), ids[None, :].repeat(m, 0)), 1)
        pair[np.diag_indices_from(pair)] -= np.bincount(ids, minlength=len(values))
        coincidence += pair / (m - 1)
    n_c = coincidence.sum(1)
    n = n_c.sum()
    delta = _delta(values, n_c, metric)
    d_o = (coincidence * delta).sum() / n
    d_e = (np.outer(n_c, n_c) * delta).sum() / (n * (n - 1))
    if d_e == 0:
        return float("nan")
    return float(1.0 - d_o / d_e)


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.size < 2:
        raise ValueError("pearson needs two sequences of the same length >= 2")
    xc, yc = x - x.mean(), y - y.mean()
    denom = np.sqrt((xc ** 2).sum() * (yc ** 2).sum())
    return float((xc * yc).sum() / denom) if denom > 0 else float("nan")


def average_ranks(x: Sequence[float]) -> np.ndarray:
    """1-based ranks, ties get the mean of the ranks they span."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    return pearson(average_ranks(x), average_ranks(y))


def bootstrap_ci(units: Sequence, statistic: Callable[[list], float], n_resamples: int = 1000,
                 level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over ``units`` resampled with replacement.
    Resamples where the statistic is nan are left out; (nan, nan) when all are."""
    units = list(units)
    if not units:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_resamples):
        pick = rng.integers(0, len(units), len(units))
        v = statistic([units[i] for i in pick])
        if not np.isnan(v):
            values.append(v)
    if not values:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0
    return float(np.quantile(values, tail)), float(np.quantile(values, 1.0 - tail))
