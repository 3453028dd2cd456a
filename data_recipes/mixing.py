"""Mixing: how many rows each component gives, which ones, and in what order they are written.

* Requested counts: a fraction f of ``total`` is rounded by largest remainder, so the requested
  counts of an output sum to ``total`` exactly; a count is taken as is; ``all`` is what the
  component has.
* A component asked for more rows than it has is an error, unless ``upsample: true``: then every
  row is repeated ``requested // available`` times and a random ``requested % available`` of
  them once more. A repeat's id gets ``#r<k>`` and its provenance ``"copy": k``.
* Selection: the spool is read in chunks of ``SAMPLE_CHUNK`` rows (whatever batches it was
  written in, so the sample does not depend on how the build batched or sharded its input: a
  local and a Ray build select the same rows); the number of rows taken from a chunk of b rows,
  when ``needed`` of the ``left`` unseen rows are still to be taken, is drawn from the
  hypergeometric distribution (b, left - b, needed), then that many positions of the chunk are
  drawn uniformly. That is an exact-size uniform sample without replacement, in one pass, with
  memory bounded by a chunk.
* Order: rows are written in groups; each group's composition is drawn from the multivariate
  hypergeometric of the rows still owed by each component, and the group is shuffled, so a file
  is mixed throughout, not sorted by source.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from data_recipes.spool import read_spool

GROUP = 8192            # rows per write group (shuffled together)
SAMPLE_CHUNK = 4096     # rows per sampling step of a partial pass


def requested_counts(weights: list[float | int | str], available: list[int], total: int | None) -> list[int]:
    """Rows asked of each component: fractions of ``total`` (largest remainder), counts, or 'all'."""
    if total is not None:
        raw = [float(w) * total for w in weights]
        counts = [int(np.floor(x)) for x in raw]
        left = total - sum(counts)
        by_remainder = sorted(range(len(raw)), key=lambda i: (-(raw[i] - counts[i]), i))
        for i in by_remainder[:left]:
            counts[i] += 1
        return counts
    return [avail if w == "all" else int(w) for w, avail in zip(weights, available)]


@dataclass
class ComponentPlan:
    """One component's numbers, decided after pass 1."""

    requested: int
    available: int


def selected_batches(spool: Path, available: int, requested: int,
                     rng: np.random.Generator) -> Iterator[tuple[pa.RecordBatch, int]]:
    """Yield ``(batch of selected rows, copy)`` adding up to ``requested`` rows of a spool of
    ``available`` rows: full passes first (copy 0, 1, ...), then one sampled partial pass."""
    if requested <= 0:
        return
    if available <= 0:
        raise ValueError("cannot select rows from an empty component")
    full_passes, rest = divmod(requested, available)
    for copy in range(full_passes):
        for batch in read_spool(spool):
            yield batch, copy
    needed, left = rest, available
    for batch in fixed_chunks(read_spool(spool), SAMPLE_CHUNK) if rest else ():
        size = batch.num_rows
        take = int(rng.hypergeometric(size, left - size, needed)) if left > size else needed
        if take:
            positions = np.sort(rng.choice(size, take, replace=False))
            yield batch.take(pa.array(positions)), full_passes
        needed, left = needed - take, left - size
        if not needed:
            return


def fixed_chunks(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.RecordBatch]:
    """The rows of ``batches`` re-cut into batches of exactly ``size`` rows (the last one fewer)."""
    pending, have = [], 0
    for batch in batches:
        while batch.num_rows:
            take = min(size - have, batch.num_rows)
            pending.append(batch.slice(0, take))
            batch, have = batch.slice(take), have + take
            if have == size:
                yield pending[0] if len(pending) == 1 else pa.concat_batches(pending)
                pending, have = [], 0
    if pending:
        yield pending[0] if len(pending) == 1 else pa.concat_batches(pending)


def mark_copy(batch: pa.RecordBatch, copy: int, id_column: str) -> pa.RecordBatch:
    """Give repeated rows their own ids (``#r<copy>``) and record the copy in the provenance JSON."""
    if copy == 0:
        return batch
    ids = pc.binary_join_element_wise(batch.column(id_column), f"#r{copy}", "")
    provenance = batch.column("provenance")
    provenance = pc.binary_join_element_wise(pc.utf8_slice_codeunits(provenance, 0, -1),
                                             f', "copy": {copy}}}', "")
    columns = {name: batch.column(name) for name in batch.schema.names}
    columns[id_column], columns["provenance"] = ids, provenance
    return pa.RecordBatch.from_pydict(columns, schema=batch.schema)


def _pull(stream: Iterator[tuple[pa.RecordBatch, int]], pending: deque, n: int,
          id_column: str) -> list[pa.RecordBatch]:
    """Take exactly ``n`` rows from a component: leftovers first, then new batches."""
    out, have = [], 0
    while have < n:
        if not pending:
            batch, copy = next(stream)
            pending.append(mark_copy(batch, copy, id_column))
        batch = pending.popleft()
        if have + batch.num_rows > n:
            pending.appendleft(batch.slice(n - have))
            batch = batch.slice(0, n - have)
        out.append(batch)
        have += batch.num_rows
    return out


def mixed_groups(spools: list[Path], plans: list[ComponentPlan], seed: int, output_index: int,
                 id_column: str, group: int = GROUP) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """Groups of an output's rows, components interleaved at random: ``(table, component of each row)``."""
    streams = [selected_batches(spool, plan.available, plan.requested,
                                np.random.default_rng([seed, output_index, i]))
               for i, (spool, plan) in enumerate(zip(spools, plans))]
    pending = [deque() for _ in plans]
    rng = np.random.default_rng([seed, output_index, 1 << 20])
    remaining = np.array([p.requested for p in plans], dtype=np.int64)
    while remaining.sum() > 0:
        draw = rng.multivariate_hypergeometric(remaining, int(min(group, remaining.sum())))
        remaining -= draw
        parts, owners = [], []
        for component, n in enumerate(draw.tolist()):
            for batch in _pull(streams[component], pending[component], n, id_column) if n else ():
                parts.append(batch)
                owners.append(np.full(batch.num_rows, component, dtype=np.int32))
        order = rng.permutation(int(draw.sum()))
        yield pa.Table.from_batches(parts).take(pa.array(order)), np.concatenate(owners)[order]
