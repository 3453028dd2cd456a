"""Content-addressed cache of judge completions.

The key hashes everything that decides a completion: the rendered messages, the endpoint, the
model, every decoding parameter, the template hash, the parser version, the seed and the sample
index (:func:`cache_key`). Change any one of them and the cache misses.

Only completions that parsed ``ok`` are stored: an API error, a truncated or malformed completion
or a refusal is judged again on the next run, which is how a rerun fills in failures.

Storage is one append-only JSONL file (``<cache_dir>/completions.jsonl``), read into memory at
open. Each entry is written with a single ``write()`` of a complete line, so a killed process
leaves at most one partial last line; readers skip unreadable lines (and count them), and the
next writer starts on a fresh line.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from medalign.config import canonical_json

CACHE_FILE = "completions.jsonl"


def cache_key(*, messages: list[dict], endpoint: str, model: str, decoding: dict,
              template_hash: str, parser_version: str, seed: int | None, sample_index: int) -> str:
    """sha256 of the canonical JSON of every part that decides a completion."""
    payload = canonical_json({
        "messages": messages, "endpoint": endpoint, "model": model, "decoding": decoding,
        "template_hash": template_hash, "parser_version": parser_version, "seed": seed,
        "sample_index": sample_index,
    })
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class CompletionCache:
    """Completions by cache key. ``get`` is a dict lookup; ``put`` appends one line."""

    def __init__(self, cache_dir: str | Path):
        self.dir = Path(cache_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / CACHE_FILE
        self.entries: dict[str, dict] = {}
        self.unreadable_lines = 0
        self._needs_newline = False
        self._load()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        self._needs_newline = bool(data) and not data.endswith(b"\n")
        for raw in data.split(b"\n"):
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
                self.entries[entry["key"]] = entry
            except (json.JSONDecodeError, KeyError, TypeError):
                self.unreadable_lines += 1

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def put(self, key: str, value: dict[str, Any]) -> None:
        entry = {"key": key, **value}
        line = json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"
        if self._needs_newline:
            line = "\n" + line
            self._needs_newline = False
        os.write(self._fd, line.encode("utf-8"))
        self.entries[key] = entry

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __len__(self) -> int:
        return len(self.entries)
