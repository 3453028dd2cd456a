"""Parsers of judge completions: the rating statement of the reply's closing paragraph counts.

Every template asks the judge to end its reply with a rating statement (``Rating A: x; Rating B:
y``, ``Verdict: [[A]]``, ``Correctness: x; ...; Overall: x``). Real judges add prose around it
(``I prefer the first answer. Rating A: 8; Rating B: 4``), markdown, full-width punctuation, a
trailing remark. The rules (parser version 2):

1. A reply cut by ``max_tokens`` (``finish_reason == "length"``) is a ``parse_error``: the judge
   did not finish, so whatever it wrote last is not its verdict.
2. The *closing block* is the reply's final paragraph (paragraphs are separated by blank lines).
   When that paragraph holds no statement and is a short trailing remark (one line of at most
   200 characters, no digit, no rating word such as "rating", "score", "评分": ``I hope this
   helps.``), the paragraph before it is the closing block instead.
3. Statements are found anywhere in the closing block (:mod:`judges.statements`). The last line
   that holds one decides (a later statement supersedes an earlier draft); when that line holds
   two statements that say different things (``... Rating A: 8; Rating B: 2, unlike its claim
   Rating A: 1; Rating B: 10``) the reply is a ``parse_error``.
4. Statements outside the closing block never count, so a candidate's rating line that the judge
   quotes in its reasoning cannot become the score; a reply whose statement is a verbatim copy of
   a candidate's text is flagged (``parroted_candidate``, :mod:`judges.flags`).

Statuses: ``ok`` (scores parsed and inside the scale), ``out_of_range`` (parsed, a score outside
the template's scale), ``refused`` (no statement and the reply reads as a refusal),
``parse_error`` (anything else). ``api_error`` is decided by the client, never here. Only ``ok``
carries scores; every other status has ``scores=None``. ``span`` is where the statement that
was read stands in the reply, so an auditor sees exactly what was parsed.

Bump ``PARSER_VERSION`` whenever a rule changes: it is part of every cache key.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from judges.statements import Statement, find_statements, number
from judges.templates import TemplateSpec

PARSER_VERSION = "2"

_BREAK = re.compile(r"\n[ \t\u3000]*\n")
_RATING_WORDS = re.compile(r"rating|score|verdict|overall|\[\[|评分|得分|分数|结论|打分", re.IGNORECASE)
_DIGIT = re.compile(r"\d")
_REMARK_MAX_CHARS = 200
_REFUSAL = re.compile(
    r"I(?:'m| am) sorry|I can(?:no|')t|I am unable|I'm unable|as an AI|cannot (?:help|assist|provide)"
    r"|抱歉|无法(?:提供|回答|评估|协助|评分)|不能(?:提供|回答|评估|评分)|作为(?:一个)?(?:AI|人工智能)",
    re.IGNORECASE)
_EXPECTED = {"pairwise_rating": "'Rating A: x; Rating B: y'", "pairwise_verdict": "'Verdict: [[A|B|C]]'"}


@dataclass
class Parsed:
    """The outcome of parsing one completion."""

    status: str                            # ok | parse_error | refused | out_of_range
    scores: dict[str, float] | None = None  # position ("A", "B") -> score; only when ok
    span: tuple[int, int] | None = None    # [start, end) of the statement read, in the completion
    error: str | None = None               # why it is not ok
    details: dict[str, float] = field(default_factory=dict)  # single_rating: every criterion
    value_spans: dict[str, tuple[int, int]] = field(default_factory=dict)  # position -> score text
    statement: str | None = None           # the statement read, as written


def looks_like_refusal(text: str) -> bool:
    """True when a reply reads as the judge declining (the ``refused`` rule of this module)."""
    return bool(_REFUSAL.search(text))


def paragraphs(text: str) -> list[tuple[int, int]]:
    """[start, end) of every non-blank paragraph of ``text`` (blank lines separate them)."""
    out, start = [], 0
    for m in _BREAK.finditer(text):
        out.append((start, m.start()))
        start = m.end() - 1                # keep the newline that opens the next paragraph
    out.append((start, len(text)))
    return [(a, b) for a, b in out if text[a:b].strip()]


def _is_trailing_remark(block: str) -> bool:
    block = block.strip()
    return ("\n" not in block and len(block) <= _REMARK_MAX_CHARS and not _DIGIT.search(block)
            and not _RATING_WORDS.search(block))


def closing_statements(spec: TemplateSpec, text: str) -> list[Statement]:
    """The statements of the closing block (rule 2), in order."""
    paras = paragraphs(text)
    criteria = tuple(spec.criteria)
    for n, (a, b) in enumerate(reversed(paras[-2:])):
        found = find_statements(text[a:b], spec.kind, criteria, offset=a)
        if found or n == 1 or not _is_trailing_remark(text[a:b]):
            return found
    return []


def _deciding(text: str, found: list[Statement]) -> Statement | str:
    """The statement that counts (rule 3), or why there is none."""
    last_line = text.count("\n", 0, found[-1].span[1])
    on_line = [s for s in found if text.count("\n", 0, s.span[1]) == last_line]
    if len({s.key() for s in on_line}) > 1:
        quoted = " and ".join(repr(text[s.span[0]:s.span[1]][:80]) for s in on_line[-2:])
        return f"two different rating statements on the final statement line: {quoted}"
    return on_line[-1]


def parse_completion(spec: TemplateSpec, text: str | None, finish_reason: str | None = None) -> Parsed:
    """Parse ``text`` according to the template's kind and scale (rules in the module doc)."""
    if text is None or not text.strip():
        return Parsed("parse_error", error="empty completion")
    if finish_reason == "length":
        return Parsed("parse_error", error="truncated: the reply hit max_tokens before it ended")
    found = closing_statements(spec, text)
    if not found:
        if looks_like_refusal(text):
            return Parsed("refused", error="the judge declined: " + text.strip()[:160])
        tail = text.rstrip()[-120:].split("\n")[-1]
        where = ("a statement appears earlier in the reply, not in its closing paragraph"
                 if find_statements(text, spec.kind, tuple(spec.criteria)) else "none found")
        wanted = _EXPECTED.get(spec.kind) or repr("; ".join(
            f"{n.capitalize()}: x" for n in [*spec.criteria, "overall"]))
        return Parsed("parse_error", error=f"no {wanted} statement in the closing paragraph "
                                           f"({where}); it ends with {tail!r}")
    chosen = _deciding(text, found)
    if isinstance(chosen, str):
        return Parsed("parse_error", error=chosen)
    parsed = _scores_of(chosen, spec)
    parsed.span = chosen.span
    parsed.statement = text[chosen.span[0]:chosen.span[1]]
    return parsed


