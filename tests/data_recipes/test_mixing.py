"""Mixing arithmetic and selection: requested counts, exact-size sampling, upsampling, interleaving."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from data_recipes.mixing import ComponentPlan, mark_copy, mixed_groups, requested_counts, selected_batches
from data_recipes.spool import SpoolWriter, read_spool

SCHEMA = pa.schema([("id", pa.string()), ("i", pa.int64()), ("provenance", pa.string())])


def test_requested_counts_largest_remainder_sums_to_total():
    # 271.6, 308.7, 304.8, 114.9: floors sum to 997; the 3 largest remainders (.9 .8 .7) get +1
    assert requested_counts([0.2716, 0.3087, 0.3048, 0.1149], [0] * 4, 1000) == [271, 309, 305, 115]
    assert requested_counts([1 / 3, 1 / 3, 1 / 3], [0] * 3, 100) == [34, 33, 33]
    assert sum(requested_counts([0.25, 0.3, 0.25, 0.15, 0.05], [0] * 5, 2001)) == 2001
    assert requested_counts([500, "all"], [900, 77], None) == [500, 77]


def make_spool(tmp_path, n: int, block: int = 64):
    writer = SpoolWriter(tmp_path / f"s{n}-{block}.arrow", SCHEMA)
    for start in range(0, n, block):
        idx = list(range(start, min(n, start + block)))
        writer.write({"id": [f"r{i}" for i in idx], "i": idx, "provenance": [json.dumps({"n": i}) for i in idx]})
    writer.close()
    assert writer.rows == n
    assert [i for b in read_spool(writer.path) for i in b.column("i").to_pylist()] == list(range(n))
    return writer.path


def selected(spool, available, requested, seed=0) -> list[tuple[int, int]]:
    return [(i, copy) for batch, copy in selected_batches(spool, available, requested, np.random.default_rng(seed))
            for i in batch.column("i").to_pylist()]


@pytest.mark.parametrize("available, requested", [(100, 37), (100, 100), (3000, 2999), (10, 25), (7, 21), (130, 1)])
def test_selection_exact_size_and_copies(tmp_path, available, requested):
    rows = selected(make_spool(tmp_path, available), available, requested)
    assert len(rows) == requested
    per_row = Counter(i for i, _ in rows)
    lo, hi = divmod(requested, available)
    assert set(per_row.values()) <= {lo, lo + 1} - {0}
    assert Counter(c for _, c in rows)[0] == min(requested, available)   # every row once before any repeat


def test_selection_is_uniform(tmp_path):
    spool = make_spool(tmp_path, 20, block=3)
    hits = Counter()
    for seed in range(400):
        hits.update(i for i, _ in selected(spool, 20, 5, seed))
    # each row is taken with probability 1/4: 100 of 400 expected
    assert all(60 < hits[i] < 140 for i in range(20)), hits


def test_mark_copy_changes_id_and_provenance(tmp_path):
    batch = next(read_spool(make_spool(tmp_path, 3)))
    marked = mark_copy(batch, 2, "id")
    assert marked.column("id").to_pylist() == ["r0#r2", "r1#r2", "r2#r2"]
    assert json.loads(marked.column("provenance")[1].as_py()) == {"n": 1, "copy": 2}
    assert mark_copy(batch, 0, "id") is batch


def test_mixed_groups_counts_mixing_and_determinism(tmp_path):
    spools = [make_spool(tmp_path, 500), make_spool(tmp_path, 300), make_spool(tmp_path, 4000)]
    plans = [ComponentPlan(requested=1000, available=500), ComponentPlan(requested=300, available=300),
             ComponentPlan(requested=3000, available=4000)]

    def run(seed):
        out = [(int(c), row["id"]) for table, owners in mixed_groups(spools, plans, seed, 0, "id", group=512)
               for c, row in zip(owners, table.to_pylist())]
        return out

    rows = run(3)
    assert Counter(c for c, _ in rows) == {0: 1000, 1: 300, 2: 3000}
    assert len(set(rows)) == len(rows)                              # repeats got their own ids
    first = [c for c, _ in rows[:430]]                              # the first 10% holds ~10% of each
    assert 50 < first.count(0) < 150 and 10 < first.count(1) < 60
    assert rows == run(3) and rows != run(4)
