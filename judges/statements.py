"""Rating statements: the text a judge writes to give its scores, found wherever it stands.

Three kinds, one per template kind:

* ``pairwise_rating``: ``Rating A: 8; Rating B: 4`` (also ``Rating A：8分，Rating B：4分``,
  ``Rating A: 8/10 and Rating B: 4/10``, ``评分A：8；评分B：4``, ``回答A得分：8，回答B得分：4``);
* ``pairwise_verdict``: ``[[A]]``, ``Verdict: [[B]]`` (a tie is ``[[C]]``);
* ``single_rating``: ``Correctness: 8; Richness: 6; ...; Overall: 7`` (the template's criteria,
  then ``Overall``, all of them, in order).

Markdown emphasis (``*``, ``**``, back-ticks) may sit anywhere inside a statement
(``**Rating A:** 8``): :func:`find_statements` searches a copy of the text without those
characters and maps every span back to offsets in the original text. Full-width punctuation
(``：；，``) and full-width digits are accepted.

Used by the parser (:mod:`judges.parsers`) on the judge's reply and by the injection checks
(:mod:`judges.flags`) on candidate texts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_STRIP = frozenset("*`")                     # markdown emphasis and code marks, ignored inside
_NUM = r"([-+]?\d+(?:[.．]\d+)?)"
_OUT_OF = r"(?:\s*(?:/|out\s+of|满分)\s*\d+|\s*分|\s*points?)?"   # "8/10", "8 out of 10", "8分"
_Q = r"[\"'“”‘’]?"                       # a quote mark (JSON-style replies)
_COLON = rf"\s*{_Q}\s*(?:[:：=]|is|为|是)?\s*{_Q}\s*"
_SEP = rf"\s*{_Q}\s*(?:[;；,，、|/]|and|和|以及)?\s*(?:[-•]\s*)?{_Q}\s*"   # "; ", ", ", a new bullet


def _label(slot: str) -> str:
    """``Rating A`` and the other ways judges name the score of slot A (or B)."""
    return (rf"(?:(?:rating|score)\s*(?:for\s+|of\s+)?(?:response\s*|answer\s*)?{slot}"
            rf"|(?:评分|得分|分数)\s*{slot}|(?:回答|答案)?\s*{slot}\s*的?\s*(?:评分|得分|分数))(?![A-Za-z])")


_PAIR = re.compile(rf"(?<![A-Za-z]){_label('A')}{_COLON}{_NUM}{_OUT_OF}{_SEP}"
                   rf"{_label('B')}{_COLON}{_NUM}{_OUT_OF}", re.IGNORECASE)
_VERDICT = re.compile(r"(?:(?:verdict|最终(?:判断|结论|裁决))\s*[:：]?\s*)?\[\[\s*(\w+)\s*\]\]",
                      re.IGNORECASE)


@lru_cache(maxsize=16)
def _single(criteria: tuple[str, ...]) -> re.Pattern:
    names = [*criteria, "overall"]
    body = _SEP.join(rf"{re.escape(n)}{_COLON}{_NUM}{_OUT_OF}" for n in names)
    return re.compile(rf"(?<![A-Za-z]){body}", re.IGNORECASE)


@dataclass(frozen=True)
class Statement:
    """One rating statement found in a text (offsets into the original text)."""

    kind: str                             # pairwise_rating | pairwise_verdict | single_rating
    span: tuple[int, int]                 # [start, end) of the whole statement
    values: tuple[str, ...]               # the numbers (or the verdict letter) as written
    value_spans: tuple[tuple[int, int], ...]   # where each value is written

    def key(self) -> tuple:
        """What the statement says (two statements with the same key agree)."""
        return tuple(number(v) if self.kind != "pairwise_verdict" else v.upper() for v in self.values)


def number(value: str) -> float:
    """A score as written (full-width digits and point allowed) as a float."""
    return float(value.replace("．", "."))


def _clean(text: str) -> tuple[str, list[int] | None]:
    """``text`` without emphasis marks, and for each kept character its offset in ``text``
    (None when nothing was removed: offsets are then the same)."""
    if "*" not in text and "`" not in text:
        return text, None
    keep = [i for i, ch in enumerate(text) if ch not in _STRIP]
    return "".join(text[i] for i in keep), keep


def _pattern(kind: str, criteria: tuple[str, ...]) -> re.Pattern:
    if kind == "pairwise_rating":
        return _PAIR
    if kind == "pairwise_verdict":
        return _VERDICT
    return _single(criteria)


def find_statements(text: str, kind: str, criteria: tuple[str, ...] = (),
                    offset: int = 0) -> list[Statement]:
    """Every statement of ``kind`` in ``text``, in order; spans are shifted by ``offset``."""
    clean, keep = _clean(text)
    found = []
    for m in _pattern(kind, criteria).finditer(clean):
        def orig(a: int, b: int) -> tuple[int, int]:
            if keep is None:
                return offset + a, offset + b
            return offset + keep[a], offset + keep[b - 1] + 1
        groups = range(1, (m.lastindex or 0) + 1)
        found.append(Statement(kind, orig(*m.span()), tuple(m.group(g) for g in groups),
                               tuple(orig(*m.span(g)) for g in groups)))
    return found


def any_statement(text: str, criteria: tuple[str, ...] = ("correctness", "richness", "consistency",
                                                          "diagnosis")) -> Statement | None:
    """The first statement of any kind in ``text`` (for checks on candidate texts)."""
    for kind in ("pairwise_rating", "pairwise_verdict", "single_rating"):
        got = find_statements(text, kind, criteria)
        if got:
            return got[0]
    return None
