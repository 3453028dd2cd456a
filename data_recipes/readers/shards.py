"""Byte-range shards of one source file, so that a big file is read by several workers.

    shards = plan_shards(path, "meddialog_raw", target_bytes=32 << 20)
    for shard in shards:                       # each can run in its own process
        for item in read_shard(path, "meddialog_raw", shard, language="zh"):
            ...

A shard starts where a record starts and carries the line number of its first line, so the
records of the shards, in shard order, are exactly the records of the whole file (same ids,
lines, quarantines). Formats with record boundaries that can be found from the bytes alone are
sharded: MedDialog raw text (at ``id=`` lines) and the line-oriented JSONL formats (at line
starts; a ShareGPT/OpenAI/Alpaca file that is one JSON list is not). Any other file is one shard.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from data_recipes.readers import chat, cmd, huatuo, meddialog_raw, read_source
from data_recipes.readers.fields import parsed_records
from data_recipes.readers.streams import first_significant_char, iter_jsonl
from data_recipes.records import Quarantined, Record

LINE_PARSERS = {**cmd.LINE_PARSERS, **huatuo.LINE_PARSERS, **chat.LINE_PARSERS}
WINDOW = 1 << 16                 # bytes read at a time while looking for a boundary


@dataclass(frozen=True)
class Shard:
    """Bytes [start, end) of a file; ``line``: the line number at ``start``."""

    start: int
    end: int
    line: int


def shardable(path: str | Path, fmt: str) -> bool:
    """Can this file be cut into byte ranges read independently?"""
    if fmt == "meddialog_raw":
        return True
    return fmt in LINE_PARSERS and first_significant_char(path) != "["


def plan_shards(path: str | Path, fmt: str, target_bytes: int) -> list[Shard]:
    """Shards of about ``target_bytes`` each (one shard when the file is small or not shardable)."""
    size = Path(path).stat().st_size
    if size <= target_bytes or not shardable(path, fmt):
        return [Shard(0, size, 1)]
    find = _next_id_line if fmt == "meddialog_raw" else _next_line
    starts = [0]
    with open(path, "rb") as f:
        while starts[-1] + target_bytes < size:
            at = find(f, starts[-1] + target_bytes)
            if at is None or at >= size:
                break
            starts.append(at)
    return [Shard(a, b, line) for a, b, line in zip(starts, starts[1:] + [size], _line_numbers(path, starts))]


def read_shard(path: str | Path, fmt: str, shard: Shard, **options) -> Iterator[Record | Quarantined]:
    """The records of one shard (``options``: the reader's, e.g. ``language``)."""
    if set(options) - {"language"}:
        raise ValueError(f"format {fmt!r} read in shards takes only the language option, got {sorted(options)}")
    whole = shard.start == 0 and shard.end >= Path(path).stat().st_size
    if whole or not shardable(path, fmt):
        if not whole:
            raise ValueError(f"{path}: format {fmt!r} cannot be read in byte ranges")
        return read_source(path, fmt, **options)
    if fmt == "meddialog_raw":
        return meddialog_raw.read_meddialog_raw_range(path, shard.start, shard.end, shard.line, **options)
    return parsed_records(iter_jsonl(path, (shard.start, shard.end, shard.line)), path, LINE_PARSERS[fmt],
                          options.get("language"))


def _next_line(f, pos: int) -> int | None:
    """The first line start at or after ``pos`` (None: none before the end of the file)."""
    f.seek(pos - 1)
    while True:
        data = f.read(WINDOW)
        if not data:
            return None
        at = data.find(b"\n")
        if at >= 0:
            return f.tell() - len(data) + at + 1


def _next_id_line(f, pos: int) -> int | None:
    """The first start of a complete ``id=`` line at or after ``pos``: a place where reading the
    whole file cuts too (an id= line cut short by the window is skipped; a later one serves)."""
    f.seek(pos - 1)
    base, buf, at = pos - 1, b"", 0
    while True:
        data = f.read(WINDOW)
        buf += data
        at = buf.find(b"\nid", at)
        while at >= 0:
            match = meddialog_raw.ID_LINE.match(buf, at + 1)
            if match is None:
                at = buf.find(b"\nid", at + 1)
            elif match.end() < len(buf) or not data:
                return base + at + 1
            else:
                break                                 # it may go on: read more, look again
        if not data:
            return None
        if at < 0:                                    # nothing pending: keep a possible "\ni" tail
            keep = max(len(buf) - 2, 0)
            base, buf, at = base + keep, buf[keep:], 0


def _line_numbers(path: str | Path, starts: list[int]) -> list[int]:
    """The line number at each offset of ``starts`` (sorted), counting newlines once through the file."""
    lines, line, pos = [], 1, 0
    with open(path, "rb") as f:
        for start in starts:
            while pos < start:
                data = f.read(min(8 << 20, start - pos))
                line += data.count(b"\n")
                pos += len(data)
            lines.append(line)
    return lines
