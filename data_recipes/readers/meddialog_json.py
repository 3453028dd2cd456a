"""MedDialog processed JSON -> dialogue records.

The processed release is one JSON list of dialogues. Each dialogue is either a list of tagged
utterances (``["病人：...", "医生：..."]`` / ``["Patient: ...", "Doctor: ..."]``) or an object with
``utterances`` (that list) and an optional ``description`` (the Hugging Face ``processed.en``
layout). Records: ``id`` = ``<file stem>:<index>`` (1-based list position), ``kind`` "dialogue",
language from the tags. An unknown tag, an empty utterance or a dialogue without a doctor turn
quarantines that dialogue.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data_recipes.readers.fields import (
    RecordError, Where, as_object, get_list, get_str, json_type, parsed_records,
)
from data_recipes.readers.speakers import require_dialogue_roles, split_meddialog_utterance
from data_recipes.readers.streams import iter_json_array
from data_recipes.records import Quarantined, Record


def read_meddialog_json(path: str | Path, *, language: str | None = None) -> Iterator[Record | Quarantined]:
    """Stream the dialogues of a processed MedDialog JSON list."""
    return parsed_records(iter_json_array(path), path, _parse_dialogue, language)


def _parse_dialogue(value: Any, where: Where) -> Record:
    meta = {}
    if isinstance(value, dict):
        obj = as_object(value)
        utterances = get_list(obj, "utterances", min_len=1)
        description = get_str(obj, "description", required=False, allow_empty=True)
        if description:
            meta["description"] = description
    elif isinstance(value, list):
        utterances = value
    else:
        raise RecordError(f"dialogue must be a list of utterances or an object, got {json_type(value)}")
    if not utterances:
        raise RecordError("empty dialogue")
    turns, lang = [], None
    for i, utterance in enumerate(utterances):
        if not isinstance(utterance, str):
            raise RecordError(f"utterance {i} must be a string, got {json_type(utterance)}")
        turn, tag_lang = split_meddialog_utterance(utterance, f"utterance {i}")
        turns.append(turn)
        lang = lang or tag_lang
    require_dialogue_roles(turns)
    return Record(id=where.default_id, kind="dialogue", turns=turns, meta=meta, language=lang)
