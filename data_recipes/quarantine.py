"""``quarantine.jsonl``: one line per malformed record - source, file, line, reason, text (and
``"unanswered": true`` for a well-formed consultation no doctor answered).

The text of a malformed record is scrubbed of personal information by the same rules as the
outputs (the source's ``scrub_pii`` settings; the default rules for a source without one), so
the file can be shared like the datasets. A recipe that sets ``quarantine_raw: true`` keeps the
raw text instead, and the build report warns about it.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Callable

from data_recipes.recipe import Source
from data_recipes.records import Quarantined
from data_recipes.transforms.pii import ScrubPii, scrub_text

MAX_RAW = 4096          # characters of the offending text kept per record


def scrub_rules(source: Source) -> ScrubPii:
    """The PII rules of a source's outputs (its scrub_pii transform), else the default rules."""
    return next((t for t in source.transforms if isinstance(t, ScrubPii)), ScrubPii())


class QuarantineWriter:
    """Appends quarantined records as JSON lines (the file exists even when empty); ``path``
    None counts without writing (``data validate``)."""

    def __init__(self, path: Path | None, recorded: Callable[[str], str], raw: bool = False) -> None:
        self._file = open(path, "w", encoding="utf-8") if path is not None else None
        self._recorded = recorded
        self.raw = raw
        self.count = 0
        self.pii_spans: Counter = Counter()          # spans scrubbed from quarantined text, by kind

    def write(self, source: Source, item: Quarantined) -> None:
        self.count += 1
        if self._file is None:
            return
        text = item.raw[:MAX_RAW]
        if not self.raw:
            rules = scrub_rules(source)
            text = scrub_text(text, frozenset(rules.kinds), self.pii_spans, rules.scrub_invalid_ids)
        line = {"source": source.name, "file": self._recorded(item.source_file), "line": item.source_line,
                "reason": item.reason, "text": text, "scrubbed": not self.raw}
        if item.unanswered:
            line["unanswered"] = True
        self._file.write(json.dumps(line, ensure_ascii=False) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
