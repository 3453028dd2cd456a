"""Per-record work of a build: read, transform, fill the language, compute dedup keys, build
every mix component's rows (with split, provenance, row keys and contamination flags).

This is the embarrassingly parallel part. The local build runs it in-process; the Ray build
(``jobs/ray_data_build.py``) runs the same :func:`process_batch` in Ray Data workers. What
depends on order (dedup decisions, row dedup, mixing, writing) happens afterwards in
``build.py`` on batches in the global record order, with vectorised filters, so both paths
write the same rows.
"""

from __future__ import annotations

import gc
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Iterator

from data_recipes.readers.shards import Shard
from data_recipes.recipe import Source
from data_recipes.recipe_load import ResolvedRecipe
from data_recipes.records import Quarantined, Record
from data_recipes.rows import ComponentJob, PartTable, RowBlock, build_rows, record_keys
from data_recipes.transforms import DEFAULT_BUILDER, OUTPUT_KINDS, apply_transforms
from data_recipes.transforms.decontaminate import EvalNgramIndex, EvalSetIndex
from data_recipes.transforms.dedup import DedupKeys, dedup_keys
from data_recipes.transforms.filters import record_texts

BATCH_SIZE = 2048         # records per batch: per-batch numpy/Arrow overheads amortised, still streaming
GC_YOUNG_THRESHOLD = 50_000   # allocations between young collections during a build (Python's default: 700)


@contextmanager
def paced_gc() -> Iterator[None]:
    """Run the cyclic garbage collector less often for the duration (restored afterwards).

    A build allocates millions of short-lived, acyclic objects (turns, records, row lists). At
    Python's default threshold the collector ran ~2,000 times per 100k consultations, and its
    older-generation passes walk every live object: ~1 s of a 15 s build. Reference counting
    still frees everything at once; only cycles wait a little longer."""
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], GC_YOUNG_THRESHOLD), old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)


@dataclass
class SourceJob:
    """What a worker needs to process one source's records (picklable)."""

    index: int            # position of the source in the recipe (global order)
    spec: Source
    near: bool            # compute MinHash signatures?
    num_perm: int
    shingle: int
    components: list[ComponentJob] = field(default_factory=list)   # mix components fed by this source
    files: dict[str, dict[str, str]] = field(default_factory=dict)  # file -> head of its rows' provenance
    eval_index: EvalNgramIndex | None = None                        # for decontaminating train rows
    eval_sets: EvalSetIndex | None = None                           # the recipe's eval sets (all rows)


@dataclass
class ProcessedBatch:
    """One batch of one source after per-record work, in read order."""

    source_index: int
    file: str                                     # path of the file the batch came from
    kinds: list[str] = field(default_factory=list)               # record kind, per record kept by transforms
    languages: list[str | None] = field(default_factory=list)    # language, per record
    quarantined: list[Quarantined] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)            # (transform, reason) -> n
    transform_counts: dict[str, Counter] = field(default_factory=dict)
    keys: DedupKeys | None = None                 # dedup keys, per record
    blocks: dict[tuple[str, int], RowBlock] = field(default_factory=dict)   # (output, component) -> rows
    items: int = 0                                # records + quarantined read
    records: list[Record] | None = None           # the records themselves (preview only)


