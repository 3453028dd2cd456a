"""Distinct-n (Li et al., 2016): the share of n-grams across all responses that are unique."""

from __future__ import annotations

from collections import Counter

from alignment.metrics.text import ngrams, text_tokens


def distinct_n(texts: list[str], n: int) -> float | None:
    """Distinct n-grams / total n-grams over every text together (None when there is no n-gram)."""
    total, unique = 0, set()
    for text in texts:
        grams = ngrams(text_tokens(text), n)
        total += sum(grams.values())
        unique.update(grams)
    return len(unique) / total if total else None


def distinct_shares(texts: list[str], n: int) -> list[tuple[float, int]]:
    """Per text: ``(its share of the distinct n-grams, its n-grams)``, so that the column sums
    give Distinct-n (``sum(shares) / sum(n-grams) == distinct_n(texts, n)``).

    A text's share is the sum, over its n-gram occurrences, of 1 / (occurrences of that n-gram
    in all texts): each distinct n-gram's 1 is split among its occurrences. Resampling texts with
    these shares held fixed (``alignment.metrics.resample``) gives an interval for Distinct-n
    that a repeated draw cannot bias: recomputing the distinct n-grams of a resample would count
    a text drawn twice as all repeats and push every resample below the figure itself.
    """
    grams = [ngrams(text_tokens(t), n) for t in texts]
    everywhere: Counter = Counter()
    for g in grams:
        everywhere.update(g)
    return [(sum(c / everywhere[k] for k, c in g.items()), sum(g.values())) for g in grams]
