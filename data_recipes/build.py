"""``medalign data build``: turn a recipe into the datasets the training stages read.

Two streaming passes, with memory independent of the input size except the dedup index:

1. Read every source in recipe order (files sorted), transform, quarantine malformed records,
   build each mix component's rows with their split (by consultation id) and provenance
   (``process.py``, ``rows.py``); then, in the global order, drop duplicate records (exact +
   MinHash, see transforms/dedup.py) with their rows, contaminated train rows and duplicate rows,
   and spool the rest to disk. Now every component's available row count is known.
2. Decide the requested counts (an impossible mix is a ConfigError naming the recipe line), then
   stream the spools back, select and interleave rows (mixing.py) and write Parquet.

Outputs: ``<out>/<kind>/{train,validation,test}.parquet``, ``<out>/eval/<set>.parquet`` (the
recipe's eval sets, read before pass 1: eval_outputs.py), ``build_report.json`` and
``quarantine.jsonl``, written into a temporary folder beside ``out`` and moved in when the build
is complete (staging.py): a failed build leaves the previous one intact. ``build_report.json``
holds only what the inputs decide (counts, recipe hash, each input's sha256), so rebuilding the
same inputs gives the same bytes; timings and absolute paths are returned apart (``timings``,
``run``) for the command to print and the data stage to put in its manifest.

The per-record work of pass 1 is :func:`data_recipes.process.process_batch`, which the Ray build
runs in parallel; everything here consumes batches in the global order. :func:`check_build` runs
pass 1 and the row-count plan without writing anything (``medalign data validate``).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from itertools import compress
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pyarrow as pa

from data_recipes.eval_outputs import build_eval_sets, check_no_overlap, quarantine_overlaps, shared_content_problems
from data_recipes.inputs import BuildInputs
from data_recipes.mixing import ComponentPlan, mixed_groups, requested_counts
from data_recipes.process import ProcessedBatch, SourceJob, local_batches, paced_gc, record_text, source_jobs
from data_recipes.quarantine import QuarantineWriter
from data_recipes.recipe_load import ResolvedRecipe, eval_source_indices
from data_recipes.report import ComponentStats, SourceStats, output_report
from data_recipes.rows import RowBlock
from data_recipes.spool import CountingSpool, SpoolWriter
from data_recipes.staging import Staging
from data_recipes.transforms import BUILDER_KINDS, DEFAULT_BUILDER, OUTPUT_KINDS
from data_recipes.transforms.decontaminate import MATCH_KINDS, EvalNgramIndex, EvalSetIndex
from data_recipes.transforms.dedup import EXACT, KEEP, NEAR, Deduplicator, first_occurrence
from data_recipes.transforms.keyindex import HashKeyIndex
from data_recipes.writers import ID_COLUMN, SPLITS, OutputWriter, spool_schema
from medalign.artifacts import write_json_atomic
from medalign.config import ConfigError

log = logging.getLogger("medalign.data")


class FirstPass:
    """Pass 1 state: dedup index, per-source and per-component counters, spools (row counters
    only when ``spool_dir`` is None)."""

    def __init__(self, resolved: ResolvedRecipe, quarantine: QuarantineWriter, spool_dir: Path | None,
                 files: Callable[[Path], dict] = lambda f: {"path": str(f)}) -> None:
        recipe = self.recipe = resolved.recipe
        self.resolved = resolved
        near = recipe.dedup.near
        self.dedup = Deduplicator(exact=recipe.dedup.exact, near=near is not None,
                                  threshold=near.threshold if near else 1.0,
                                  num_perm=near.num_perm if near else 64, bands=near.bands if near else 16)
        self.describe = files                        # file -> {"path", "sha256", "bytes"} as the report shows it
        self.sources = [SourceStats(s.name, s.format, s.origin, [files(f) for f in source_files])
                        for s, source_files in zip(recipe.sources, resolved.source_files)]
        self.quarantine = quarantine
        self.file_items: Counter = Counter()         # file -> items read (records + quarantined)
        self.warnings: list[str] = []
        self.outputs = {k: getattr(recipe.outputs, k) for k in OUTPUT_KINDS if getattr(recipe.outputs, k)}
        self.row_index = {k: HashKeyIndex() for k, o in self.outputs.items() if o.dedup_rows}
        self.components: dict[str, list[ComponentStats]] = {}
        self.spools: dict[str, list[SpoolWriter | CountingSpool]] = {}
        index_of = {s.name: i for i, s in enumerate(recipe.sources)}
        for kind, output in self.outputs.items():
            self.components[kind], self.spools[kind] = [], []
            for j, comp in enumerate(output.mix):
                src = recipe.sources[index_of[comp.source]]
                weight = {"fraction": comp.fraction} if comp.fraction is not None else {"count": comp.count}
                self.components[kind].append(ComponentStats(
                    kind, src.name, src.origin, comp.build or DEFAULT_BUILDER[kind], weight | {"upsample": comp.upsample}))
                self.spools[kind].append(CountingSpool() if spool_dir is None else
                                         SpoolWriter(spool_dir / f"{kind}-{j}.arrow", spool_schema(kind)))
        self._current: int | None = None
        self.eval_sources = eval_source_indices(recipe)     # read before pass 1 (eval_outputs.py)
        self.eval_sets: EvalSetIndex | None = None
        self.eval_report: dict | None = None
        self.eval_matches: Counter = Counter()             # removed training rows by match kind

    def consume(self, batch: ProcessedBatch) -> None:
        """Account for one processed batch; spool the rows of the records dedup keeps."""
        if self._current is not None and batch.source_index != self._current:
            self.check_quarantine(self._current)
        self._current = batch.source_index
        stats, spec = self.sources[batch.source_index], self.recipe.sources[batch.source_index]
        stats.read += batch.items
        self.file_items[batch.file] += batch.items
        for q in batch.quarantined:
            stats.add_quarantine(q.reason, q.unanswered)
            self.quarantine.write(spec, q)
        for (name, reason), n in batch.dropped.items():
            stats.dropped[f"{name}: {reason}"] += n
        for name, counts in batch.transform_counts.items():
            stats.transform_counts.setdefault(name, type(counts)()).update(counts)
        within = self.recipe.dedup.scope == "within_source"
        scope = np.full(len(batch.kinds), batch.source_index if within else 0)
        decisions = self.dedup.check(batch.keys, scope)
        kept = decisions == KEEP
        stats.exact_duplicates += int((decisions == EXACT).sum())
        stats.near_duplicates += int((decisions == NEAR).sum())
        stats.kept += int(kept.sum())
        stats.languages.update(compress(batch.languages, kept))
        for (kind, j), block in batch.blocks.items():
            self._spool_block(kind, j, block, kept, batch.kinds, (spec, batch.file))

    def _spool_block(self, kind: str, j: int, block: RowBlock, kept: np.ndarray, kinds: list[str],
                     origin: tuple) -> None:
        """Keep the rows of kept records, minus contaminated train rows, rows overlapping an eval
        set (quarantined with the case they overlap) and duplicate rows."""
        stats = self.components[kind][j]
        accepted = BUILDER_KINDS[stats.build]
        usable = np.array([k in accepted for k in kinds], dtype=bool)
        for i in np.flatnonzero(kept & ~usable):
            stats.unusable_records[kinds[i]] += 1
        made = np.bincount(block.record_index, minlength=len(kinds))
        stats.records_without_rows += int((kept & usable & (made == 0)).sum())
        mask = kept[block.record_index]
        stats.rows_built += int(mask.sum())
        if block.contaminated is not None:
            stats.contaminated_rows += int((mask & block.contaminated).sum())
            mask &= ~block.contaminated
        if block.eval_case is not None:
            hit = mask & (block.eval_case >= 0)
            if hit.any():
                stats.eval_overlap_rows += int(hit.sum())
                self.eval_matches.update(MATCH_KINDS[m] for m in block.eval_match[hit].tolist())
                quarantine_overlaps(self, origin[0], origin[1], kind, block.batch.filter(pa.array(hit)),
                                    block.eval_case[hit].tolist(), block.eval_match[hit].tolist())
                mask &= ~hit
        if block.row_keys is not None and mask.any():
            idx = np.flatnonzero(mask)
            first = first_occurrence(self.row_index[kind], block.row_keys[idx])
            stats.duplicate_rows += int((~first).sum())
            mask[idx[~first]] = False
        self.spools[kind][j].write_batch(block.batch.filter(pa.array(mask)))

    def check_quarantine(self, index: int) -> None:
        """Fail when a source's share of malformed records exceeds its max_quarantine_fraction
        (unanswered consultations are quarantined but not malformed: they do not count)."""
        stats, spec = self.sources[index], self.recipe.sources[index]
        limit = spec.max_quarantine_fraction
        limit = self.recipe.max_quarantine_fraction if limit is None else limit
        if not stats.read or stats.malformed / stats.read <= limit:
            return
        reasons = dict(stats.quarantine_reasons.most_common(5))
        if stats.malformed == stats.read:
            raise ConfigError([
                f"{self.resolved.where(('sources', index, 'format'))}: every one of the {stats.read} records of "
                f"source {stats.name!r} is malformed: is format {spec.format!r} right for its files? "
                f"reasons: {reasons}"])
        raise ConfigError([
            f"{self.resolved.where(('sources', index))}: {stats.malformed} of {stats.read} records of "
            f"source {stats.name!r} are malformed ({stats.malformed / stats.read:.1%}), above "
            f"max_quarantine_fraction={limit:g}; reasons: {reasons}; see quarantine.jsonl"])

    def check_empty_files(self) -> None:
        """A source file that gave no record at all is an error, or a counted warning with
        ``allow_empty: true`` on the source."""
        problems = []
        for i, (spec, files) in enumerate(zip(self.recipe.sources, self.resolved.source_files)):
            empty = [f for f in files if not self.file_items[str(f)]]   # eval sources: counted by eval_outputs
            self.sources[i].empty_files = len(empty)
            for file in empty:
                if spec.allow_empty:
                    self.warnings.append(f"source {spec.name!r}: file {self.describe(file)['path']} has no "
                                         f"records (allow_empty: true)")
                else:
                    problems.append(f"{self.resolved.where(('sources', i, 'path'))}: file {file} of source "
                                    f"{spec.name!r} has no records (an empty file); remove it, or set "
                                    f"allow_empty: true on the source")
        if problems:
            raise ConfigError(problems)

    def finish(self) -> None:
        """End of pass 1: check the last source and empty files, close the spools."""
        if self._current is not None:
            self.check_quarantine(self._current)
        self.check_empty_files()
        if self.quarantine.raw and self.quarantine.count:
            self.warnings.append(f"quarantine.jsonl holds the raw text of {self.quarantine.count} malformed "
                                 f"records, not scrubbed (quarantine_raw: true): it may contain personal information")
        self.close()

    def close(self) -> None:
        for spools in self.spools.values():
            for spool in spools:
                spool.close()
        self.quarantine.close()


def plan_outputs(state: FirstPass) -> dict[str, list[ComponentPlan]]:
    """Requested counts per component; ConfigError (recipe file, line, field) when unmet."""
    plans, problems = {}, []
    for kind, output in state.outputs.items():
        comps = state.components[kind]
        available = [s.rows for s in state.spools[kind]]
        weights = [c.fraction if c.fraction is not None else c.count for c in output.mix]
        requested = requested_counts(weights, available, output.total)
        for j, (comp, stats) in enumerate(zip(output.mix, comps)):
            stats.available, stats.requested = available[j], requested[j]
            field = "fraction" if comp.fraction is not None else "count"
            if requested[j] > available[j] and (not comp.upsample or available[j] == 0):
                hint = "the source gives no rows" if available[j] == 0 else "lower it or set upsample: true"
                problems.append(
                    f"{state.resolved.where(('outputs', kind, 'mix', j, field))}: asks for {requested[j]} rows "
                    f"but source {comp.source!r} gives {available[j]} ({stats.build}, after quarantine, "
                    f"filters and dedup); {hint}")
        plans[kind] = [ComponentPlan(requested=r, available=a) for r, a in zip(requested, available)]
    if problems:
        raise ConfigError(problems)
    return plans


def write_outputs(state: FirstPass, plans: dict[str, list[ComponentPlan]], out: Path,
                  progress: bool = False) -> None:
    """Pass 2: select, interleave and write every output into ``out`` (the staging folder)."""
    from tqdm import tqdm

    for index, kind in enumerate(OUTPUT_KINDS):
        if kind not in plans:
            continue
        writer = OutputWriter(out, kind)
        comps = state.components[kind]
        spools = [s.path for s in state.spools[kind]]
        total = sum(p.requested for p in plans[kind])
        with tqdm(total=total, desc=f"write {kind}", unit="row", disable=not progress, mininterval=1.0) as bar:
            for table, owners in mixed_groups(spools, plans[kind], state.recipe.seed, index, ID_COLUMN[kind]):
                split = writer.write(table)
                counts = np.bincount(owners * len(SPLITS) + split, minlength=len(comps) * len(SPLITS))
                for c, stats in enumerate(comps):
                    for s, name in enumerate(SPLITS):
                        stats.written[name] += int(counts[c * len(SPLITS) + s])
                bar.update(table.num_rows)
        writer.close()


BatchRunner = Callable[[list[SourceJob], list[list[Path]]], Iterable[ProcessedBatch]]


def first_pass(state: FirstPass, resolved: ResolvedRecipe, run_batches: BatchRunner, progress: bool,
               eval_index: EvalNgramIndex | None = None, files: dict | None = None) -> None:
    """Pass 1: every training source's batches into ``state`` (eval sets were read before, see
    eval_outputs.py), then its end-of-pass checks."""
    from tqdm import tqdm

    jobs = source_jobs(resolved, eval_index, files, state.eval_sets)
    keep = [i for i in range(len(jobs)) if i not in state.eval_sources]
    batches = run_batches([jobs[i] for i in keep], [resolved.source_files[i] for i in keep])
    with tqdm(desc="read+transform+dedup", unit="rec", disable=not progress, mininterval=1.0) as bar, \
            paced_gc():
        for batch in batches:
            state.consume(batch)
            bar.update(batch.items)
    state.finish()


def check_build(resolved: ResolvedRecipe, progress: bool = False) -> dict:
    """What a build would fail on, without writing anything: read every source (transforms,
    quarantine, empty files, dedup) and check that every output's row counts can be met.
    Raises ConfigError like :func:`build`; returns per-source and per-component counts."""
    state = FirstPass(resolved, QuarantineWriter(None, str), spool_dir=None)
    try:
        eval_index = _eval_index(resolved) if resolved.recipe.decontaminate else None
        state.eval_sets, state.eval_report = build_eval_sets(state, None)
        first_pass(state, resolved, local_batches, progress, eval_index)
        plan_outputs(state)
    finally:
        state.close()
    return {"sources": {s.name: {"read": s.read, "quarantined": s.quarantined, "unanswered": s.unanswered,
                                 "kept": s.kept, "empty_files": s.empty_files} for s in state.sources},
            "outputs": {kind: [{"source": c.source, "build": c.build, "requested": c.requested,
                                "available": c.available} for c in comps]
                        for kind, comps in state.components.items()},
            "eval": (state.eval_report or {}).get("sets", {}),
            "warnings": state.warnings}


def build(resolved: ResolvedRecipe, out: str | Path, progress: bool = False,
          run_batches: BatchRunner = local_batches, staging: Staging | None = None) -> dict:
    """Build a resolved recipe into ``out``; returns the build report (the part that is written
    to ``out/build_report.json``, plus ``timings`` and ``run``: absolute paths of the recipe and
    inputs). ``run_batches(jobs, files)`` runs the per-record work and yields its batches in the
    global order: in-process by default, on Ray Data for ``--ray``. Everything is written into
    ``staging`` (default: a new one beside ``out``) and moved into ``out`` when complete."""
    staging = staging or Staging(out)
    t0 = time.perf_counter()
    try:
        report, timings, inputs = _build_into(resolved, staging, progress, run_batches)
    except BaseException as e:
        kept = staging.abort()
        if isinstance(e, ConfigError) and kept:
            raise ConfigError([*e.problems, f"the failed build's quarantined records: {kept}"]) from None
        raise
    staging.commit()
    timings["total_s"] = round(time.perf_counter() - t0, 3)
    log.info("built %s into %s in %.1fs: %s", resolved.recipe.name, staging.out, timings["total_s"],
             {k: v["total_actual"] for k, v in report["outputs"].items()})
    return {**report, "timings": timings, "run": _run_info(resolved, staging, inputs)}


def _build_into(resolved: ResolvedRecipe, staging: Staging, progress: bool,
                run_batches: BatchRunner) -> tuple[dict, dict, BuildInputs]:
    """The build itself, into ``staging.dir``: (report, timings, inputs)."""
    recipe, t0 = resolved.recipe, time.perf_counter()
    inputs = BuildInputs(resolved, staging)
    spool_dir = staging.dir / ".spool"
    spool_dir.mkdir()
    quarantine = QuarantineWriter(staging.dir / "quarantine.jsonl", inputs.recorded, raw=recipe.quarantine_raw)
    state = FirstPass(resolved, quarantine, spool_dir, lambda f: inputs[f].to_json())
    try:
        problems = shared_content_problems(resolved, inputs)
        if problems:
            raise ConfigError(problems)
        eval_index = _eval_index(resolved) if recipe.decontaminate else None
        state.eval_sets, state.eval_report = build_eval_sets(state, staging.dir)
        first_pass(state, resolved, run_batches, progress, eval_index, inputs.provenance())
        t1 = time.perf_counter()
        write_outputs(state, plan_outputs(state), staging.dir, progress)
        if state.eval_sets is not None:
            check_no_overlap(state, staging.dir)
        t2 = time.perf_counter()
    finally:
        state.close()
        shutil.rmtree(spool_dir, ignore_errors=True)
    report = _report(resolved, state, eval_index, inputs)
    write_json_atomic(staging.dir / "build_report.json", report)
    return report, {"read_transform_dedup_s": round(t1 - t0, 3), "mix_write_s": round(t2 - t1, 3)}, inputs


def _eval_index(resolved: ResolvedRecipe) -> EvalNgramIndex:
    from data_recipes.readers import read_source
    from data_recipes.records import Record

    index = EvalNgramIndex(resolved.recipe.decontaminate.ngram_chars)
    for spec, files in zip(resolved.recipe.decontaminate.against, resolved.eval_files):
        for file in files:
            texts = [record_text(r) for r in read_source(file, spec.format) if isinstance(r, Record)]
            index.add(texts)
    return index.freeze()


def _report(resolved: ResolvedRecipe, state: FirstPass, eval_index: EvalNgramIndex | None,
            inputs: BuildInputs) -> dict:
    """``build_report.json``: what the inputs decide, nothing that depends on when or where."""
    recipe, dedup = resolved.recipe, state.dedup
    seen = max(dedup.records_seen, 1)
    return {
        "recipe": {"name": recipe.name, "hash": resolved.recipe_hash, "seed": recipe.seed,
                   "variables": sorted(resolved.variables)},
        "sources": {s.name: s.to_json() for s in state.sources},
        "quarantine": {"total": sum(s.quarantined for s in state.sources),
                       "by_source": {s.name: s.quarantined for s in state.sources},
                       "unanswered": sum(s.unanswered for s in state.sources),
                       "scrubbed": not state.quarantine.raw,
                       "pii_spans": dict(sorted(state.quarantine.pii_spans.items()))},
        "dedup": {"exact": sum(s.exact_duplicates for s in state.sources),
                  "near": sum(s.near_duplicates for s in state.sources),
                  "records_checked": dedup.records_seen, "index_bytes": dedup.nbytes,
                  "index_bytes_per_record": round(dedup.nbytes / seen, 1),
                  "config": recipe.dedup.model_dump(mode="json")},
        "decontamination": None if eval_index is None else {
            "files": [inputs[f].to_json() for files in resolved.eval_files for f in files],
            "eval_texts": eval_index.texts, "eval_ngrams": len(eval_index),
            "ngram_chars": eval_index.n,
            "contaminated_rows": {k: sum(c.contaminated_rows for c in cs) for k, cs in state.components.items()}},
        "outputs": {k: output_report(state.components[k], state.outputs[k].total) for k in state.components},
        "eval": None if state.eval_report is None else {
            **state.eval_report,
            "removed_training_rows": {k: sum(c.eval_overlap_rows for c in cs) for k, cs in state.components.items()},
            "removed_by_match": dict(sorted(state.eval_matches.items()))},
        "splits": recipe.splits.model_dump(mode="json"),
        "warnings": state.warnings,
    }


def _run_info(resolved: ResolvedRecipe, staging: Staging, inputs: BuildInputs) -> dict:
    """Where this build ran from: absolute paths (not in build_report.json, see the module doc)."""
    return {"recipe_path": str(Path(resolved.path).resolve()), "out": str(staging.out),
            "variables": {k: str(staging.final(v)) if Path(v).is_absolute() else v
                          for k, v in resolved.variables.items()},
            "files": inputs.absolute(staging)}
