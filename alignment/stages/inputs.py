"""Reading the Parquet inputs of the alignment stages, with bad rows quarantined and counted.

The data stage writes ``<data>/<kind>/<split>.parquet`` (kind: sft, prompts, preferences, ranked,
pretrain); the judge stage writes ``pairs.parquet``. Columns are in docs/CONTRACTS.md.

A file or column that is missing is an error naming the file. A row whose fields are wrong (a
``messages`` turn with an unknown role, an empty response) is not trained on: it goes to
``out/quarantine.jsonl`` with the file, row and field, and the stage reports the count.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from alignment.chat import check_messages


@dataclass
class Quarantine:
    """Rows a stage refused, each with where it came from and why."""

    items: list[dict] = field(default_factory=list)

    def add(self, file: str | Path, row: int, field_name: str, reason: str) -> None:
        self.items.append({"file": str(file), "row": row, "field": field_name, "reason": reason})

    def __len__(self) -> int:
        return len(self.items)

    def write(self, out: Path) -> None:
        """Append to ``out/quarantine.jsonl`` (only when there is something to write)."""
        if not self.items:
            return
        with open(Path(out) / "quarantine.jsonl", "a", encoding="utf-8") as f:
            for item in self.items:
                f.write(json.dumps(item, ensure_ascii=False) + "\n")


def split_file(data_dir: str | Path, kind: str, split: str, role: str = "data") -> Path:
    """``<data_dir>/<kind>/<split>.parquet``, or FileNotFoundError saying what exists instead."""
    path = Path(data_dir) / kind / f"{split}.parquet"
    if not path.is_file():
        have = sorted(p.relative_to(data_dir).as_posix() for p in Path(data_dir).glob("*/*.parquet")) \
            if Path(data_dir).is_dir() else []
        raise FileNotFoundError(f"input {role!r}: {path} not found (the directory has: {have or 'nothing'})")
    return path


def read_table(path: str | Path, required: tuple[str, ...]) -> list[dict]:
    """Rows of a Parquet file as dicts; ValueError naming the file if a required column is missing."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; has {table.column_names}")
    return table.to_pylist()