def _in_scale(values: dict[str, float], spec: TemplateSpec) -> str | None:
    for name, v in values.items():
        if math.isnan(v) or not (spec.scale.min <= v <= spec.scale.max):
            return f"{name} = {v:g} outside [{spec.scale.min:g}, {spec.scale.max:g}]"
    return None


_VERDICT_SCORES = {"A": {"A": 1.0, "B": 0.0}, "B": {"A": 0.0, "B": 1.0}, "C": {"A": 0.5, "B": 0.5}}


def _scores_of(st: Statement, spec: TemplateSpec) -> Parsed:
    """Scores from the deciding statement, checked against the template's scale."""
    if st.kind == "pairwise_verdict":
        letter = st.values[0].upper()
        if letter not in _VERDICT_SCORES:
            return Parsed("out_of_range", error=f"verdict [[{st.values[0]}]] is not A, B or C")
        return Parsed("ok", scores=dict(_VERDICT_SCORES[letter]),
                      value_spans={"A": st.value_spans[0]})
    if st.kind == "pairwise_rating":
        scores = {"A": number(st.values[0]), "B": number(st.values[1])}
        if problem := _in_scale(scores, spec):
            return Parsed("out_of_range", error=problem)
        return Parsed("ok", scores=scores, value_spans={"A": st.value_spans[0], "B": st.value_spans[1]})
    names = [*spec.criteria, "overall"]
    details = {n: number(v) for n, v in zip(names, st.values)}
    if problem := _in_scale(details, spec):
        return Parsed("out_of_range", error=problem)
    return Parsed("ok", scores={"A": details["overall"]}, details=details,
                  value_spans={"A": st.value_spans[-1]})


# --------------------------------------------------------------------------------------------
# Soft scores from token log-probabilities (RLAIF-style), when the endpoint returns them
# --------------------------------------------------------------------------------------------

def soft_scores(spec: TemplateSpec, text: str, parsed: Parsed, logprobs: list[dict] | None
                ) -> dict[str, float] | None:
    """Expected score per position under the judge's token distribution at each score token.

    ``logprobs`` is the OpenAI ``choices[0].logprobs.content`` list (``token``, ``logprob``,
    ``top_logprobs``). Only scores written as a single token (leading whitespace allowed) are
    softened; otherwise None.
    """
    if parsed.status != "ok" or not logprobs or parsed.span is None:
        return None
    offsets, pos = [], 0
    for tok in logprobs:
        offsets.append((pos, pos + len(tok["token"])))
        pos += len(tok["token"])
    if "".join(t["token"] for t in logprobs) != text:
        return None
    out = {}
    for key, (s, e) in parsed.value_spans.items():
        # the token that spells exactly this score, maybe with a leading space (" 7")
        idx = [i for i, (a, b) in enumerate(offsets)
               if a <= s and b == e and text[a:s].strip() == ""]
        if not idx:
            return None
        value = _expected_value(spec, logprobs[idx[0]].get("top_logprobs") or [])
        if value is None:
            return None
        if spec.kind == "pairwise_verdict":
            return {"A": value, "B": 1.0 - value}
        out[key] = value
    return out or None


def _expected_value(spec: TemplateSpec, alternatives: list[dict]) -> float | None:
    """Probability-weighted mean of the alternatives that are valid scores (renormalised)."""
    total = weighted = 0.0
    for alt in alternatives:
        token = alt["token"].strip()
        if spec.kind == "pairwise_verdict":
            value = {"A": 1.0, "B": 0.0, "C": 0.5}.get(token.upper())
        else:
            try:
                value = float(token)
            except ValueError:
                value = None
            if value is not None and not (spec.scale.min <= value <= spec.scale.max):
                value = None
        if value is None:
            continue
        p = math.exp(alt["logprob"])
        total += p
        weighted += p * value
    return weighted / total if total > 0 else None
