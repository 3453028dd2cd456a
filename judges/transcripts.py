"""The append-only, hash-chained transcript store: one JSONL line per judge call.

Each line is one judgment's final record (fields: see :data:`TRANSCRIPT_FIELDS`) as canonical
JSON (sorted keys) with ``seq`` (0, 1, 2, ...), ``prev_hash`` (the previous line's ``hash``; 64
zeros for the first) and, last, ``hash`` over ``prev_hash`` + the canonical JSON of the row
without ``hash``:

* plain chain (``chain: "sha256"``, or no ``chain`` field in transcripts written before it
  existed): ``hash = sha256(...)``. It detects accidents and careless edits, but whoever rewrites
  the file can recompute every hash and the head file.
* keyed chain (``chain: "hmac-sha256"``, ``key_id``): ``hash = HMAC-SHA256(key, ...)`` with a key
  read from an environment variable (``JudgeConfig.transcript_key_env``). Only the key's id
  (:func:`key_id`) is written; without the key nobody can produce a row or a head that verifies.

``transcripts.head.json`` next to the file records the last line's seq and hash after every run
(keyed: with an HMAC tag), so deleting lines at the end is caught too.
:func:`judges.transcript_verify.verify_transcript` checks all of it.

Every row is written with one ``write()`` of a complete line, straight to the kernel: a process
killed with SIGKILL leaves at most one partial last line. :class:`TranscriptStore` detects it when
it opens the file, truncates it and reports the bytes it removed (``truncated_bytes``). The values
of the secrets in use (API keys, the chain key) are masked in every line before it is hashed
(:func:`mask_secrets`), even where a server echoed one inside its completion.

A judgment id has exactly one final record per run; a later run only writes a new record for a
judgment whose latest record is not ``ok`` (filling in failures), never for an ``ok`` one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from medalign.artifacts import write_json_atomic
from medalign.config import canonical_json

GENESIS = "0" * 64
HEAD_SUFFIX = ".head.json"
PLAIN, KEYED = "sha256", "hmac-sha256"
MIN_SECRET_CHARS = 8                      # shorter "secrets" are not masked (they would mangle JSON)
# The fields of a transcript row, in the order ARCHITECTURE.md lists them, then bookkeeping.
TRANSCRIPT_FIELDS = (
    "prompt_id", "positions", "order", "messages", "completion", "scores", "soft_scores", "span",
    "status", "model", "endpoint", "decoding", "seed", "template_id", "template_hash",
    "latency_s", "tokens", "cost", "cache_hit", "timestamp",
    # lineage and flags
    "pair_id", "sample_ids", "flags", "flag_details", "tags",
    # bookkeeping
    "judgment_id", "judge", "run_id", "sample_index", "language", "parser_version", "details",
    "finish_reason", "error", "attempts", "cache_key",
    # chain
    "chain", "key_id", "seq", "prev_hash", "hash",
)


class TranscriptError(RuntimeError):
    """A transcript cannot be appended to (damaged in the middle, or keyed with another key)."""


def pair_id(prompt_id: str, a_id: str, b_id: str) -> str:
    """The id of the pair {a, b} of responses to one prompt: the same for both orders."""
    x, y = sorted((a_id, b_id))
    return hashlib.sha256(f"{prompt_id}|{x}|{y}".encode("utf-8")).hexdigest()[:16]


def row_pair_id(row: dict) -> str | None:
    """A row's pair id, also for rows written before rows carried one (None: single answer)."""
    if row.get("pair_id"):
        return row["pair_id"]
    pos = row.get("positions") or {}
    if "B" not in pos:
        return None
    return pair_id(row["prompt_id"], pos["A"], pos["B"])


def key_id(key: bytes) -> str:
    """A short public id of a chain key (it does not reveal the key)."""
    return hmac.new(key, b"medalign transcript key id", hashlib.sha256).hexdigest()[:16]


def chain_hash(prev_hash: str, body: str, key: bytes | None) -> str:
    """The hash of a row: over ``prev_hash`` + its canonical JSON without ``hash``."""
    payload = (prev_hash + body).encode("utf-8")
    if key is None:
        return hashlib.sha256(payload).hexdigest()
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def row_hash(prev_hash: str, row_without_hash: dict, key: bytes | None = None) -> str:
    return chain_hash(prev_hash, canonical_json(row_without_hash), key)


def head_tag(key: bytes, count: int, last_hash: str) -> str:
    """The HMAC tag of a keyed head file (so a head cannot be rewritten without the key)."""
    return hmac.new(key, f"head|{count}|{last_hash}".encode("utf-8"), hashlib.sha256).hexdigest()


