"""Speaker and role normalisation of a record's turns.

Every record transform has the signature ``fn(record, spec, counts) -> Record | Drop``: it may
change the record in place and return it, or return :class:`Drop` with a reason (counted per
source in the build report). ``counts`` is a per-source, per-transform Counter for anything the
transform wants reported (merged turns, stripped tags, ...).
"""

from __future__ import annotations

import re
from collections import Counter
from operator import eq
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from data_recipes.records import Record, Turn
from medalign.config import StrictModel


@dataclass(frozen=True)
class Drop:
    """A record a transform removes, and why (e.g. "utterance longer than max_chars")."""

    reason: str


class MergeConsecutiveSpeakers(StrictModel):
    """Merge consecutive utterances of one speaker into one turn (as MedDialog did)."""

    name: Literal["merge_consecutive_speakers"] = "merge_consecutive_speakers"
    separator: str = Field("\n", description="text put between two merged utterances")


def merge_consecutive_speakers(record: Record, spec: MergeConsecutiveSpeakers,
                               counts: Counter) -> Record | Drop:
    """Join runs of same-role turns: [user a, user b, assistant c] -> [user "a<sep>b", assistant c]."""
    if len(record.turns) < 2:
        return record
    roles = [t.role for t in record.turns]
    if not any(map(eq, roles, roles[1:])):      # the common case: speakers already alternate
        return record
    merged = [Turn(record.turns[0].role, record.turns[0].content)]
    for turn in record.turns[1:]:
        if turn.role == merged[-1].role:
            merged[-1].content = merged[-1].content + spec.separator + turn.content
            counts["merged_turns"] += 1
        else:
            merged.append(Turn(turn.role, turn.content))
    record.turns = merged
    return record


# Tags some sources leave at the start of an utterance ("医生：您好", "Patient: I have ...").
_TAG = re.compile(
    r"^\s*(?:病人|患者|医生|大夫|问|答|用户|助手|Patient|Doctor|Human|Assistant|User|Q|A)\s*[:：]\s*",
    re.IGNORECASE,
)


class NormalizeRoles(StrictModel):
    """Clean up roles and templates so every dialogue opens with the patient."""

    name: Literal["normalize_roles"] = "normalize_roles"
    strip_speaker_tags: bool = Field(True, description="remove a leftover speaker tag ('医生：', 'Patient:', '问：') at the start of an utterance")
    drop_leading_assistant: bool = Field(True, description="drop assistant turns before the first user turn (a dialogue opens with the patient)")
    system_prompt: str | None = Field(None, description="if set, every record gets exactly this system turn (replacing any other)")
    drop_system: bool = Field(False, description="remove system turns (ignored when system_prompt is set)")


def normalize_roles(record: Record, spec: NormalizeRoles, counts: Counter) -> Record | Drop:
    """Strip leftover speaker tags, drop empty and leading assistant turns, set the system turn."""
    turns = []
    strip_tags, drop_system = spec.strip_speaker_tags, spec.drop_system or spec.system_prompt is not None
    for turn in record.turns:
        content = turn.content.strip()
        head = content[:12]
        if strip_tags and ("：" in head or ":" in head) and turn.role != "system":
            stripped = _TAG.sub("", content, count=1)
            if stripped != content:
                counts["stripped_tags"] += 1
                content = stripped.strip()
        if not content:
            counts["dropped_empty_turns"] += 1
            continue
        if drop_system and turn.role == "system":
            continue
        # an unchanged turn is kept as is (str.strip returns the same object when nothing is stripped)
        turns.append(turn if content is turn.content else Turn(turn.role, content))
    roles = [t.role for t in turns]
    if spec.drop_leading_assistant and "assistant" in roles[:roles.index("user") if "user" in roles else len(roles)]:
        first_user = roles.index("user") if "user" in roles else len(roles)
        leading = {i for i in range(first_user) if roles[i] == "assistant"}
        counts["dropped_leading_assistant"] += len(leading)
        turns = [t for i, t in enumerate(turns) if i not in leading]
    if spec.system_prompt is not None:
        turns.insert(0, Turn("system", spec.system_prompt))
    if record.kind in ("dialogue", "qa") and "user" not in roles:
        return Drop("no patient turn left after normalize_roles")
    record.turns = turns
    return record


# An acknowledgement that opens a short patient message: "好的，谢谢", "明白了", "Thanks!", "OK".
_COURTESY = re.compile(
    r"^\s*(?:好的|好吧|好|嗯+|哦+|明白|知道了|了解|谢谢|多谢|感谢|辛苦|行|OK|ok|Ok|okay|Okay|"
    r"thanks|Thanks|thank you|Thank you|got it|Got it|I see|great|Great|will do|Will do|sure|Sure)"
)


class DropClosingCourtesies(StrictModel):
    """Drop the thank-you / goodbye exchange that ends many real consultations."""

    name: Literal["drop_closing_courtesies"] = "drop_closing_courtesies"
    max_patient_chars: int = Field(15, ge=1, description="a closing patient message is at most this long and opens with an acknowledgement (好的, 谢谢, thanks, OK ...)")
    max_doctor_chars: int = Field(30, ge=1, description="the doctor's reply to it is at most this long")


def drop_closing_courtesies(record: Record, spec: DropClosingCourtesies, counts: Counter) -> Record | Drop:
    """Remove trailing courtesy exchanges, so the last doctor turn is the substantive answer
    (what a final-turn prompt uses as its reference). A dialogue keeps at least one reply."""
    def courtesy(turn: Turn) -> bool:
        return turn.role == "user" and len(turn.content) <= spec.max_patient_chars and bool(_COURTESY.match(turn.content))

    turns = record.turns
    while True:
        if len(turns) >= 2 and turns[-1].role == "assistant" and courtesy(turns[-2]) \
                and len(turns[-1].content) <= spec.max_doctor_chars:
            cut = 2
        elif turns and courtesy(turns[-1]):
            cut = 1
        else:
            break
        rest = turns[:-cut]
        if not any(t.role == "assistant" and i > 0 and rest[i - 1].role == "user" for i, t in enumerate(rest)):
            break
        turns = rest
        counts["dropped_closing_turns"] += cut
    record.turns = turns
    return record
