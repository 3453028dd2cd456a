"""Counters of a build and the ``build_report.json`` they become.

The report says, per source: files, records read, quarantined (by reason; ``unanswered``: how
many of them are consultations no doctor answered, ``malformed_fraction``: the rest), dropped by each
transform (by reason), PII spans scrubbed (by kind) and other transform counts, exact and near
duplicates, languages; per output and mix component: the weight as written, rows requested,
available and written (per split), rows lost to row-level dedup and decontamination, and the
same per source and per origin with requested vs actual fractions.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

MAX_REASONS = 50           # distinct quarantine reasons kept by name; the rest count as "other"


def reason_key(reason: str) -> str:
    """Group quarantine reasons by their head ("bad JSON: Expecting ..." -> "bad JSON")."""
    return reason.split(":", 1)[0].strip()[:80] or "unknown"


@dataclass
class SourceStats:
    name: str
    format: str
    origin: str
    files: list[dict]                # {"path", "sha256", "bytes"} per file (inputs.InputFile.to_json)
    read: int = 0
    quarantined: int = 0
    unanswered: int = 0              # of the quarantined: consultations no doctor answered (not malformed)
    quarantine_reasons: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)            # "transform: reason" -> n
    transform_counts: dict[str, Counter] = field(default_factory=dict)
    exact_duplicates: int = 0
    near_duplicates: int = 0
    kept: int = 0
    languages: Counter = field(default_factory=Counter)
    empty_files: int = 0             # files that gave no record (allowed with allow_empty: true)

    @property
    def malformed(self) -> int:
        """Quarantined records that are malformed (what max_quarantine_fraction limits)."""
        return self.quarantined - self.unanswered

    def add_quarantine(self, reason: str, unanswered: bool = False) -> None:
        self.quarantined += 1
        self.unanswered += unanswered
        key = reason_key(reason)
        if key not in self.quarantine_reasons and len(self.quarantine_reasons) >= MAX_REASONS:
            key = "other"
        self.quarantine_reasons[key] += 1

    def to_json(self) -> dict:
        counts = {name: dict(sorted(c.items())) for name, c in sorted(self.transform_counts.items())}
        return {
            "format": self.format, "origin": self.origin, "files": self.files, "empty_files": self.empty_files,
            "records_read": self.read - self.quarantined, "quarantined": self.quarantined,
            "quarantine_reasons": dict(self.quarantine_reasons.most_common()),
            "quarantine_fraction": round(self.quarantined / self.read, 6) if self.read else 0.0,
            "unanswered": self.unanswered,
            "malformed_fraction": round(self.malformed / self.read, 6) if self.read else 0.0,
            "dropped_by_transforms": dict(sorted(self.dropped.items())),
            "transform_counts": counts,
            "pii_spans": counts.get("scrub_pii", {}),
            "exact_duplicates": self.exact_duplicates, "near_duplicates": self.near_duplicates,
            "kept": self.kept, "languages": dict(sorted(self.languages.items())),
        }


@dataclass
class ComponentStats:
    output: str
    source: str
    origin: str
    build: str
    weight: dict
    rows_built: int = 0
    records_without_rows: int = 0
    unusable_records: Counter = field(default_factory=Counter)   # record kind -> n
    duplicate_rows: int = 0
    contaminated_rows: int = 0
    eval_overlap_rows: int = 0                                   # rows removed: they overlap an eval set
    available: int = 0
    requested: int = 0
    written: Counter = field(default_factory=Counter)            # split -> rows

    def to_json(self) -> dict:
        return {
            "source": self.source, "origin": self.origin, "build": self.build, "weight": self.weight,
            "rows_built": self.rows_built, "records_without_rows": self.records_without_rows,
            "unusable_records": dict(self.unusable_records), "duplicate_rows": self.duplicate_rows,
            "contaminated_rows": self.contaminated_rows, "eval_overlap_rows": self.eval_overlap_rows,
            "available": self.available,
            "requested": self.requested, "actual": sum(self.written.values()),
            "copies": round(self.requested / self.available, 4) if self.available else None,
            "by_split": dict(self.written),
        }


def _group(components: list[ComponentStats], key: str) -> dict:
    groups: dict[str, dict] = {}
    total_req = sum(c.requested for c in components) or 1
    total_act = sum(sum(c.written.values()) for c in components) or 1
    for c in components:
        g = groups.setdefault(getattr(c, key), {"requested": 0, "actual": 0})
        g["requested"] += c.requested
        g["actual"] += sum(c.written.values())
    for g in groups.values():
        g["requested_fraction"] = round(g["requested"] / total_req, 6)
        g["actual_fraction"] = round(g["actual"] / total_act, 6)
    return dict(sorted(groups.items()))


def output_report(components: list[ComponentStats], total: int | None) -> dict:
    """One output's section of the report."""
    by_split: Counter = Counter()
    for c in components:
        by_split.update(c.written)
    return {
        "total_requested": total if total is not None else sum(c.requested for c in components),
        "total_actual": sum(by_split.values()),
        "by_split": {s: by_split.get(s, 0) for s in ("train", "validation", "test")},
        "components": [c.to_json() for c in components],
        "by_source": _group(components, "source"),
        "by_origin": _group(components, "origin"),
    }
