"""Bootstrap intervals of corpus-level figures, and of the difference between two models.

Every figure here is a function of per-item sums: corpus BLEU of (matches, totals, lengths),
perplexity exp(sum NLL / sum tokens), Distinct-n (see ``diversity.distinct_shares``), accuracy
(correct / counted). An item (a held-out prompt) contributes one row of numbers; a bootstrap
resample draws items with replacement, sums their rows and applies the figure's function. The
difference of two models resamples the SAME items for both (a paired bootstrap), so the interval
of a gain says how the gain would move with another draw of prompts of the same kind.

    per_item = np.array([[nll, tokens], ...])                      # (N, 2)
    interval_of_sums(per_item, perplexity_of_sums, seed=0)
    # {"value": 12.3, "ci_low": 11.1, "ci_high": 13.8, "n": N, "confidence": 0.95}
    paired_gain(a_rows, b_rows, perplexity_of_sums, higher_is_better=False)
    # {"gain": f(B) - f(A), "ci_low", "ci_high", "n", "confidence", "a": f(A), "b": f(B)}

Percentile intervals from :func:`alignment.metrics.stats.bootstrap_ci` (what it resamples are
the item indices); a resample whose figure is undefined (no tokens, nothing counted) is left out.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from alignment.metrics.stats import bootstrap_ci

SumsFigure = Callable[..., float | None]      # (D,) column sums -> the figure (None: undefined)


def _rows(per_item):
    """``per_item`` as a float array (N, D); a 1-D sequence is one column."""
    import numpy as np

    rows = np.asarray(per_item, dtype=float)
    return rows[:, None] if rows.ndim == 1 else rows


def _resampled(rows, statistic: SumsFigure) -> Callable:
    """The figure of the items a bootstrap draw picked (their indices, as floats), NaN if undefined."""
    def figure(draw) -> float:
        value = statistic(rows[draw.astype(int)].sum(axis=0))
        return math.nan if value is None else float(value)
    return figure


def interval_of_sums(per_item, statistic: SumsFigure, n_resamples: int = 2000, confidence: float = 0.95,
                     seed: int = 0) -> dict:
    """The figure of all items and its bootstrap interval over items.

    ``per_item``: array (N, D), one row of sufficient statistics per item; ``statistic`` maps the
    column sums (D,) to the figure. Returns ``{"value", "ci_low", "ci_high", "n", "confidence"}``
    (None where there is no item or the figure is undefined).
    """
    import numpy as np

    rows = _rows(per_item)
    n = len(rows)
    value = statistic(rows.sum(axis=0)) if n else None
    ci = bootstrap_ci(np.arange(n), statistic=_resampled(rows, statistic), n_resamples=n_resamples,
                      confidence=confidence, seed=seed)
    return {"value": value, "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None, "n": n,
            "confidence": confidence}


def paired_gain(per_item_a, per_item_b, statistic: SumsFigure, higher_is_better: bool = True,
                n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> dict:
    """How much model A beats model B on the same items, with a paired bootstrap interval.

    ``gain`` is f(A) - f(B) when a higher figure is better (BLEU, accuracy) and f(B) - f(A) when
    lower is better (perplexity): positive always means A is better. Row i of both arrays is the
    same item. Returns ``{"gain", "ci_low", "ci_high", "n", "confidence", "a", "b"}`` (``a``,
    ``b``: the two figures on all items).
    """
    import numpy as np

    a, b = _rows(per_item_a), _rows(per_item_b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"paired_gain: {a.shape[0]} items for A but {b.shape[0]} for B")
    sign = 1.0 if higher_is_better else -1.0
    n = len(a)
    fa = statistic(a.sum(axis=0)) if n else None
    fb = statistic(b.sum(axis=0)) if n else None
    figure_a, figure_b = _resampled(a, statistic), _resampled(b, statistic)
    ci = bootstrap_ci(np.arange(n), statistic=lambda draw: sign * (figure_a(draw) - figure_b(draw)),
                      n_resamples=n_resamples, confidence=confidence, seed=seed)
    return {"gain": sign * (fa - fb) if fa is not None and fb is not None else None,
            "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None, "n": n,
            "confidence": confidence, "a": fa, "b": fb}


def ratio_of_sums(sums) -> float | None:
    """sums[0] / sums[1] (accuracy: correct / counted; Distinct: shares / n-grams); None if nothing counted."""
    return float(sums[0] / sums[1]) if sums[1] > 0 else None


def perplexity_of_sums(sums) -> float | None:
    """exp(sum NLL / sum tokens) from ``[nll, tokens]`` sums; None without tokens or when it overflows."""
    if sums[1] <= 0:
        return None
    mean = sums[0] / sums[1]
    return math.exp(mean) if mean < 50 else None
