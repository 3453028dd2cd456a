"""``quarantine.jsonl``: one line per malformed record - source, file, line, reason, raw text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from data_recipes.records import Quarantined

MAX_RAW = 4096          # characters of the offending text kept per record


class QuarantineWriter:
    """Appends quarantined records as JSON lines (the file exists even when empty)."""

    def __init__(self, path: Path, display_path: Callable[[Path], str]) -> None:
        self._file = open(path, "w", encoding="utf-8")
        self._display = display_path
        self._names: dict[str, str] = {}
        self.count = 0

    def write(self, source: str, item: Quarantined) -> None:
        file = self._names.get(item.source_file)
        if file is None:
            file = self._names[item.source_file] = self._display(Path(item.source_file))
        line = {"source": source, "file": file, "line": item.source_line, "reason": item.reason,
                "raw": item.raw[:MAX_RAW]}
        self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
        self.count += 1

    def close(self) -> None:
        self._file.close()