def _text(value, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: expected a non-empty string, got {value!r:.60}")
    return value


def read_conversations(path: Path, quarantine: Quarantine, limit: int | None = None,
                       origins: list[str] | None = None) -> list[dict]:
    """SFT rows -> ``[{"messages": [...]}]``; a conversation must contain an assistant turn.

    ``origins``: keep only rows whose ``origin`` column (distilled, real_doctor, ...) is one of
    these (None: every row); rows of other origins are not selected, not quarantined, and
    ``limit`` counts the kept rows."""
    rows = []
    for i, row in enumerate(read_table(path, ("messages",) + (("origin",) if origins is not None else ()))):
        if origins is not None and row["origin"] not in origins:
            continue
        try:
            msgs = check_messages(row["messages"], f"{path}: row {i}: messages")
            if not any(t["role"] == "assistant" and t["content"].strip() for t in msgs):
                raise ValueError(f"{path}: row {i}: messages: no assistant turn to learn from")
        except ValueError as e:
            quarantine.add(path, i, "messages", str(e))
            continue
        rows.append({"messages": msgs})
        if limit is not None and len(rows) >= limit:
            break
    return rows


def read_prompts(path: Path, quarantine: Quarantine, limit: int | None = None) -> list[dict]:
    """Prompt rows (``prompts/`` columns) with validated messages ending in a user turn."""
    rows = []
    for i, row in enumerate(read_table(path, ("prompt_id", "messages"))):
        try:
            msgs = check_messages(row["messages"], f"{path}: row {i}: messages")
            if msgs[-1]["role"] != "user":
                raise ValueError(f"{path}: row {i}: messages: a prompt must end with a user turn")
            _text(row["prompt_id"], f"{path}: row {i}: prompt_id")
        except ValueError as e:
            quarantine.add(path, i, "messages", str(e))
            continue
        rows.append({**row, "messages": msgs})
        if limit is not None and len(rows) >= limit:
            break
    return rows


def load_prompt_split(data_dir: str | Path, split: str, quarantine: Quarantine, limit: int | None,
                      stage: str) -> list[dict]:
    """The usable rows of ``<data_dir>/prompts/<split>.parquet``; ValueError when there are none."""
    prompts = read_prompts(split_file(data_dir, "prompts", split), quarantine, limit)
    if not prompts:
        raise ValueError(f"{stage}: no usable prompts in {data_dir}/prompts/{split}.parquet "
                         f"({len(quarantine)} quarantined: {quarantine.items[:3]})")
    return prompts


PAIR_LINEAGE = ("chosen_id", "rejected_id", "judgment_ids")


def read_pairs(path: Path, quarantine: Quarantine) -> list[dict]:
    """Preference rows: prompt ``messages``, ``chosen``, ``rejected``, optional ``margin``, ``prompt_id``."""
    rows = []
    for i, row in enumerate(read_table(path, ("messages", "chosen", "rejected"))):
        try:
            msgs = check_messages(row["messages"], f"{path}: row {i}: messages")
            chosen = _text(row["chosen"], f"{path}: row {i}: chosen")
            rejected = _text(row["rejected"], f"{path}: row {i}: rejected")
            margin = row.get("margin")
            if margin is not None and not math.isfinite(float(margin)):
                raise ValueError(f"{path}: row {i}: margin: not a finite number ({margin})")
        except (ValueError, TypeError) as e:
            quarantine.add(path, i, "pair", str(e))
            continue
        pid = row.get("prompt_id") or f"{Path(path).stem}:{i}"
        # judge pairs name the responses and judgments they came from (lineage, kept as is)
        lineage = {k: row[k] for k in PAIR_LINEAGE if row.get(k) is not None}
        rows.append({"prompt_id": str(pid), "messages": msgs, "chosen": chosen, "rejected": rejected,
                     "margin": None if margin is None else float(margin), **lineage})
    return rows


def read_ranked(path: Path, quarantine: Quarantine) -> list[dict]:
    """Ranked tuples: prompt ``messages``, ``responses`` (k), ``ranks`` (0 = best, ties share) and
    ``response_sources`` (who wrote each response, e.g. doctor / gpt-4; None when not recorded)."""
    rows = []
    for i, row in enumerate(read_table(path, ("prompt_id", "messages", "responses", "ranks"))):
        try:
            msgs = check_messages(row["messages"], f"{path}: row {i}: messages")
            responses = [_text(r, f"{path}: row {i}: responses") for r in (row["responses"] or [])]
            ranks = [int(r) for r in (row["ranks"] or [])]
            if len(responses) < 2 or len(ranks) != len(responses):
                raise ValueError(f"{path}: row {i}: ranks: need >= 2 responses and one rank each "
                                 f"(got {len(responses)} responses, {len(ranks)} ranks)")
        except (ValueError, TypeError) as e:
            quarantine.add(path, i, "ranked", str(e))
            continue
        sources = row.get("response_sources")
        rows.append({"prompt_id": str(row["prompt_id"]), "messages": msgs, "responses": responses, "ranks": ranks,
                     "response_sources": [str(x) for x in sources] if sources and len(sources) == len(ranks) else None})
    return rows


def read_texts(path: Path, quarantine: Quarantine, limit: int | None = None) -> list[str]:
    """Pretraining documents (``pretrain/`` column ``text``)."""
    texts = []
    for i, row in enumerate(read_table(path, ("text",))):
        try:
            texts.append(_text(row["text"], f"{path}: row {i}: text"))
        except ValueError as e:
            quarantine.add(path, i, "text", str(e))
        if limit is not None and len(texts) >= limit:
            break
    return texts
