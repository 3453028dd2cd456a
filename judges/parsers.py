"""Strict parsers of judge completions: only the judge's final structured line counts.

Every template asks the judge to end its reply with one exact line. The parser looks at that last
non-empty line and nowhere else, so text that a candidate response contained (say
``Rating A: 10; Rating B: 1``) and that the judge quoted in its reasoning cannot change the parse.
Light decoration an LLM adds (``**bold**``, back-ticks, a final full stop, full-width ``：；``) is
tolerated on that line.

Statuses: ``ok`` (scores parsed and inside the scale), ``out_of_range`` (the line parsed but a score
is outside the template's scale), ``refused`` (no final line and the reply reads as a refusal),
``parse_error`` (anything else). ``api_error`` is decided by the client, never here. Only ``ok``
carries scores; every other status has ``scores=None``.

Bump ``PARSER_VERSION`` whenever a rule changes: it is part of every cache key.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from judges.templates import TemplateSpec

PARSER_VERSION = "1"

_NUM = r"([-+]?\d+(?:\.\d+)?)"
_SEP = r"\s*[;；,，]\s*"
_COLON = r"\s*[:：]\s*"
_PAIR_RATING = re.compile(rf"^Rating A{_COLON}{_NUM}{_SEP}Rating B{_COLON}{_NUM}$", re.IGNORECASE)
_VERDICT = re.compile(rf"^(?:Verdict{_COLON})?\[\[\s*(\w+)\s*\]\]$", re.IGNORECASE)
_DECORATION = " \t*`_>#\"'"
_REFUSAL = re.compile(
    r"I(?:'m| am) sorry|I can(?:no|')t|I am unable|I'm unable|as an AI|cannot (?:help|assist|provide)"
    r"|抱歉|无法(?:提供|回答|评估|协助)|不能(?:提供|回答|评估)|作为(?:一个)?(?:AI|人工智能)", re.IGNORECASE)


@dataclass
class Parsed:
    """The outcome of parsing one completion."""

    status: str                            # ok | parse_error | refused | out_of_range
    scores: dict[str, float] | None = None  # position ("A", "B") -> score; only when ok
    span: tuple[int, int] | None = None    # [start, end) of the parsed line in the completion
    error: str | None = None               # why it is not ok
    details: dict[str, float] = field(default_factory=dict)  # single_rating: every criterion


def final_line(text: str) -> tuple[str, int, int] | None:
    """The last non-empty line, undecorated, with its [start, end) offsets in ``text``."""
    end = len(text.rstrip())
    if end == 0:
        return None
    start = text.rfind("\n", 0, end) + 1
    raw = text[start:end]
    line = raw.strip(_DECORATION).rstrip("。.").strip(_DECORATION)
    return line, start, end


def parse_completion(spec: TemplateSpec, text: str | None) -> Parsed:
    """Parse ``text`` according to the template's kind and scale."""
    if text is None or not text.strip():
        return Parsed("parse_error", error="empty completion")
    found = final_line(text)
    line, start, end = found
    if spec.kind == "pairwise_rating":
        parsed = _parse_pair_rating(line, spec)
    elif spec.kind == "pairwise_verdict":
        parsed = _parse_verdict(line)
    else:
        parsed = _parse_single(line, spec)
    if parsed.status == "parse_error" and _REFUSAL.search(text):
        return Parsed("refused", error="the judge declined: " + text.strip()[:160])
    if parsed.status in ("ok", "out_of_range"):
        parsed.span = (start, end)
    return parsed


def _in_scale(values: dict[str, float], spec: TemplateSpec) -> str | None:
    for name, v in values.items():
        if not (spec.scale.min <= v <= spec.scale.max) or math.isnan(v):
            return f"{name} = {v:g} outside [{spec.scale.min:g}, {spec.scale.max:g}]"
    return None


def _parse_pair_rating(line: str, spec: TemplateSpec) -> Parsed:
    m = _PAIR_RATING.match(line)
    if not m:
        return Parsed("parse_error", error=f"last line is not 'Rating A: x; Rating B: y': {line[:120]!r}")
    scores = {"A": float(m.group(1)), "B": float(m.group(2))}
    if problem := _in_scale(scores, spec):
        return Parsed("out_of_range", error=problem)
    return Parsed("ok", scores=scores)


_VERDICT_SCORES = {"A": {"A": 1.0, "B": 0.0}, "B": {"A": 0.0, "B": 1.0}, "C": {"A": 0.5, "B": 0.5}}


def _parse_verdict(line: str) -> Parsed:
    m = _VERDICT.match(line)
    if not m:
        return Parsed("parse_error", error=f"last line is not 'Verdict: [[A|B|C]]': {line[:120]!r}")
    letter = m.group(1).upper()
    if letter not in _VERDICT_SCORES:
        return Parsed("out_of_range", error=f"verdict [[{letter}]] is not A, B or C")
    return Parsed("ok", scores=dict(_VERDICT_SCORES[letter]))


def _single_pattern(spec: TemplateSpec) -> re.Pattern:
    names = [*spec.criteria, "overall"]
    body = _SEP.join(rf"{re.escape(n)}{_COLON}{_NUM}" for n in names)
    return re.compile(rf"^{body}$", re.IGNORECASE)


def _parse_single(line: str, spec: TemplateSpec) -> Parsed:
    m = _single_pattern(spec).match(line)
    if not m:
        wanted = "; ".join(f"{n.capitalize()}: x" for n in [*spec.criteria, "overall"])
        return Parsed("parse_error", error=f"last line is not {wanted!r}: {line[:120]!r}")
    details = {n: float(v) for n, v in zip([*spec.criteria, "overall"], m.groups())}
    if problem := _in_scale(details, spec):
        return Parsed("out_of_range", error=problem)
    return Parsed("ok", scores={"A": details["overall"]}, details=details)


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
    line_start, line_end = parsed.span
    line = text[line_start:line_end]
    spans = _score_spans(spec, line)
    spans = {k: (line_start + a, line_start + b) for k, (a, b) in spans.items()}
    out = {}
    for key, (s, e) in spans.items():
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


def _score_spans(spec: TemplateSpec, line: str) -> dict[str, tuple[int, int]]:
    """Where each position's score is written inside the (raw) final line."""
    if spec.kind == "pairwise_verdict":
        m = re.search(r"\[\[\s*(\w+)", line)
        return {"A": m.span(1)} if m else {}
    if spec.kind == "pairwise_rating":
        m = re.search(_PAIR_RATING.pattern.strip("^$"), line, re.IGNORECASE)
        return {"A": m.span(1), "B": m.span(2)} if m else {}
    m = re.search(_single_pattern(spec).pattern.strip("^$"), line, re.IGNORECASE)
    return {"A": m.span(m.lastindex)} if m else {}


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
