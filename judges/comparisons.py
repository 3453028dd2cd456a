"""Comparisons: the judgments of one pair by one judge (both orders), as auditors look at them.

Shared by ``medalign audit show|list`` and the audit viewer (:mod:`judges.audit_view`). Rows are
each judgment's latest record. A pairwise comparison groups the rows of one judge with one
``pair_id`` (:func:`judges.transcripts.row_pair_id`, also derived for rows written before rows
carried one); a single-answer judgment is a comparison of its own.

``disagree``: both orders are ok and the verdict (which response scored higher) flips with the
order. ``gap``: mean over ok rows of score(first sample) - score(second sample).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from judges.transcripts import latest_rows, read_rows, row_pair_id

PAIRS_FILE = "pairs.parquet"
_ORDER_RANK = {"ab": 0, "ba": 1, "single": 2}


@dataclass
class PairView:
    judge: str
    pair_id: str | None
    prompt_id: str
    sample_ids: list[str]
    rows: list[dict]                      # latest records, order ab then ba (single: one row)

    @property
    def key(self) -> str:
        return f"{self.judge}|{self.pair_id or self.rows[0]['judgment_id']}"

    @property
    def flags(self) -> list[str]:
        return sorted({f for r in self.rows for f in (r.get("flags") or [])})

    def diffs(self) -> dict[str, float]:
        """Order -> score(first sample) - score(second sample), for ok pairwise rows."""
        out = {}
        for r in self.rows:
            pos, sc = r.get("positions") or {}, r.get("scores")
            if r.get("status") != "ok" or not sc or "B" not in pos:
                continue
            first = "A" if pos["A"] == self.sample_ids[0] else "B"
            out[r["order"]] = sc[first] - sc["B" if first == "A" else "A"]
        return out

    @property
    def disagree(self) -> bool | None:
        d = self.diffs()
        if "ab" not in d or "ba" not in d:
            return None
        sign = lambda x: (x > 0) - (x < 0)  # noqa: E731
        return sign(d["ab"]) != sign(d["ba"])

    @property
    def gap(self) -> float | None:
        d = self.diffs()
        return sum(d.values()) / len(d) if d else None


def latest_by_file(rows_by_file: list[list[dict]]) -> list[dict]:
    """The latest rows of each file's rows, each with ``_file`` (the file's index)."""
    out = []
    for i, rows in enumerate(rows_by_file):
        for row in latest_rows(rows):
            row["_file"] = i
            out.append(row)
    return out


def load_rows(paths: list[str | Path]) -> list[dict]:
    """The latest rows of every transcript, each with ``_file`` (its index in ``paths``)."""
    return latest_by_file([read_rows(p) for p in paths])


def group(rows: list[dict]) -> list[PairView]:
    """Comparisons in transcript order (of their first row)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        pid = row_pair_id(r)
        groups[(r.get("_file", 0), r.get("judge"), pid or r["judgment_id"])].append(r)
    out = []
    for (_, judge, _), rs in groups.items():
        rs.sort(key=lambda r: (_ORDER_RANK.get(r.get("order"), 3), r.get("sample_index") or 0))
        first = rs[0]
        pid = row_pair_id(first)
        pos = first.get("positions") or {}
        samples = first.get("sample_ids") or ([pos["A"], pos["B"]] if "B" in pos else [pos.get("A")])
        out.append(PairView(judge, pid, first["prompt_id"], list(samples), rs))
    return out


def find(comparisons: list[PairView], ident: str) -> list[PairView]:
    """Comparisons whose pair id or one of whose judgment ids starts with ``ident``."""
    return [c for c in comparisons
            if (c.pair_id or "").startswith(ident)
            or any(r["judgment_id"].startswith(ident) for r in c.rows)]


def select(comparisons: list[PairView], *, status: list[str] | None = None,
           judge: list[str] | None = None, flag: list[str] | None = None,
           disagree: bool = False, min_gap: float | None = None) -> list[PairView]:
    """The comparisons that pass every filter given (``status``: any row with that status)."""
    out = []
    for c in comparisons:
        if status and not any(r.get("status") in status for r in c.rows):
            continue
        if judge and c.judge not in judge:
            continue
        if flag and not set(flag) & set(c.flags):
            continue
        if disagree and not c.disagree:
            continue
        if min_gap is not None and (c.gap is None or abs(c.gap) < min_gap):
            continue
        out.append(c)
    return out


def produced_pairs(transcript: str | Path) -> list[dict] | None:
    """Rows of the ``pairs.parquet`` beside a transcript (None when there is none)."""
    path = Path(transcript).with_name(PAIRS_FILE)
    if not path.is_file():
        return None
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    cols = [c for c in ("prompt_id", "chosen_id", "rejected_id", "margin", "judgment_ids")
            if c in table.column_names]
    return table.select(cols).to_pylist()
