"""``medalign data build --ray``: a recipe's per-record work on Ray Data, the same output as local.

The expensive, order-free part of a build - parsing, transforms (PII scrubbing), language
detection, dedup keys (MinHash signatures), row building - runs in Ray Data tasks, one per
*shard*: a byte range of a source file that starts at a record boundary
(``data_recipes/readers/shards.py``), so one big file is read by many tasks at once::

    shards (source, file, byte range, first line)  --map_batches(read + process_batch)-->  batches

with ``preserve_order`` so batches reach the driver in the global record order (sources in recipe
order, files sorted, shards and records in file order). The driver then runs the same
``data_recipes.build`` code as a local build (dedup decisions, mixing, splits, Parquet), so the
written rows are the same: dedup decisions do not depend on how records are batched
(transforms/dedup.py), and mixing samples fixed-size chunks of rows (mixing.py).

This is the only data-recipes module that imports ray.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Iterator

import ray

from data_recipes.build import build
from data_recipes.process import ProcessedBatch, SourceJob, batched_items, paced_gc, process_batch
from data_recipes.readers.shards import Shard, plan_shards
from data_recipes.recipe_load import ResolvedRecipe

log = logging.getLogger("medalign.data")

SHARD_BYTES = 32 << 20       # largest shard: ~45k MedDialog consultations, a few seconds of work
MIN_SHARD_BYTES = 64 << 10   # smallest shard a file is cut into to keep every CPU busy


def _process_shards(jobs: dict[int, SourceJob]):
    """Ray UDF: one shard row -> a stream of pickled ProcessedBatch (read, transform, rows, keys)."""
    def run(batch: dict) -> Iterator[dict]:
        rows = zip(batch["seq"], batch["source"], batch["file"], batch["start"], batch["end"], batch["line"])
        with paced_gc():
            for seq, source, file, start, end, line in rows:
                job, shard = jobs[int(source)], Shard(int(start), int(end), int(line))
                for chunk, items in enumerate(batched_items(job, Path(str(file)), shard=shard)):
                    done = process_batch(job, str(file), items)
                    yield {"seq": [int(seq)], "chunk": [chunk],
                           "batch": [pickle.dumps(done, protocol=pickle.HIGHEST_PROTOCOL)]}
    return run


def shard_size(file_bytes: int, cpus: int, shard_bytes: int = SHARD_BYTES) -> int:
    """Shard size for one file: ~4 shards per CPU, between MIN_SHARD_BYTES and ``shard_bytes``."""
    return min(shard_bytes, max(MIN_SHARD_BYTES, -(-file_bytes // (4 * max(cpus, 1)))))


def shard_rows(jobs: list[SourceJob], files: list[list[Path]], shard_bytes: int, cpus: int) -> list[dict]:
    """One row per shard of every file of every source, in the global order."""
    rows = []
    for job, source_files in zip(jobs, files):
        for file in source_files:
            size = shard_size(file.stat().st_size, cpus, shard_bytes)
            for shard in plan_shards(file, job.spec.format, size):
                rows.append({"seq": len(rows), "source": job.index, "file": str(file),
                             "start": shard.start, "end": shard.end, "line": shard.line})
    return rows


def ray_batches(jobs: list[SourceJob], files: list[list[Path]],
                shard_bytes: int = SHARD_BYTES) -> Iterator[ProcessedBatch]:
    """The pass-1 batches of a build, computed on Ray Data, in the global record order."""
    by_index = {job.index: job for job in jobs}
    rows = shard_rows(jobs, files, shard_bytes, int(ray.cluster_resources().get("CPU", 1)))
    log.info("ray build: %d shards of <= %d MB", len(rows), shard_bytes >> 20)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    dataset = (ray.data.from_items(rows, override_num_blocks=max(1, len(rows)))
               .map_batches(_process_shards(by_index), batch_size=1, batch_format="default"))
    last = (-1, -1)
    for row in dataset.iter_rows():
        position = (int(row["seq"]), int(row["chunk"]))
        if position <= last:  # preserve_order is what makes the output equal to a local build
            raise RuntimeError(f"Ray Data returned batches out of order: {position} after {last}")
        last = position
        yield pickle.loads(row["batch"])


def build_with_ray(resolved: ResolvedRecipe, out: str | Path, progress: bool = True,
                   address: str | None = None, num_cpus: int | None = None,
                   shard_bytes: int = SHARD_BYTES, staging=None) -> dict:
    """Build ``resolved`` into ``out`` with pass 1 on Ray Data; starts (and stops) a local Ray
    when none is running (``address``: join a cluster instead). ``shard_bytes``: the size of the
    largest byte range a source file is cut into (one Ray task each). ``staging``: the build's
    temporary folder when the caller made one (data_recipes.staging)."""
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 ignore_reinit_error=True)
    try:
        return build(resolved, out, progress=progress, staging=staging,
                     run_batches=lambda jobs, files: ray_batches(jobs, files, shard_bytes))
    finally:
        if started:
            ray.shutdown()
