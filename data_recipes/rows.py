"""Rows of one mix component from a batch of records: builder output + ids, split, provenance.

This runs with the per-record work (in Ray workers for ``--ray``), before dedup decisions: every
record's rows are built, with ``record_index`` saying which record made each row, so the build
can keep the rows of the records dedup keeps with one vectorised filter. The exact keys for
row-level dedup and the contamination flags of train rows are computed here too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from data_recipes.records import Record
from data_recipes.transforms import BUILDER_KINDS, BUILDERS
from data_recipes.transforms.decontaminate import EvalNgramIndex
from data_recipes.transforms.shingles import encode_batch, exact_keys
from data_recipes.writers import ID_COLUMN, SPLIT_COLUMN, split_of, spool_schema

_PLAIN_ID = re.compile(r"[A-Za-z0-9_.:/#@+-]*")     # ids JSON holds without escapes


@dataclass
class ComponentJob:
    """What building one component's rows needs (picklable)."""

    kind: str                 # output kind
    index: int                # position in the output's mix
    build: str                # builder name
    source: str
    origin: str
    provenance: dict          # recipe, recipe_hash, transforms, build
    seed: int
    train: float
    validation: float
    dedup_rows: bool


@dataclass
class RowBlock:
    """A component's rows for one batch of records, before dedup and decontamination filters."""

    batch: pa.RecordBatch            # spool schema (output columns + split index)
    record_index: np.ndarray         # (R,) which record of the batch made each row
    row_keys: np.ndarray | None      # (R,) uint64 exact keys, when the output drops duplicate rows
    contaminated: np.ndarray | None  # (R,) True for train rows sharing an n-gram with an eval set


def build_rows(job: ComponentJob, records: list[Record], file: str,
               eval_index: EvalNgramIndex | None = None) -> RowBlock:
    """Every row the component's builder makes of ``records`` (file: provenance display path)."""
    rows, owners = _rows(job, records, file)
    schema = spool_schema(job.kind)
    batch = pa.RecordBatch.from_pydict({name: [r.get(name) for r in rows] for name in schema.names},
                                       schema=schema)
    keys = exact_keys(encode_batch([row_text(job.kind, r, False) for r in rows])) if job.dedup_rows else None
    dirty = None
    if eval_index is not None:
        dirty = np.zeros(len(rows), dtype=bool)
        train = [i for i, r in enumerate(rows) if r[SPLIT_COLUMN] == 0]
        if train:
            dirty[train] = eval_index.contaminated([row_text(job.kind, rows[i], True) for i in train])
    return RowBlock(batch=batch, record_index=np.array(owners, dtype=np.int64), row_keys=keys, contaminated=dirty)


def _rows(job: ComponentJob, records: list[Record], file: str) -> tuple[list[dict], list[int]]:
    build, accepted, id_column = BUILDERS[job.kind][job.build], BUILDER_KINDS[job.build], ID_COLUMN[job.kind]
    prefix = json.dumps({"file": file, **job.provenance}, ensure_ascii=False)[:-1]
    rows, owners = [], []
    for index, record in enumerate(records):
        if record.kind not in accepted:
            continue
        made = build(record)
        if not made:
            continue
        cid = f"{job.source}:{record.id}"
        split = split_of(cid, job.seed, job.train, job.validation)
        rid = f'"{record.id}"' if _PLAIN_ID.fullmatch(record.id) else json.dumps(record.id, ensure_ascii=False)
        where = f'{prefix}, "line": {record.source_line}, "record_id": {rid}'
        for part in made:
            turn = part.pop("turn", None)
            part[id_column] = f"{cid}#{part.pop('suffix')}"
            part["provenance"] = where + (f', "turn": {turn}}}' if turn is not None else "}")
            part.update(consultation_id=cid, source=job.source, origin=job.origin, language=record.language)
            part[SPLIT_COLUMN] = split
            rows.append(part)
            owners.append(index)
    return rows, owners


def row_text(kind: str, row: dict, with_answers: bool) -> str:
    """The text a row is compared on: its prompt (and, when asked, every answer in it)."""
    parts = [f"{m['role']}\u241f{m['content']}" for m in row.get("messages") or []]
    if kind == "pretrain":
        parts.append(row["text"])
    elif kind == "preferences":
        parts += [row["chosen"], row["rejected"]]
    elif kind == "ranked":
        parts += row["responses"]
    elif kind == "prompts" and with_answers and row.get("reference"):
        parts.append(row["reference"])
    return "\u241e".join(parts)
