"""HuatuoGPT formats: sft jsonl, and the two evaluation sets (KUAKE-QIC, Med-dialog cases).

* ``huatuo_sft``: JSONL ``{"data": ["问：...", "答：...", ...]}`` (alternating turns; English
  ``Q:``/``A:`` accepted). Two turns -> ``kind`` "qa", more -> "dialogue". ``id`` = the line's
  ``id`` field if any, else ``<file stem>:<line>``.
* ``kuake_qic``: a JSON list of ``{id, label, query}`` (single-turn patient queries). Prompt-only:
  ``kind`` "qa" with ONE user turn and no answer; ``meta["label"]`` = the intent.
* ``huatuo_meddialog_cases``: a JSON list of ``{id, medical_case, doctor_diagnosis,
  Department}``. Prompt-only as above: the user turn is the case description (up to an embedded
  ``Dialogue`` line, whose text goes to ``meta["case_dialogue"]``); ``meta``: ``reference`` (the
  doctor's diagnosis text, for reference-based judges), ``diagnosis``, ``department``,
  ``description``, ``description_fields``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data_recipes.readers.fields import (
    RecordError, Where, as_object, get_list, get_str, json_type, own_id, parsed_records,
)
from data_recipes.readers.labels import diagnosis_from, parse_labelled
from data_recipes.readers.speakers import require_dialogue_roles, split_huatuo_turn
from data_recipes.readers.streams import iter_json_array, iter_jsonl
from data_recipes.records import Quarantined, Record, Turn


def read_huatuo_sft(path: str | Path, *, language: str | None = None) -> Iterator[Record | Quarantined]:
    """Stream a HuatuoGPT sft jsonl file."""
    return parsed_records(iter_jsonl(path), path, _parse_sft, language)


def _parse_sft(value: Any, where: Where) -> Record:
    obj = as_object(value)
    data = get_list(obj, "data", min_len=2)
    turns = []
    for i, item in enumerate(data):
        if not isinstance(item, str):
            raise RecordError(f"data[{i}] must be a string, got {json_type(item)}")
        turns.append(split_huatuo_turn(item, f"data[{i}]"))
    require_dialogue_roles(turns)
    kind = "qa" if len(turns) == 2 and turns[0].role == "user" else "dialogue"
    return Record(id=own_id(obj, where), kind=kind, turns=turns)


def read_kuake_qic(path: str | Path, *, language: str | None = None) -> Iterator[Record | Quarantined]:
    """Stream a KUAKE-QIC JSON list into prompt-only records."""
    return parsed_records(iter_json_array(path), path, _parse_kuake, language)


def _parse_kuake(value: Any, where: Where) -> Record:
    obj = as_object(value)
    if "id" not in obj:
        raise RecordError("missing field 'id'")
    meta = {}
    label = get_str(obj, "label", required=False)
    if label is not None:
        meta["label"] = label
    query = get_str(obj, "query").strip()
    return Record(id=own_id(obj, where), kind="qa", turns=[Turn("user", query)], meta=meta)


def read_huatuo_meddialog_cases(
    path: str | Path, *, language: str | None = None,
) -> Iterator[Record | Quarantined]:
    """Stream HuatuoGPT's Med-dialog evaluation cases into prompt-only records."""
    return parsed_records(iter_json_array(path), path, _parse_case, language)


def _parse_case(value: Any, where: Where) -> Record:
    obj = as_object(value)
    if "id" not in obj:
        raise RecordError("missing field 'id'")
    case = get_str(obj, "medical_case")
    reference = get_str(obj, "doctor_diagnosis")
    department = get_str(obj, "Department")
    lines = case.strip().splitlines()
    cut = next((i for i, line in enumerate(lines) if line.strip() == "Dialogue"), len(lines))
    description = "\n".join(line.rstrip() for line in lines[:cut]).strip()
    if not description:
        raise RecordError("field 'medical_case' has no description before its Dialogue")
    meta = {"reference": reference, "department": department.strip(), "description": description,
            "description_fields": parse_labelled(description)}
    diagnosis = diagnosis_from(parse_labelled(reference))
    if diagnosis:
        meta["diagnosis"] = diagnosis
    if cut < len(lines):
        meta["case_dialogue"] = "\n".join(lines[cut + 1:]).strip()
    return Record(id=own_id(obj, where), kind="qa", turns=[Turn("user", description)], meta=meta)


__all__ = ["read_huatuo_sft", "read_kuake_qic", "read_huatuo_meddialog_cases"]


# formats with one JSON record a line: a byte range of lines can be read on its own
# (readers/shards.py); format -> the function that parses one line's value
LINE_PARSERS = {"huatuo_sft": _parse_sft}
