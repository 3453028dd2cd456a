"""``medalign data build --ray``: a recipe's per-record work on Ray Data, the same output as local.

The expensive, order-free part of a build - parsing, transforms (PII scrubbing), language
detection, dedup keys (MinHash signatures) - runs in Ray Data tasks:

    files  --map_batches(read: generator of item chunks)-->  chunks  --map_batches(process_batch)-->  batches

with ``preserve_order`` so batches reach the driver in the global record order (sources in recipe
order, files sorted, lines in file order). The driver then runs the same ``data_recipes.build``
code as a local build (dedup decisions, mixing, splits, Parquet), so the written rows are the
same. Dedup decisions are independent of how records are batched (see transforms/dedup.py),
which is what makes the two paths agree.

This is the only data-recipes module that imports ray.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Iterator

import ray

from data_recipes.build import build
from data_recipes.process import ProcessedBatch, SourceJob, batched_items, process_batch
from data_recipes.recipe_load import ResolvedRecipe

log = logging.getLogger("medalign.data")


def _read_chunks(jobs: dict[int, SourceJob]):
    """Ray UDF: one file row -> a stream of pickled item chunks (the reader streams the file)."""
    def read(batch: dict) -> Iterator[dict]:
        for seq, source, file in zip(batch["seq"], batch["source"], batch["file"]):
            for chunk, items in enumerate(batched_items(jobs[int(source)], Path(str(file)))):
                yield {"seq": [int(seq)], "chunk": [chunk], "source": [int(source)], "file": [str(file)],
                       "items": [pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL)]}
    return read


def _process_chunks(jobs: dict[int, SourceJob]):
    """Ray UDF: pickled item chunks -> pickled ProcessedBatch (transforms + dedup keys)."""
    def process(batch: dict) -> dict:
        out = []
        for source, file, items in zip(batch["source"], batch["file"], batch["items"]):
            done = process_batch(jobs[int(source)], str(file), pickle.loads(items))
            out.append(pickle.dumps(done, protocol=pickle.HIGHEST_PROTOCOL))
        return {"seq": batch["seq"], "chunk": batch["chunk"], "batch": out}
    return process


def ray_batches(jobs: list[SourceJob], files: list[list[Path]]) -> Iterator[ProcessedBatch]:
    """The pass-1 batches of a build, computed on Ray Data, in the global record order."""
    by_index = {job.index: job for job in jobs}
    rows = [{"seq": seq, "source": index, "file": str(file)}
            for seq, (index, file) in enumerate((job.index, f) for job, fs in zip(jobs, files) for f in fs)]
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    dataset = (ray.data.from_items(rows, override_num_blocks=max(1, len(rows)))
               .map_batches(_read_chunks(by_index), batch_size=1, batch_format="default")
               .map_batches(_process_chunks(by_index), batch_size=1, batch_format="default"))
    last = (-1, -1)
    for row in dataset.iter_rows():
        position = (int(row["seq"]), int(row["chunk"]))
        if position <= last:  # preserve_order is what makes the output equal to a local build
            raise RuntimeError(f"Ray Data returned batches out of order: {position} after {last}")
        last = position
        yield pickle.loads(row["batch"])


def build_with_ray(resolved: ResolvedRecipe, out: str | Path, progress: bool = True,
                   address: str | None = None, num_cpus: int | None = None) -> dict:
    """Build ``resolved`` into ``out`` with pass 1 on Ray Data; starts (and stops) a local Ray
    when none is running (``address``: join a cluster instead)."""
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 ignore_reinit_error=True)
    try:
        return build(resolved, out, progress=progress, run_batches=ray_batches)
    finally:
        if started:
            ray.shutdown()
