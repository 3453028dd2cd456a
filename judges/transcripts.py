"""The append-only, hash-chained transcript store: one JSONL line per judge call.

Each line is one judgment's final record (fields: see :data:`TRANSCRIPT_FIELDS`) as canonical
JSON (sorted keys) with ``seq`` (0, 1, 2, ...), ``prev_hash`` (the previous line's ``hash``; 64
zeros for the first) and, last, ``hash`` = sha256(prev_hash + canonical JSON of the row without
``hash``). Editing, deleting, inserting or reordering a line breaks the chain, which
:func:`verify_transcript` reports with the line number. ``transcripts.head.json`` next to the file
records the last line's seq and hash after every run, so deleting lines at the end is caught too.

Every row is written with one ``write()`` of a complete line, straight to the kernel: a process
killed with SIGKILL leaves at most one partial last line. :class:`TranscriptStore` detects it when
it opens the file, truncates it and reports the bytes it removed (``truncated_bytes``).

A judgment id has exactly one final record per run; a later run only writes a new record for a
judgment whose latest record is not ``ok`` (filling in failures), never for an ``ok`` one.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from medalign.artifacts import write_json_atomic
from medalign.config import canonical_json

GENESIS = "0" * 64
HEAD_SUFFIX = ".head.json"
# The fields of a transcript row, in the order ARCHITECTURE.md lists them, then bookkeeping.
TRANSCRIPT_FIELDS = (
    "prompt_id", "positions", "order", "messages", "completion", "scores", "soft_scores", "span",
    "status", "model", "endpoint", "decoding", "seed", "template_id", "template_hash",
    "latency_s", "tokens", "cost", "cache_hit", "timestamp",
    # bookkeeping
    "judgment_id", "judge", "run_id", "sample_index", "language", "parser_version", "details",
    "finish_reason", "error", "attempts", "cache_key",
    # chain
    "seq", "prev_hash", "hash",
)


class TranscriptError(RuntimeError):
    """A transcript cannot be appended to (a corrupt line in the middle, not a partial tail)."""


def row_hash(prev_hash: str, row_without_hash: dict) -> str:
    payload = prev_hash + canonical_json(row_without_hash)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass
class TranscriptStore:
    """Open (recovering a partial tail), look up latest records, append chained rows."""

    path: Path
    latest: dict[str, dict] = field(default_factory=dict)   # judgment id -> latest row
    count: int = 0
    last_hash: str = GENESIS
    truncated_bytes: int = 0
    _fd: int | None = None

    @classmethod
    def open(cls, path: str | Path) -> "TranscriptStore":
        store = cls(Path(path))
        store.path.parent.mkdir(parents=True, exist_ok=True)
        store._recover_and_index()
        store._fd = os.open(store.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return store

    def _recover_and_index(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        cut = data.rfind(b"\n") + 1
        if cut < len(data):                     # a partial last line from a killed writer
            self.truncated_bytes = len(data) - cut
            os.truncate(self.path, cut)
            data = data[:cut]
        for lineno, raw in enumerate(data.splitlines(), start=1):
            try:
                row = json.loads(raw)
            except json.JSONDecodeError:
                raise TranscriptError(f"{self.path}:{lineno}: not a JSON line; the transcript "
                                      "is damaged (check it with `medalign audit verify`)") from None
            if row.get("prev_hash") != self.last_hash or row.get("seq") != self.count:
                raise TranscriptError(f"{self.path}:{lineno}: hash chain broken; run "
                                      "`medalign audit verify` on it before appending")
            self.last_hash = row["hash"]
            self.count += 1
            self.latest[row["judgment_id"]] = _lite(row)

    def is_done(self, judgment_id: str) -> bool:
        """True when the judgment's latest record is ok (it is never judged again)."""
        rec = self.latest.get(judgment_id)
        return rec is not None and rec["status"] == "ok"

    def append(self, row: dict) -> dict:
        """Chain and write one row (a complete line in one write). Returns the written row."""
        row = {k: v for k, v in row.items() if k != "hash"}
        row["seq"] = self.count
        row["prev_hash"] = self.last_hash
        body = canonical_json(row)
        row["hash"] = hashlib.sha256((self.last_hash + body).encode("utf-8")).hexdigest()
        # the line is the canonical body with "hash" appended last (one encoding per row)
        line = body[:-1] + f',"hash":"{row["hash"]}"}}\n'
        os.write(self._fd, line.encode("utf-8"))
        self.last_hash = row["hash"]
        self.count += 1
        self.latest[row["judgment_id"]] = _lite(row)
        return row

    def write_head(self) -> None:
        write_json_atomic(head_path(self.path), {"count": self.count, "last_hash": self.last_hash})

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self.write_head()


def _lite(row: dict) -> dict:
    """What result assembly needs from a row (keeps memory small: no messages)."""
    return {k: row.get(k) for k in ("judgment_id", "status", "scores", "soft_scores", "positions",
                                    "order", "sample_index", "judge", "error", "prompt_id")}


def head_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + HEAD_SUFFIX)


@dataclass
class VerifyResult:
    lines: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_transcript(path: str | Path, head: str | Path | None = None) -> VerifyResult:
    """Recompute the chain; report every edited, deleted, inserted, reordered or partial line.

    ``head`` defaults to ``<path>.head.json`` when it exists: the line it names must be present
    with the recorded hash (so lines deleted from the end are caught).
    """
    path = Path(path)
    problems: list[str] = []
    prev, seq_expected, hashes = GENESIS, 0, []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        problems.append(f"{path}: last line is partial (no newline): a writer was killed mid-line")
    for lineno, raw in enumerate(data.splitlines(), start=1):
        try:
            row = json.loads(raw)
        except json.JSONDecodeError:
            problems.append(f"{path}:{lineno}: not valid JSON")
            prev, seq_expected = None, seq_expected + 1
            hashes.append(None)
            continue
        body = {k: v for k, v in row.items() if k != "hash"}
        if row_hash(row.get("prev_hash", ""), body) != row.get("hash"):
            problems.append(f"{path}:{lineno}: content does not match its hash (edited)")
        if prev is not None and row.get("prev_hash") != prev:
            problems.append(f"{path}:{lineno}: prev_hash does not match line {lineno - 1} "
                            "(a line was deleted, inserted or reordered)")
        if row.get("seq") != seq_expected:
            problems.append(f"{path}:{lineno}: seq {row.get('seq')} where {seq_expected} was "
                            "expected (deleted or reordered lines)")
        prev, seq_expected = row.get("hash"), seq_expected + 1
        hashes.append(row.get("hash"))
    head = Path(head) if head else head_path(path)
    if head.is_file():
        h = json.loads(head.read_text(encoding="utf-8"))
        n = h.get("count", 0)
        if n > len(hashes):
            problems.append(f"{path}: {head.name} records {n} lines but the file has "
                            f"{len(hashes)} (lines deleted at the end)")
        elif n and hashes[n - 1] != h.get("last_hash"):
            problems.append(f"{path}:{n}: hash differs from the one {head.name} recorded")
    return VerifyResult(lines=len(hashes), problems=problems)


def read_rows(path: str | Path) -> list[dict]:
    """Every complete row of a transcript (a partial last line is ignored)."""
    rows = []
    with open(path, "rb") as f:
        for raw in f:
            if raw.endswith(b"\n"):
                rows.append(json.loads(raw))
    return rows


def latest_rows(rows: list[dict]) -> list[dict]:
    """The latest record of each judgment id (a rerun supersedes an earlier failure)."""
    by_id: dict[str, dict] = {}
    for row in rows:
        by_id[row["judgment_id"]] = row
    return list(by_id.values())
