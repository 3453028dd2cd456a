"""Ranking metrics of routing and recommendation, with 95% bootstrap intervals over cases.

A prediction is a ranked list of labels (departments or doctors), best first. Per case,
``hit@k`` is 1 when the gold label is among the first ``k``; top-k accuracy is the mean of the
hits and its interval resamples CASES with replacement (``alignment.metrics.stats.bootstrap_ci``).
A paired gain compares two models on the same cases: the per-case differences of their hits are
resampled together, so the interval says how much the gain would move with another draw of cases.

    hits = top_k_hits([["a", "b"], ["b", "a"]], ["a", "a"], k=1)     # [1.0, 0.0]
    top_k_accuracy(ranked, gold, ks=(1, 3))   # {"top1": {"accuracy", "ci_low", "ci_high", "n"}, ...}
    confusion_table(gold, [r[0] for r in ranked])
    paired_gain(base_hits, new_hits)          # {"baseline", "candidate", "gain", "ci_low", "ci_high", "n"}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from alignment.metrics.stats import bootstrap_ci


def top_k_hits(ranked: Sequence[Sequence[str]], gold: Sequence[str], k: int) -> list[float]:
    """1.0 per case whose gold label is among its first ``k`` ranked labels, else 0.0."""
    if len(ranked) != len(gold):
        raise ValueError(f"{len(ranked)} rankings for {len(gold)} gold labels")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return [1.0 if g in list(r)[:k] else 0.0 for r, g in zip(ranked, gold)]


def mean_with_interval(values: Sequence[float], n_resamples: int = 2000, seed: int = 0,
                       confidence: float = 0.95) -> dict:
    """``{"accuracy", "ci_low", "ci_high", "n"}``: the mean of ``values`` and its bootstrap interval
    (None everywhere for no values)."""
    ci = bootstrap_ci(values, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return {"accuracy": sum(values) / len(values) if values else None,
            "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None, "n": len(values)}


def top_k_accuracy(ranked: Sequence[Sequence[str]], gold: Sequence[str], ks: Sequence[int] = (1, 3),
                   n_resamples: int = 2000, seed: int = 0) -> dict:
    """``{"top<k>": mean_with_interval(hits@k)}`` for each k."""
    return {f"top{k}": mean_with_interval(top_k_hits(ranked, gold, k), n_resamples, seed) for k in ks}


def confusion_table(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str] | None = None) -> dict:
    """Counts of (gold, top-1 prediction) and per-label support, recall and precision.

    ``labels``: the row/column order (default: every label seen, by support then name). Returns
    ``{"labels", "matrix"}`` (``matrix[i][j]``: cases of gold ``labels[i]`` predicted as
    ``labels[j]``; a prediction outside ``labels`` is counted in no column) and ``"per_label"``
    (label -> ``{"support", "predicted", "correct", "recall", "precision"}``; None when undefined).
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels for {len(predicted)} predictions")
    support, made = Counter(gold), Counter(predicted)
    if labels is None:
        labels = sorted(set(gold) | set(predicted), key=lambda x: (-support[x], x))
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, predicted):
        if g in index and p in index:
            matrix[index[g]][index[p]] += 1
    per_label = {}
    for label in labels:
        correct = matrix[index[label]][index[label]]
        per_label[label] = {"support": support[label], "predicted": made[label], "correct": correct,
                            "recall": correct / support[label] if support[label] else None,
                            "precision": correct / made[label] if made[label] else None}
    return {"labels": list(labels), "matrix": matrix, "per_label": per_label}


def paired_gain(baseline: Sequence[float], candidate: Sequence[float], n_resamples: int = 2000,
                seed: int = 0, confidence: float = 0.95) -> dict:
    """Mean of ``candidate - baseline`` over the same cases (per-case hits), with a paired
    bootstrap interval; also both accuracies."""
    if len(baseline) != len(candidate):
        raise ValueError(f"{len(baseline)} baseline cases but {len(candidate)} candidate cases")
    diffs = [c - b for b, c in zip(baseline, candidate)]
    ci = bootstrap_ci(diffs, n_resamples=n_resamples, confidence=confidence, seed=seed)
    n = len(diffs)
    return {"baseline": sum(baseline) / n if n else None, "candidate": sum(candidate) / n if n else None,
            "gain": sum(diffs) / n if n else None, "ci_low": ci[0] if ci else None,
            "ci_high": ci[1] if ci else None, "n": n,
            "candidate_only": sum(1 for d in diffs if d > 0), "baseline_only": sum(1 for d in diffs if d < 0)}
