"""General chat formats: ShareGPT, OpenAI messages, Alpaca.

Each file may be JSONL (one record per line) or one JSON list (told apart by the first
character). Ids: the record's ``id`` when present, else ``<file stem>:<line or index>``.

* ``sharegpt``: ``{"conversations": [{"from": "human"|"gpt"|"system"|..., "value"}], "system"?}``
* ``openai_messages``: ``{"messages": [{"role": "system"|"user"|"assistant", "content": str}]}``
* ``alpaca``: ``{"instruction", "input"?, "output", "system"?, "history"?: [[q, a], ...]}``

One user turn and one assistant turn (system turns aside) -> ``kind`` "qa", else "dialogue".
An unknown role, a non-string or empty content, or no assistant turn quarantines the record.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data_recipes.readers.fields import (
    Where, as_object, get_list, get_str, instruction_text, message_turns, own_id, pair_history,
    parsed_records,
)
from data_recipes.readers.speakers import OPENAI_ROLES, SHAREGPT_ROLES, require_dialogue_roles
from data_recipes.readers.streams import first_significant_char, iter_json_array, iter_jsonl
from data_recipes.records import Quarantined, Record, Turn


def iter_json_records(path: str | Path):
    """A JSON list file element by element, or a JSONL file line by line."""
    return iter_json_array(path) if first_significant_char(path) == "[" else iter_jsonl(path)


def chat_kind(turns: list[Turn]) -> str:
    roles = [t.role for t in turns if t.role != "system"]
    return "qa" if roles == ["user", "assistant"] else "dialogue"


def _chat_record(obj: dict, where: Where, turns: list[Turn]) -> Record:
    require_dialogue_roles(turns, "conversation")
    return Record(id=own_id(obj, where), kind=chat_kind(turns), turns=turns)


def _system_turn(obj: dict) -> list[Turn]:
    system = get_str(obj, "system", required=False, allow_empty=True)
    return [Turn("system", system.strip())] if system and system.strip() else []


def read_sharegpt(path: str | Path, *, language: str | None = None) -> Iterator[Record | Quarantined]:
    """Stream ShareGPT conversations."""
    return parsed_records(iter_json_records(path), path, _parse_sharegpt, language)


def _parse_sharegpt(value: Any, where: Where) -> Record:
    obj = as_object(value)
    conversations = get_list(obj, "conversations", min_len=1)
    turns = message_turns(conversations, "conversations", "from", "value", SHAREGPT_ROLES,
                          unknown="unknown speaker tag")
    return _chat_record(obj, where, _system_turn(obj) + turns)


def read_openai_messages(path: str | Path, *, language: str | None = None) -> Iterator[Record | Quarantined]:
    """Stream OpenAI-style ``messages`` conversations."""
    return parsed_records(iter_json_records(path), path, _parse_openai, language)


def _parse_openai(value: Any, where: Where) -> Record:
    obj = as_object(value)
    turns = message_turns(get_list(obj, "messages", min_len=1), "messages", "role", "content", OPENAI_ROLES)
    return _chat_record(obj, where, turns)


def read_alpaca(path: str | Path, *, language: str | None = None) -> Iterator[Record | Quarantined]:
    """Stream Alpaca-style instruction records."""
    return parsed_records(iter_json_records(path), path, _parse_alpaca, language)


def _parse_alpaca(value: Any, where: Where) -> Record:
    obj = as_object(value)
    turns = _system_turn(obj) + pair_history(obj)
    turns += [Turn("user", instruction_text(obj)), Turn("assistant", get_str(obj, "output").strip())]
    return _chat_record(obj, where, turns)


# formats with one JSON record a line (when the file is JSONL): a byte range of lines can be
# read on its own (readers/shards.py); format -> the function that parses one line's value
LINE_PARSERS = {"sharegpt": _parse_sharegpt, "openai_messages": _parse_openai, "alpaca": _parse_alpaca}
