"""Safety-Prompts (thu-coai): one JSON object keyed by scenario, each a list of
``{"prompt", "response", "type"}``.

The format is one object, so the file is parsed whole (the public files are tens of MB). Records:
``kind`` "qa" (the prompt and its safe response), ``id`` = ``<scenario>:<index>`` (1-based within
the scenario), ``source_line`` = the running 1-based record number over the file, ``meta``:
``scenario`` and ``label`` (the ``type`` field, or the scenario when absent).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data_recipes.readers.fields import RecordError, Where, as_object, finish, get_str, json_type
from data_recipes.readers.streams import has_undecodable, load_json_document, quarantine
from data_recipes.records import Quarantined, Record, Turn


def read_safety_prompts(path: str | Path, *, language: str | None = None) -> Iterator[Record | Quarantined]:
    """Read a Safety-Prompts JSON file into QA records."""
    document = load_json_document(path)
    if document is None:
        return
    if isinstance(document, Quarantined):
        yield document
        return
    if not isinstance(document, dict):
        yield quarantine(path, 1, f"expected a JSON object keyed by scenario, got {json_type(document)}")
        return
    number = 0
    for scenario, items in document.items():
        if not isinstance(items, list):
            number += 1
            yield quarantine(path, number, f"scenario {scenario!r} must be a list, got {json_type(items)}")
            continue
        for index, item in enumerate(items, 1):
            number += 1
            where = Where(str(path), number, Path(path).stem)
            try:
                record = _parse_item(item, scenario, index)
            except RecordError as error:
                yield quarantine(path, number, f"{error} (scenario {scenario!r}, item {index})", repr(item))
                continue
            yield finish(record, where, language)


def _parse_item(item: Any, scenario: str, index: int) -> Record:
    if has_undecodable(item) or has_undecodable(scenario):
        raise RecordError("undecodable bytes (invalid UTF-8) or a lone surrogate in this record")
    obj = as_object(item)
    label = get_str(obj, "type", required=False) or scenario
    prompt, response = get_str(obj, "prompt").strip(), get_str(obj, "response").strip()
    return Record(id=f"{scenario}:{index}", kind="qa", turns=[Turn("user", prompt), Turn("assistant", response)],
                  meta={"scenario": scenario, "label": label})
