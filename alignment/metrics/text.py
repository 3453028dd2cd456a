"""Tokenisation for the metrics: characters for Chinese, words for English.

    text_tokens("头痛三天了, any fever?")      # ['头', '痛', '三', '天', '了', 'any', 'fever']
    text_tokens("Do you have a fever?")       # ['do', 'you', 'have', 'a', 'fever']

Every CJK character is a token; runs of Latin letters / digits are lower-cased words;
punctuation and whitespace are dropped (they would inflate overlap without meaning anything).
The same rule applies to both languages, so mixed text works; ``language`` only matters for
:func:`detect_language`'s callers that report per-language figures.
"""

from __future__ import annotations

import re
from collections import Counter

# CJK unified ideographs (+ extension A and compatibility ideographs), or a Latin/digit word
_TOKEN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[A-Za-z0-9]+(?:'[A-Za-z]+)?")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def text_tokens(text: str | None) -> list[str]:
    """Metric tokens of ``text`` (see the module docstring); ``None`` gives no tokens."""
    if not text:
        return []
    return [t.lower() for t in _TOKEN.findall(text)]


def detect_language(text: str) -> str:
    """``"zh"`` when at least 30% of the metric tokens are Chinese characters, else ``"en"``."""
    tokens = text_tokens(text)
    if not tokens:
        return "en"
    cjk = sum(1 for t in tokens if _CJK.fullmatch(t))
    return "zh" if cjk / len(tokens) >= 0.3 else "en"


def ngrams(tokens: list[str], n: int) -> Counter:
    """Counts of the n-grams (tuples) of ``tokens``."""
    return Counter(tuple(tokens[i: i + n]) for i in range(len(tokens) - n + 1))
