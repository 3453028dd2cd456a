"""Field checks shared by the JSON readers, and the loop that turns parsed items into records.

A format's parse function takes one JSON value and a :class:`Where` and returns a
:class:`Record`, or raises :class:`RecordError` whose message becomes the quarantine reason
("missing field 'query'", "field 'data' must be a list, got string", ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_recipes.lang import detect_language
from data_recipes.readers.streams import quarantine
from data_recipes.records import Quarantined, Record, Turn

DETECT_CHARS = 2000


class RecordError(ValueError):
    """One record cannot be read; ``str(error)`` is the quarantine reason."""


@dataclass(frozen=True)
class Where:
    """Where a record comes from: its file, its 1-based line (or list index), the file stem."""

    file: str
    line: int
    stem: str

    @property
    def default_id(self) -> str:
        """``<file stem>:<line>``: the record id when the format carries none."""
        return f"{self.stem}:{self.line}"


Parse = Callable[[Any, Where], Record]


def json_type(value: Any) -> str:
    """The JSON name of a Python value's type, for error messages."""
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def as_object(value: Any, what: str = "record") -> dict:
    if not isinstance(value, dict):
        raise RecordError(f"{what} must be a JSON object, got {json_type(value)}")
    return value


def _field(obj: dict, key: str, required: bool) -> tuple[bool, Any]:
    """(present, value): a missing key (or an optional null) is absent; missing + required is an error."""
    if key not in obj or (obj[key] is None and not required):
        if required:
            raise RecordError(f"missing field {key!r}")
        return False, None
    return True, obj[key]


def get_str(obj: dict, key: str, *, required: bool = True, allow_empty: bool = False) -> str | None:
    """``obj[key]`` as a string; a missing, non-string or (unless allowed) blank value is an error."""
    present, value = _field(obj, key, required)
    if not present:
        return None
    if not isinstance(value, str):
        raise RecordError(f"field {key!r} must be a string, got {json_type(value)}")
    if not allow_empty and not value.strip():
        raise RecordError(f"empty field {key!r}")
    return value


def get_list(obj: dict, key: str, *, required: bool = True, min_len: int = 0) -> list | None:
    """``obj[key]`` as a list of at least ``min_len`` items."""
    present, value = _field(obj, key, required)
    if not present:
        return None
    if not isinstance(value, list):
        raise RecordError(f"field {key!r} must be a list, got {json_type(value)}")
    if len(value) < min_len:
        raise RecordError(f"field {key!r} has {len(value)} items, need at least {min_len}")
    return value


def instruction_text(obj: dict) -> str:
    """``instruction``, then ``input`` on a new line when there is one (CMD finetune, Alpaca)."""
    question = get_str(obj, "instruction").strip()
    extra = get_str(obj, "input", required=False, allow_empty=True)
    return question + "\n" + extra.strip() if extra and extra.strip() else question


def message_turns(messages: list, where: str, role_key: str, text_key: str, roles: dict[str, str],
                  unknown: str = "unknown role") -> list[Turn]:
    """Turns from a list of message objects (``{"role", "content"}``, ``{"from", "value"}``);
    ``roles`` maps the (lower-cased) role names of the format to user/assistant/system."""
    turns = []
    for i, message in enumerate(messages):
        message = as_object(message, f"{where}[{i}]")
        name = get_str(message, role_key)
        role = roles.get(name.strip().lower())
        if role is None:
            raise RecordError(f"{unknown} {name!r} in {where}[{i}]")
        text = message.get(text_key)
        if not isinstance(text, str):
            raise RecordError(f"{where}[{i}].{text_key} must be a string, got {json_type(text)}")
        if not text.strip():
            raise RecordError(f"empty utterance in {where}[{i}]")
        turns.append(Turn(role, text.strip()))
    return turns


def str_items(items: list, key: str) -> list[str]:
    """Check that every item of list ``key`` is a non-blank string."""
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise RecordError(f"{key}[{i}] must be a string, got {json_type(item)}")
        if not item.strip():
            raise RecordError(f"empty utterance in {key}[{i}]")
    return items


def own_id(obj: dict, where: Where) -> str:
    """The record's own ``id`` field (string or number) if present, else ``<file stem>:<line>``."""
    value = obj.get("id")
    if value is None:
        return where.default_id
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise RecordError(f"field 'id' must be a non-empty string or number, got {json_type(value)}")
    return str(value)


def pair_history(obj: dict) -> list[Turn]:
    """Optional ``history``: ``[[question, answer], ...]`` (CMD reward, Alpaca) as turns."""
    history = get_list(obj, "history", required=False) or []
    turns = []
    for i, pair in enumerate(history):
        if not (isinstance(pair, list) and len(pair) == 2 and all(type(x) is str and x.strip() for x in pair)):
            raise RecordError(f"history[{i}] must be a [question, answer] pair of non-empty strings")
        turns += [Turn("user", pair[0].strip()), Turn("assistant", pair[1].strip())]
    return turns


def record_language(record: Record) -> str:
    """Detect the language from the record's text (turns, document or responses)."""
    parts = [t.content for t in record.turns] + [record.text or ""] + list(record.responses or [])
    return detect_language("\n".join(parts)[:DETECT_CHARS])


def finish(record: Record, where: Where, language: str | None) -> Record:
    """Stamp provenance and language (the ``language`` option wins over detection)."""
    record.source_file, record.source_line = where.file, where.line
    if language is not None:
        record.language = language
    elif record.language is None:
        record.language = record_language(record)
    return record


def parsed_records(
    items: Iterable[tuple[int, Any, str] | Quarantined], path: str | Path, parse: Parse, language: str | None,
) -> Iterator[Record | Quarantined]:
    """Run ``parse`` on each (line, value, raw) item; a RecordError quarantines that item only."""
    stem = Path(path).stem
    for item in items:
        if isinstance(item, Quarantined):
            yield item
            continue
        line, value, raw = item
        where = Where(str(path), line, stem)
        try:
            record = parse(value, where)
        except RecordError as error:
            yield quarantine(path, line, str(error), raw)
            continue
        yield finish(record, where, language)