def source_jobs(resolved: ResolvedRecipe, eval_index: EvalNgramIndex | None = None,
                files: dict[str, dict[str, str]] | None = None,
                eval_sets: EvalSetIndex | None = None) -> list[SourceJob]:
    """One job per source, with the mix components it feeds (in output order). ``files``: each
    input file's provenance head (``inputs.BuildInputs.provenance``; default: its path alone)."""
    recipe, near = resolved.recipe, resolved.recipe.dedup.near
    files = files or {}
    jobs = [SourceJob(index=i, spec=s, near=near is not None, num_perm=near.num_perm if near else 64,
                      shingle=near.shingle_chars if near else 5, eval_index=eval_index, eval_sets=eval_sets,
                      files={str(f): files.get(str(f), {"file": str(f)}) for f in source_files})
            for i, (s, source_files) in enumerate(zip(recipe.sources, resolved.source_files))]
    by_name = {job.spec.name: job for job in jobs}
    for kind in OUTPUT_KINDS:
        output = getattr(recipe.outputs, kind)
        for j, comp in enumerate(output.mix if output else []):
            job = by_name[comp.source]
            build = comp.build or DEFAULT_BUILDER[kind]
            job.components.append(ComponentJob(
                kind=kind, index=j, build=build, source=job.spec.name, origin=job.spec.origin,
                provenance={"recipe": recipe.name, "recipe_hash": resolved.recipe_hash,
                            "transforms": [t.name for t in job.spec.transforms], "build": build},
                seed=recipe.seed, train=recipe.splits.train, validation=recipe.splits.validation,
                dedup_rows=output.dedup_rows))
    return jobs


def read_items(job: SourceJob, file: Path, shard: Shard | None = None) -> Iterator[Record | Quarantined]:
    """The reader's stream for one file of a source (or for one byte-range shard of it, see
    readers/shards.py). A declared language (not ``auto``) is passed to the reader as every
    record's language (no per-record detection)."""
    from data_recipes.readers import read_source
    from data_recipes.readers.shards import read_shard

    options = dict(job.spec.reader_options)
    if job.spec.language != "auto":
        options.setdefault("language", job.spec.language)
    if shard is None:
        yield from read_source(file, job.spec.format, **options)
    else:
        yield from read_shard(file, job.spec.format, shard, **options)


def record_text(record: Record) -> str:
    """The text a record is deduplicated on: every utterance, document and response."""
    return "\n".join(record_texts(record))


def process_batch(job: SourceJob, file: str, items: list[Record | Quarantined],
                  keep_records: bool = False) -> ProcessedBatch:
    """Transform a batch of reader items; compute dedup keys and every component's rows."""
    from data_recipes.lang import detect_language

    out = ProcessedBatch(source_index=job.index, file=file, items=len(items))
    declared = None if job.spec.language == "auto" else job.spec.language
    records = []
    for item in items:
        if isinstance(item, Quarantined):
            out.quarantined.append(item)
            continue
        result = apply_transforms(item, job.spec.transforms, out.transform_counts)
        if item.defect is not None:          # a reader's problem no transform repaired
            out.quarantined.append(item.defect)
            continue
        if isinstance(result, tuple):
            name, drop = result
            out.dropped[(name, drop.reason)] += 1
            continue
        if result.language is None:
            result.language = declared or detect_language(record_text(result)[:400])
        records.append(result)
    out.kinds = [r.kind for r in records]
    out.languages = [r.language for r in records]
    out.keys = dedup_keys([record_text(r) for r in records], job.near, job.num_perm, job.shingle)
    if job.components:
        where, parts, first = job.files.get(file, {"file": file}), PartTable(), job.components[0]
        keys = record_keys(records, job.spec.name, first.seed, first.train, first.validation)
        for comp in job.components:
            out.blocks[(comp.kind, comp.index)] = build_rows(comp, records, where, keys, parts, job.eval_index,
                                                             job.eval_sets)
    if keep_records:
        out.records = records
    return out


def batched_items(job: SourceJob, file: Path, size: int = BATCH_SIZE,
                  shard: Shard | None = None) -> Iterator[list[Record | Quarantined]]:
    """The reader's stream for one file (or shard), cut into lists of ``size`` items."""
    items = read_items(job, file, shard)
    while batch := list(islice(items, size)):
        yield batch


def local_batches(jobs: list[SourceJob], files: list[list[Path]]) -> Iterator[ProcessedBatch]:
    """Every source's batches in global order (sources in recipe order, files sorted), in-process."""
    for job, source_files in zip(jobs, files):
        for file in source_files:
            for items in batched_items(job, file):
                yield process_batch(job, str(file), items)
