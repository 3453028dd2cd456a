"""Bootstrap confidence intervals and pairwise win rates.

Win rate of A over B from per-prompt outcomes (1 = A better, 0.5 = tie, 0 = B better); the 95%
interval resamples PROMPTS with replacement (percentile bootstrap), so it says how much the
figure would move with another draw of prompts of the same kind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


def pairwise_outcome(score_a: float, score_b: float, tie_tolerance: float = 0.0) -> float:
    """1.0 if a wins, 0.0 if b wins, 0.5 if the scores differ by at most ``tie_tolerance``."""
    if abs(score_a - score_b) <= tie_tolerance:
        return 0.5
    return 1.0 if score_a > score_b else 0.0


def bootstrap_ci(values: Sequence[float], statistic: Callable = None, n_resamples: int = 2000,
                 confidence: float = 0.95, seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap interval of ``statistic`` (default: mean) over ``values``.

    None when there are no values, or when ``statistic`` is undefined (NaN) on every resample
    (resamples where it is NaN are left out of the interval). Deterministic for a given seed.
    """
    import numpy as np

    if len(values) == 0:
        return None
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(data), size=(n_resamples, len(data)))
    if statistic is None:
        stats = data[idx].mean(axis=1)
    else:
        stats = np.array([statistic(data[row]) for row in idx])
    alpha = (1.0 - confidence) / 2
    stats = stats[np.isfinite(stats)]        # a resample whose statistic is undefined (NaN) is left out
    if len(stats) == 0:
        return None
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return float(lo), float(hi)


def win_rate(outcomes: Sequence[float], n_resamples: int = 2000, confidence: float = 0.95,
             seed: int = 0) -> dict:
    """``{"win_rate", "ci_low", "ci_high", "n", "wins", "ties", "losses"}`` of per-prompt outcomes."""
    n = len(outcomes)
    ci = bootstrap_ci(outcomes, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return {"win_rate": sum(outcomes) / n if n else None,
            "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None, "n": n,
            "wins": sum(1 for o in outcomes if o == 1.0), "ties": sum(1 for o in outcomes if o == 0.5),
            "losses": sum(1 for o in outcomes if o == 0.0), "confidence": confidence}


def mean_with_ci(values: Sequence[float], n_resamples: int = 2000, confidence: float = 0.95,
                 seed: int = 0) -> dict:
    """``{"value", "ci_low", "ci_high", "n"}``: the mean of ``values`` and its percentile bootstrap
    interval (None for all three when there are no values)."""
    ci = bootstrap_ci(values, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return {"value": sum(values) / len(values) if len(values) else None,
            "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None, "n": len(values)}


def paired_difference(a: Sequence[float], b: Sequence[float], n_resamples: int = 2000,
                      confidence: float = 0.95, seed: int = 0) -> dict:
    """Mean of ``a[i] - b[i]`` over paired items (the same cases scored for two models) with a
    bootstrap interval that resamples the PAIRS, so what the two have in common (a case both get
    right, or both wrong) does not widen it: ``{"diff", "ci_low", "ci_high", "n"}``."""
    if len(a) != len(b):
        raise ValueError(f"paired values of unequal length: {len(a)} and {len(b)}")
    out = mean_with_ci([x - y for x, y in zip(a, b)], n_resamples, confidence, seed)
    return {"diff": out.pop("value"), **out}


Metrics = dict[str, tuple[Callable, Callable]]    # name -> (applies to the item, value of the item)


def metric_table(items: Sequence, metrics: Metrics, n_resamples: int = 2000, seed: int = 0) -> dict:
    """Every metric over the items where it applies: ``{name: {value, ci_low, ci_high, n}}``
    (:func:`mean_with_ci`)."""
    return {name: mean_with_ci([value(x) for x in items if applies(x)], n_resamples, seed=seed)
            for name, (applies, value) in metrics.items()}


def paired_metric_table(items_a: Sequence, items_b: Sequence, metrics: Metrics, n_resamples: int = 2000,
                        seed: int = 0) -> dict:
    """Per metric, A minus B over the same items (same order) where it applies to both:
    ``{name: {diff, ci_low, ci_high, n}}`` (:func:`paired_difference`)."""
    if len(items_a) != len(items_b):
        raise ValueError(f"paired items of unequal length: {len(items_a)} and {len(items_b)}")
    out = {}
    for name, (applies, value) in metrics.items():
        both = [(value(a), value(b)) for a, b in zip(items_a, items_b) if applies(a) and applies(b)]
        out[name] = paired_difference([x for x, _ in both], [y for _, y in both], n_resamples, seed=seed)
    return out
