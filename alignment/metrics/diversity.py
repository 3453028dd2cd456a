"""Distinct-n (Li et al., 2016): the share of n-grams across all responses that are unique."""

from __future__ import annotations

from alignment.metrics.text import ngrams, text_tokens


def distinct_n(texts: list[str], n: int) -> float | None:
    """Distinct n-grams / total n-grams over every text together (None when there is no n-gram)."""
    total, unique = 0, set()
    for text in texts:
        grams = ngrams(text_tokens(text), n)
        total += sum(grams.values())
        unique.update(grams)
    return len(unique) / total if total else None
