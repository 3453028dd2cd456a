"""Temporary on-disk row spools between the two passes of a build (Arrow IPC files).

Pass 1 appends each mix component's candidate rows as Arrow record batches; the mixer then knows
how many rows each component has, and pass 2 streams the batches back (once per copy when
upsampling) and selects, interleaves and writes them with vectorised Arrow operations, so the
second pass does no per-row Python work. A spool is the build's own scratch file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pyarrow as pa


class SpoolWriter:
    """Append record batches of one schema; ``close()`` before reading."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = pa.ipc.new_stream(self._sink, schema)
        self.rows = 0

    def write(self, columns: dict[str, list]) -> None:
        """Append rows given as columns (names of ``schema``)."""
        batch = pa.RecordBatch.from_pydict(columns, schema=self.schema)
        if batch.num_rows:
            self._writer.write_batch(batch)
            self.rows += batch.num_rows

    def write_batch(self, batch: pa.RecordBatch) -> None:
        """Append a record batch of ``schema``."""
        if batch.num_rows:
            self._writer.write_batch(batch)
            self.rows += batch.num_rows

    def close(self) -> None:
        if not self._sink.closed:
            self._writer.close()
            self._sink.close()


class CountingSpool:
    """A spool that only counts rows (``data validate``: how many rows each component has)."""

    path = None

    def __init__(self) -> None:
        self.rows = 0

    def write_batch(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows

    def close(self) -> None:
        pass


def read_spool(path: Path) -> Iterator[pa.RecordBatch]:
    """The record batches of a closed spool, in write order."""
    with pa.OSFile(str(path), "rb") as source:
        reader = pa.ipc.open_stream(source)
        for batch in reader:
            yield batch
