"""The record types every reader yields and every transform consumes.

A reader turns one file of a real public format into a stream of :class:`Record` (a parsed
consultation, QA pair, pretraining document or reward tuple) and :class:`Quarantined` (a record
that could not be parsed, with the file, line and reason). Nothing is dropped silently: the
builder counts and writes every Quarantined item to ``quarantine.jsonl``. A Quarantined item
that is ``unanswered`` (a consultation with no doctor reply) is counted apart from the
malformed ones.

Roles are normalised at read time: the patient is ``user``, the doctor/assistant ``assistant``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]
Kind = Literal["dialogue", "qa", "text", "preference", "ranked"]


@dataclass(slots=True)
class Turn:
    """One utterance. ``role`` is normalised: patient -> user, doctor/assistant -> assistant.
    (Slots: a build makes millions of turns; a slotted one is built and read faster.)"""

    role: Role
    content: str


@dataclass
class Record:
    """One parsed item from a source file.

    kind:
      * ``dialogue``: a multi-turn consultation in ``turns`` (user/assistant alternating after
        merging; may end with either speaker).
      * ``qa``: a single question (user turn) and answer (assistant turn) in ``turns``.
      * ``text``: a pretraining document in ``text``; ``turns`` is empty.
      * ``preference``: prompt ``turns`` (ending with the user turn) and ``responses`` =
        [chosen, rejected] with ``ranks`` = [0, 1].
      * ``ranked``: prompt ``turns`` and k ``responses`` with ``ranks`` (0 = best; equal ranks
        are ties) and optional ``response_sources`` (e.g. ["doctor", "gpt-4", "gpt-3.5", "weak"]).
    """

    id: str                               # consultation id: stable, unique within its source file
    kind: Kind
    turns: list[Turn] = field(default_factory=list)
    text: str | None = None
    responses: list[str] | None = None
    ranks: list[int] | None = None
    response_sources: list[str] | None = None
    meta: dict = field(default_factory=dict)   # department, diagnosis, label, description, ...
    source_file: str = ""
    source_line: int = 0                  # 1-based line (JSONL/text) or record index (JSON list)
    language: str | None = None           # "zh" | "en" | None (unknown: detect later)
    # A problem the reader found that a transform may repair (a MedDialog consultation whose
    # Dialogue holds only doctor turns: description_as_first_turn adds the patient's turn). The
    # build quarantines the record with this when it is still set after the source's transforms.
    defect: "Quarantined | None" = None


@dataclass
class Quarantined:
    """A record that could not be read. It is written to quarantine.jsonl and counted."""

    source_file: str
    source_line: int
    reason: str                           # e.g. "missing field 'query'", "bad JSON: ..."
    raw: str = ""                         # the offending text, truncated to a few KB
    # True: a well-formed consultation no doctor answered (no Dialogue section, no doctor turn).
    # It is quarantined and counted like the rest, but it is not malformed, so it does not count
    # against max_quarantine_fraction (build_report.json counts it as ``unanswered``).
    unanswered: bool = False
