"""Parquet writers for the outputs (columns exactly as docs/CONTRACTS.md "Dataset columns").

Each output kind is written as ``<out>/<kind>/{train,validation,test}.parquet`` (all three,
an empty split as an empty file with the schema), loadable by
``datasets.load_dataset("parquet", data_dir=...)``. Rows arrive in groups (Arrow tables) and
are written as row groups, so memory stays bounded. They are written into the build's staging
folder (staging.py), which is moved into place once the whole build succeeded.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SPLITS = ("train", "validation", "test")
ROW_GROUP = 8192

MESSAGE_FIELDS = [pa.field("role", pa.string()), pa.field("content", pa.string())]
_MESSAGES = pa.list_(pa.struct(MESSAGE_FIELDS))
SCHEMAS: dict[str, pa.Schema] = {
    "sft": pa.schema([("id", pa.string()), ("consultation_id", pa.string()), ("messages", _MESSAGES),
                      ("origin", pa.string()), ("source", pa.string()), ("language", pa.string()),
                      ("provenance", pa.string())]),
    "prompts": pa.schema([("prompt_id", pa.string()), ("consultation_id", pa.string()),
                          ("messages", _MESSAGES), ("reference", pa.string()), ("origin", pa.string()),
                          ("source", pa.string()), ("language", pa.string()), ("department", pa.string()),
                          ("provenance", pa.string())]),
    "preferences": pa.schema([("prompt_id", pa.string()), ("messages", _MESSAGES), ("chosen", pa.string()),
                              ("rejected", pa.string()), ("margin", pa.float64()), ("source", pa.string()),
                              ("provenance", pa.string())]),
    "ranked": pa.schema([("prompt_id", pa.string()), ("messages", _MESSAGES),
                         ("responses", pa.list_(pa.string())), ("ranks", pa.list_(pa.int64())),
                         ("response_sources", pa.list_(pa.string())), ("source", pa.string()),
                         ("provenance", pa.string())]),
    "pretrain": pa.schema([("id", pa.string()), ("text", pa.string()), ("source", pa.string()),
                           ("provenance", pa.string())]),
    "cases": pa.schema([("case_id", pa.string()), ("consultation_id", pa.string()), ("messages", _MESSAGES),
                        ("reply", pa.string()), ("department", pa.string()), ("diagnosis", pa.string()),
                        ("doctor", pa.string()), ("doctor_profile", pa.string()), ("origin", pa.string()),
                        ("source", pa.string()), ("language", pa.string()), ("provenance", pa.string())]),
}
ID_COLUMN = {"sft": "id", "prompts": "prompt_id", "preferences": "prompt_id", "ranked": "prompt_id",
             "pretrain": "id", "cases": "case_id"}


SPLIT_COLUMN = "_split"          # spools only: index into SPLITS


def spool_schema(kind: str) -> pa.Schema:
    """An output's columns plus the split index (spools carry the split decided in pass 1)."""
    return SCHEMAS[kind].append(pa.field(SPLIT_COLUMN, pa.int8()))


def _split_digest(consultation_id: str, seed: int) -> bytes:
    """The 8-byte seeded hash a consultation's split is drawn from."""
    return hashlib.blake2b(f"{seed}\0{consultation_id}".encode("utf-8"), digest_size=8).digest()


def split_of(consultation_id: str, seed: int, train: float, validation: float) -> int:
    """The split (index into SPLITS) of a consultation: a seeded hash of its id, so every row of
    a consultation, in every output, lands in the same split."""
    u = int.from_bytes(_split_digest(consultation_id, seed), "little") / 2.0**64
    if u < train:
        return 0
    return 1 if u < train + validation else 2


def splits_of(consultation_ids: list[str], seed: int, train: float, validation: float) -> list[int]:
    """:func:`split_of` of many ids: the same hashes, compared as one array (the uint64 -> float
    conversion rounds as Python's int -> float does, so the result is identical)."""
    digests = b"".join([_split_digest(cid, seed) for cid in consultation_ids])
    u = np.frombuffer(digests, dtype="<u8").astype(np.float64) / 2.0**64
    return np.where(u < train, 0, np.where(u < train + validation, 1, 2)).tolist()


class OutputWriter:
    """Writes one output kind's three split files from tables that carry the split column;
    each split's rows are buffered up to ROW_GROUP rows, so row groups are not tiny."""

    def __init__(self, out_dir: Path, kind: str) -> None:
        self.kind = kind
        self.schema = SCHEMAS[kind]
        self.dir = out_dir / kind
        self.dir.mkdir(parents=True, exist_ok=True)
        self._writers = {s: pq.ParquetWriter(self.dir / f"{s}.parquet", self.schema) for s in SPLITS}
        self._buffers: dict[str, list[pa.Table]] = {s: [] for s in SPLITS}

    def write(self, table: pa.Table) -> np.ndarray:
        """Queue each row for its split's file; returns the split index of every row."""
        split = table.column(SPLIT_COLUMN).to_numpy()
        body = table.drop_columns([SPLIT_COLUMN])
        for index, name in enumerate(SPLITS):
            mask = split == index
            if mask.any():
                self._buffers[name].append(body.filter(pa.array(mask)))
                if sum(t.num_rows for t in self._buffers[name]) >= ROW_GROUP:
                    self._flush(name)
        return split

    def _flush(self, name: str) -> None:
        if self._buffers[name]:
            table = pa.concat_tables(self._buffers[name])
            self._writers[name].write_table(table, row_group_size=max(table.num_rows, 1))
            self._buffers[name] = []

    def close(self) -> None:
        for name, writer in self._writers.items():
            self._flush(name)
            writer.close()
