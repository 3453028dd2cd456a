"""``medalign data preview RECIPE -n 5``: the first records of each source, transformed, and the
rows every output component would build from them (no dedup, no mixing, nothing written)."""

from __future__ import annotations

import json
from itertools import islice
from typing import Iterator

from data_recipes.process import batched_items, process_batch, source_jobs
from data_recipes.recipe_load import ResolvedRecipe
from data_recipes.records import Record
from data_recipes.transforms import BUILDER_KINDS, BUILDERS, DEFAULT_BUILDER, OUTPUT_KINDS
from medalign.config import ConfigError


def _short(obj: object, limit: int = 600) -> str:
    text = json.dumps(obj, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def preview(resolved: ResolvedRecipe, n: int = 5, only: str | None = None) -> Iterator[str]:
    """Lines describing the first ``n`` items of each source (or only source ``only``; an
    unknown name is a ConfigError listing the recipe's sources, raised before any line)."""
    names = [s.name for s in resolved.recipe.sources]
    if only is not None and only not in names:
        raise ConfigError([f"--source {only!r}: {resolved.path} has no source of that name; "
                           f"its sources are: {', '.join(names)}"])
    return _preview_lines(resolved, n, only)


def _preview_lines(resolved: ResolvedRecipe, n: int, only: str | None) -> Iterator[str]:
    recipe = resolved.recipe
    jobs = source_jobs(resolved)
    components = [(kind, c.build or DEFAULT_BUILDER[kind], c.source)
                  for kind in OUTPUT_KINDS if getattr(recipe.outputs, kind)
                  for c in getattr(recipe.outputs, kind).mix]
    for job, files in zip(jobs, resolved.source_files):
        src = job.spec
        if only and src.name != only:
            continue
        yield f"== source {src.name} ({src.format}, {src.origin}) from {files[0]}"
        items = list(islice((item for f in files for batch in batched_items(job, f) for item in batch), n))
        batch = process_batch(job, str(files[0]), items, keep_records=True)
        for q in batch.quarantined:
            yield f"  QUARANTINED{' (unanswered)' if q.unanswered else ''} line {q.source_line}: {q.reason}"
        for (name, reason), count in batch.dropped.items():
            yield f"  dropped by {name} ({reason}): {count}"
        for record in batch.records:
            yield from _record_lines(record, [(k, b) for k, b, s in components if s == src.name])
        if batch.transform_counts:
            yield f"  transform counts: {_short({k: dict(v) for k, v in batch.transform_counts.items()})}"


def _record_lines(record: Record, builds: list[tuple[str, str]]) -> Iterator[str]:
    yield f"  -- record {record.id} ({record.kind}, {record.language}) line {record.source_line}"
    for turn in record.turns:
        yield f"     {turn.role}: {_short(turn.content, 200)}"
    if record.text:
        yield f"     text: {_short(record.text, 200)}"
    for response, rank in zip(record.responses or [], record.ranks or []):
        yield f"     response rank {rank}: {_short(response, 200)}"
    for kind, build in builds:
        if record.kind not in BUILDER_KINDS[build]:
            yield f"     -> {kind}/{build}: cannot use a {record.kind} record"
            continue
        for row in BUILDERS[kind][build](record):
            yield f"     -> {kind}/{build} #{row['suffix']}: {_short({k: v for k, v in row.items() if k not in ('suffix', 'turn')})}"
