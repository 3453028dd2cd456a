"""Byte-safe streaming of text, JSONL and JSON-list files, quarantining bad records.

Files are read as bytes and decoded one line (JSONL, raw text) or one list element (JSON list)
at a time, so one undecodable byte or one bad JSON line costs one record, not the file, and a
1 GB file never sits in memory. What the readers get:

* :func:`iter_lines` -> ``(line_no, text)`` (1-based, newline stripped) or :class:`Quarantined`.
* :func:`iter_jsonl` -> ``(line_no, value, raw_line)`` or :class:`Quarantined` (blank lines skipped).
* :func:`iter_json_array` -> ``(index, value, raw_text)`` (1-based element index) or
  :class:`Quarantined`; parsed element by element with ``json.JSONDecoder.raw_decode``.
* :func:`load_json_document` -> the whole document (for formats whose nature is one JSON object).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data_recipes.records import Quarantined

RAW_LIMIT = 4000                 # characters of offending text kept in a quarantine record
CHUNK_BYTES = 1 << 20            # JSON lists are decoded 1 MiB at a time
_BOM = "\ufeff"
_SURROGATE = re.compile(r"[\udc80-\udcff]")   # bytes that were not UTF-8 (surrogateescape)
_ANY_SURROGATE = re.compile(r"[\ud800-\udfff]")  # also lone surrogates from "\ud83d"-style escapes
LONE_SURROGATE_REASON = "invalid unicode escape (a lone surrogate such as \\ud83d) in this record"
_DECODER = json.JSONDecoder()
_WS = " \t\r\n"


def quarantine(path: str | Path, line: int, reason: str, raw: str = "", unanswered: bool = False) -> Quarantined:
    """A :class:`Quarantined` record with ``raw`` truncated to ``RAW_LIMIT`` characters and any
    surrogate (undecodable byte) replaced by U+FFFD, so that it can be written as UTF-8
    (``unanswered``: a well-formed consultation without a doctor reply, see records.py)."""
    if len(raw) > RAW_LIMIT:
        raw = raw[:RAW_LIMIT] + f"... [{len(raw) - RAW_LIMIT} more characters]"
    if _ANY_SURROGATE.search(raw):
        raw = _ANY_SURROGATE.sub("\ufffd", raw)
    return Quarantined(source_file=str(path), source_line=line, reason=reason, raw=raw, unanswered=unanswered)


def bad_bytes_reason(error: UnicodeDecodeError) -> str:
    return f"undecodable bytes (invalid UTF-8 at byte {error.start} of the line)"


def iter_lines(path: str | Path, byte_range: tuple[int, int, int] | None = None
               ) -> Iterator[tuple[int, str] | Quarantined]:
    """Every line of a UTF-8 text file, newline stripped; an undecodable line is quarantined.

    ``byte_range=(start, end, line)`` reads only the lines from byte ``start`` (a line start)
    up to byte ``end`` (exclusive; a line start or the end of the file), numbered from ``line``."""
    start, end, first = byte_range or (0, None, 1)
    with open(path, "rb") as f:
        f.seek(start)
        for line_no, data in enumerate(_lines_until(f, None if end is None else end - start), first):
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as error:
                yield quarantine(path, line_no, bad_bytes_reason(error), data.decode("utf-8", "replace"))
                continue
            if line_no == 1 and text.startswith(_BOM):
                text = text[1:]
            yield line_no, text.rstrip("\r\n")


def _lines_until(f, size: int | None) -> Iterator[bytes]:
    """The lines of an open binary file, stopping after ``size`` bytes (None: the end)."""
    if size is None:
        yield from f
        return
    for data in f:
        yield data
        size -= len(data)
        if size <= 0:
            return


def iter_jsonl(path: str | Path, byte_range: tuple[int, int, int] | None = None
               ) -> Iterator[tuple[int, Any, str] | Quarantined]:
    """Every JSON value of a JSONL file with its line; bad JSON lines are quarantined.
    ``byte_range``: see :func:`iter_lines`."""
    for item in iter_lines(path, byte_range):
        if isinstance(item, Quarantined):
            yield item
            continue
        line_no, text = item
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            yield quarantine(path, line_no, f"bad JSON: {error.msg} at column {error.colno}", text)
            continue
        if _lone_surrogate(text, value):
            yield quarantine(path, line_no, LONE_SURROGATE_REASON, text)
            continue
        yield line_no, value, text


def _lone_surrogate(raw: str, value: Any) -> bool:
    """A JSON text may escape half of a surrogate pair ("\\ud83d"): legal JSON, but the string
    can never be written as UTF-8. Cheap unless the raw text holds such an escape."""
    return ("\\ud" in raw or "\\uD" in raw) and has_undecodable(value)


def first_significant_char(path: str | Path) -> str:
    """The first non-whitespace character of a file ("" when empty): tells a JSON list from JSONL."""
    with open(path, "rb") as f:
        head = f.read(4096).decode("utf-8", "replace").lstrip(_BOM + _WS)
    return head[:1]


def iter_json_array(path: str | Path) -> Iterator[tuple[int, Any, str] | Quarantined]:
    """Every element of a file holding one JSON list, streamed.

    An element containing bytes that are not UTF-8 is quarantined on its own. A syntax error
    cannot be skipped reliably inside a list, so it quarantines the rest of the file as one
    record whose reason says so. An empty (or whitespace-only) file yields nothing.
    """
    reader = _ChunkReader(path)
    if not reader.skip_ws():
        return
    if reader.peek() != "[":
        found = reader.peek()
        yield quarantine(path, 1, f"expected a JSON list at the top level, found {found!r}", reader.head())
        return
    reader.pos += 1
    index = 0
    while reader.skip_ws():
        if reader.peek() == "]":
            reader.pos += 1
            if reader.skip_ws():
                yield quarantine(path, index + 1, "extra data after the closing ']' of the JSON list",
                                 reader.head())
            return
        if index > 0:
            if reader.peek() != ",":
                yield quarantine(path, index + 1, f"bad JSON after record {index}: expected ',' or ']'; "
                                 "the rest of the file is skipped", reader.head())
                return
            reader.pos += 1
            if not reader.skip_ws():
                break
        index += 1
        parsed = reader.decode_value()
        if isinstance(parsed, str):
            yield quarantine(path, index, f"bad JSON in record {index}: {parsed}; the rest of the file is skipped",
                             reader.head())
            return
        value, raw = parsed
        if _SURROGATE.search(raw):
            yield quarantine(path, index, "undecodable bytes (invalid UTF-8) in this record", raw)
            continue
        if _lone_surrogate(raw, value):
            yield quarantine(path, index, LONE_SURROGATE_REASON, raw)
            continue
        yield index, value, raw
    yield quarantine(path, max(index, 1), f"unterminated JSON list after record {index} (no closing ']')", "")


class _ChunkReader:
    """A text buffer over a binary file, decoded incrementally; undecodable bytes become
    lone surrogates (``surrogateescape``) so they can be found per element."""

    def __init__(self, path: str | Path):
        self._file = open(path, "rb")
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
        self.buf, self.pos, self.eof = "", 0, False
        self._first = True

    def _more(self) -> bool:
        if self.eof:
            return False
        data = self._file.read(CHUNK_BYTES)
        text = self._decoder.decode(data, final=not data)
        if self._first:
            text, self._first = text.lstrip(_BOM), False
        if not data:
            self.eof = True
            self._file.close()
        self.buf = self.buf[self.pos:] + text     # drop what was consumed: memory stays O(chunk)
        self.pos = 0
        return bool(text) or not self.eof

    def skip_ws(self) -> bool:
        """Advance past whitespace; False at end of file."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _WS:
                self.pos += 1
            if self.pos < len(self.buf):
                return True
            if not self._more():
                return False

    def peek(self) -> str:
        return self.buf[self.pos]

    def head(self) -> str:
        return self.buf[self.pos:self.pos + RAW_LIMIT]

    def decode_value(self) -> tuple[Any, str] | str:
        """Decode the value at ``pos``; (value, raw text) or an error message."""
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as error:
                truncated = error.pos >= len(self.buf) - 1 or error.msg.startswith("Unterminated string")
                if truncated and self._more():
                    continue
                return f"{error.msg} (character {error.pos - self.pos} of the record)"
            # A number may continue in the next chunk: only trust a value followed by more text.
            if end >= len(self.buf) and not self.eof and self._more():
                continue
            raw = self.buf[self.pos:end]
            self.pos = end
            return value, raw


def load_json_document(path: str | Path) -> Any | Quarantined:
    """The whole JSON document (for formats that are one object); a bad file is one quarantine."""
    data = Path(path).read_bytes()
    text = data.decode("utf-8", "surrogateescape").lstrip(_BOM)
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        return quarantine(path, error.lineno, f"bad JSON: {error.msg} at column {error.colno}", text)


def has_undecodable(value: Any) -> bool:
    """Does a parsed value hold bytes that were not UTF-8, or lone surrogates (not encodable)?"""
    if isinstance(value, str):
        return bool(_ANY_SURROGATE.search(value))
    if isinstance(value, dict):
        return any(has_undecodable(k) or has_undecodable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_undecodable(v) for v in value)
    return False
