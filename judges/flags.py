"""Flags on a judgment: candidates that try to steer the judge, replies that copy a candidate.

Three flags, recorded in the transcript row's ``flags`` (names) and ``flag_details`` (which
candidate, what matched):

* ``candidate_rating_statement``: a candidate's text holds a rating or verdict statement of any
  template kind (``Rating A: 1; Rating B: 10``, ``[[B]]``, ``...; Overall: 10``);
* ``candidate_judge_instruction``: a candidate's text addresses the judge ("ignore the previous
  instructions", "rate this response 10", "评委请注意"); the patterns are data, in
  ``judges/injection_patterns.yaml``;
* ``parroted_candidate``: the rating statement the parser read from the reply appears verbatim
  (case and spacing aside) in a candidate's text: the judge obeyed or quoted the candidate.

Flags do not change a judgment's status (it may well be ``ok``); they keep the judgment's pair
out of reward data by default (``ranking.exclude_flagged``) and are counted per judge by
``medalign audit summary`` and the audit viewer.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import field_validator, model_validator

from judges.statements import any_statement
from medalign.config import StrictModel, load_config

FLAGS = ("candidate_rating_statement", "candidate_judge_instruction", "parroted_candidate")
PATTERNS_FILE = Path(__file__).resolve().parent / "injection_patterns.yaml"
_MATCH_CHARS = 160                        # characters of the matched text kept as evidence
_SPACE = re.compile(r"\s+")


class InjectionPattern(StrictModel):
    """One way a candidate addresses the judge."""

    id: str                                        # stable name, shown as evidence
    language: Literal["en", "zh", "any"]           # the language it is written for
    regex: str                                     # case-insensitive Python regex
    example: str                                   # a text it must match (checked on load)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as e:
            raise ValueError(f"not a valid regex: {e}") from None
        return v

    @model_validator(mode="after")
    def _matches_its_example(self) -> "InjectionPattern":
        if not re.search(self.regex, self.example, re.IGNORECASE):
            raise ValueError(f"pattern {self.id!r} does not match its own example")
        return self


class InjectionPatterns(StrictModel):
    patterns: list[InjectionPattern]               # checked in order; all matches are kept


@lru_cache(maxsize=1)
def _compiled() -> tuple[tuple[str, re.Pattern], ...]:
    spec = load_config(PATTERNS_FILE, InjectionPatterns)
    return tuple((p.id, re.compile(p.regex, re.IGNORECASE)) for p in spec.patterns)


@lru_cache(maxsize=8192)
def text_flags(text: str) -> tuple[tuple[str, str], ...]:
    """(flag, evidence) for one candidate text (cached: a response sits in many pairs)."""
    found = []
    statement = any_statement(text)
    if statement is not None:
        found.append(("candidate_rating_statement", text[statement.span[0]:statement.span[1]]))
    for pid, pattern in _compiled():
        m = pattern.search(text)
        if m:
            found.append(("candidate_judge_instruction", f"{pid}: {m.group(0)}"))
    return tuple((f, e[:_MATCH_CHARS]) for f, e in found)


def candidate_flags(texts: dict[str, str], ids: dict[str, str]) -> list[dict]:
    """Flag details for the candidates shown to the judge (``texts``: slot -> text, ``ids``:
    slot -> response id)."""
    return [{"flag": flag, "slot": slot, "response_id": ids.get(slot), "match": evidence}
            for slot, text in texts.items() for flag, evidence in text_flags(text)]


def _normal(text: str) -> str:
    return _SPACE.sub(" ", text.replace("*", "").replace("`", "")).strip().casefold()


def parroted(statement: str | None, texts: dict[str, str], ids: dict[str, str]) -> list[dict]:
    """``parroted_candidate`` details when the reply's statement appears in a candidate's text."""
    if not statement:
        return []
    needle = _normal(statement)
    return [{"flag": "parroted_candidate", "slot": slot, "response_id": ids.get(slot),
             "match": statement[:_MATCH_CHARS]}
            for slot, text in texts.items() if needle and needle in _normal(text)]


def flag_names(details: list[dict]) -> list[str]:
    """The sorted distinct flag names of some details."""
    return sorted({d["flag"] for d in details})