def mask_secrets(text: str | None, secrets: tuple[str, ...] | list[str]) -> str | None:
    """``text`` with every secret (and its JSON-escaped form) replaced by as many ``*``: same
    length, so offsets (a parsed span) stay valid."""
    if not text:
        return text
    for secret in secrets:
        if len(secret) < MIN_SECRET_CHARS:
            continue
        for form in {secret, json.dumps(secret, ensure_ascii=False)[1:-1]}:
            if form in text:
                text = text.replace(form, "*" * len(form))
    return text


@dataclass
class TranscriptStore:
    """Open (recovering a partial tail), look up latest records, append chained rows."""

    path: Path
    key: bytes | None = None              # HMAC key of a keyed chain (None: plain sha256)
    secrets: tuple[str, ...] = ()         # masked in every line written
    latest: dict[str, dict] = field(default_factory=dict)   # judgment id -> latest row
    count: int = 0
    last_hash: str = GENESIS
    truncated_bytes: int = 0
    _fd: int | None = None

    @classmethod
    def open(cls, path: str | Path, key: bytes | None = None,
             secrets: tuple[str, ...] | list[str] = ()) -> "TranscriptStore":
        store = cls(Path(path), key, tuple(secrets))
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
        mine = key_id(self.key) if self.key else None
        for lineno, raw in enumerate(data.splitlines(), start=1):
            try:
                row = json.loads(raw)
            except ValueError:                  # not JSON, or not UTF-8
                raise TranscriptError(f"{self.path}:{lineno}: not a JSON line; the transcript "
                                      "is damaged (check it with `medalign audit verify`)") from None
            if row.get("prev_hash") != self.last_hash or row.get("seq") != self.count:
                raise TranscriptError(f"{self.path}:{lineno}: hash chain broken; run "
                                      "`medalign audit verify` on it before appending")
            if row.get("chain") == KEYED and row.get("key_id") != mine:
                raise TranscriptError(
                    f"{self.path}:{lineno}: the chain is keyed with key id {row.get('key_id')}, "
                    + ("but no transcript_key_env is set" if mine is None else f"not {mine}")
                    + ": set transcript_key_env to the variable holding that key")
            self.last_hash = row["hash"]
            self.count += 1
            self.latest[row["judgment_id"]] = _lite(row)

    def is_done(self, judgment_id: str) -> bool:
        """True when the judgment's latest record is ok (it is never judged again)."""
        rec = self.latest.get(judgment_id)
        return rec is not None and rec["status"] == "ok"

    def append(self, row: dict) -> dict:
        """Chain and write one row (a complete line in one write). Returns the row as given,
        with its chain fields."""
        row = {k: v for k, v in row.items() if k != "hash"}
        row["chain"] = KEYED if self.key else PLAIN
        row["key_id"] = key_id(self.key) if self.key else None
        row["seq"] = self.count
        row["prev_hash"] = self.last_hash
        body = mask_secrets(canonical_json(row), self.secrets)
        row["hash"] = chain_hash(self.last_hash, body, self.key)
        # the line is the canonical body with "hash" appended last (one encoding per row)
        line = body[:-1] + f',"hash":"{row["hash"]}"}}\n'
        os.write(self._fd, line.encode("utf-8"))
        self.last_hash = row["hash"]
        self.count += 1
        self.latest[row["judgment_id"]] = _lite(row)
        return row

    def write_head(self) -> None:
        head = {"count": self.count, "last_hash": self.last_hash}
        if self.key:
            head.update(chain=KEYED, key_id=key_id(self.key),
                        tag=head_tag(self.key, self.count, self.last_hash))
        write_json_atomic(head_path(self.path), head)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self.write_head()


def _lite(row: dict) -> dict:
    """What result assembly needs from a row (keeps memory small: no messages)."""
    return {k: row.get(k) for k in ("judgment_id", "status", "scores", "soft_scores", "positions",
                                    "order", "sample_index", "judge", "error", "prompt_id",
                                    "flags")}


def head_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + HEAD_SUFFIX)


def read_rows(path: str | Path, bad: list | None = None) -> list[dict]:
    """Every complete, readable row of a transcript. A partial last line is ignored; a line
    that is not UTF-8 JSON is skipped and, when ``bad`` is a list, recorded there as
    ``(line number, reason)`` (``medalign audit verify`` reports such lines)."""
    rows = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):
                if bad is not None:
                    bad.append((lineno, "partial last line (no newline)"))
                continue
            try:
                rows.append(json.loads(raw))
            except ValueError as e:
                if bad is not None:
                    bad.append((lineno, f"unreadable ({type(e).__name__})"))
    return rows


def latest_rows(rows: list[dict]) -> list[dict]:
    """The latest record of each judgment id (a rerun supersedes an earlier failure)."""
    by_id: dict[str, dict] = {}
    for row in rows:
        by_id[row["judgment_id"]] = row
    return list(by_id.values())
