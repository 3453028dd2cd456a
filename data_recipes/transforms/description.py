"""``description_as_first_turn``: open a MedDialog consultation with its Description, as the
MedDialog authors' own processed files do.

A MedDialog-CN / CovidDialog consultation keeps the patient's question in its Description
(``病情描述：``), and its Dialogue often opens with the doctor or holds only doctor turns. The
dataset authors' processed files start every dialogue with the description as the patient's first
turn and then merge consecutive turns of one speaker (``merge_consecutive_speakers``, next in a
recipe). This transform does the first half:

    Description: 疾病： 肺炎相关 / 病情描述： 咳嗽从2月开始到现在，有痰……
    Dialogue:    医生： 感谢您的信任……  医生： 是新冠活不了这么久的 ……
    ->           user "咳嗽从2月开始到现在，有痰……", assistant "感谢您的信任……", assistant ...

Which labelled fields make the turn is configurable per language (``fields_zh``, ``fields_en``;
several are joined with a newline, in the order given). An English description without any label
(CovidDialog-EN's free text) is used whole. With ``when: always`` (the authors' way) the turn is
added even when the dialogue already opens with the patient, unless the patient's opening turns
already contain the text (the synthetic corpus repeats it there; adding it again would double
it). A consultation whose Description has none of the fields keeps its reader's defect, if any,
and is quarantined by the build.

Counts: ``prepended``, ``already_in_dialogue``, ``no_description``, ``no_field``, ``repaired``
(records the reader marked as having no patient turn that now have one).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Literal

from pydantic import Field

from data_recipes.readers.labels import parse_labelled
from data_recipes.records import Record, Turn
from data_recipes.transforms.speakers import Drop
from medalign.config import StrictModel

_SPACE = re.compile(r"\s+")


class DescriptionAsFirstTurn(StrictModel):
    """Start each consultation with its Description's fields as the patient's first turn."""

    name: Literal["description_as_first_turn"] = "description_as_first_turn"
    fields_zh: list[str] = Field(default_factory=lambda: ["病情描述"], min_length=1, description="labels of a Chinese Description whose values, joined in this order, become the patient's first turn (e.g. [病情描述, 希望获得的帮助])")
    fields_en: list[str] = Field(default_factory=lambda: ["description"], min_length=1, description="labels of an English Description (any case); an English Description without labels is used whole")
    when: Literal["always", "no_patient_opening"] = Field("always", description="always (the MedDialog authors' processed files): every consultation; no_patient_opening: only when the dialogue does not open with the patient")


def description_as_first_turn(record: Record, spec: DescriptionAsFirstTurn, counts: Counter) -> Record | Drop:
    """Prepend the Description's configured fields as a user turn (see the module docstring)."""
    if record.kind != "dialogue":
        return record
    opening = _opening_patient_turns(record.turns)
    if spec.when == "no_patient_opening" and opening:
        return record
    descriptions = record.meta.get("descriptions") or ([record.meta["description"]]
                                                       if record.meta.get("description") else [])
    if not descriptions:
        counts["no_description"] += 1
        return record
    fields = spec.fields_en if record.language == "en" else spec.fields_zh
    text = next(filter(None, (_fields_text(d, fields, record.language == "en") for d in descriptions)), "")
    if not text:
        counts["no_field"] += 1
        return record
    if opening and _squeezed(text) in _squeezed("".join(t.content for t in opening)):
        counts["already_in_dialogue"] += 1
        return record
    at = next((i for i, t in enumerate(record.turns) if t.role != "system"), len(record.turns))
    record.turns = [*record.turns[:at], Turn("user", text), *record.turns[at:]]
    counts["prepended"] += 1
    if record.defect is not None and any(t.role == "assistant" for t in record.turns):
        record.defect = None
        counts["repaired"] += 1
    return record


def _opening_patient_turns(turns: list[Turn]) -> list[Turn]:
    """The patient's turns before the doctor's first reply (system turns skipped)."""
    out = []
    for turn in turns:
        if turn.role == "assistant":
            break
        if turn.role == "user":
            out.append(turn)
    return out


def _fields_text(description: str, fields: list[str], english: bool) -> str:
    """The values of ``fields`` in a Description, joined by newlines ('' when none is there).
    An English Description without any label is its own text."""
    parsed = parse_labelled(description)
    wanted = [f.lower() for f in fields] if english else fields
    values = [parsed[f] for f in wanted if parsed.get(f, "").strip()]
    if values:
        return "\n".join(values)
    return description.strip() if english and not parsed else ""


def _squeezed(text: str) -> str:
    return _SPACE.sub("", text)
