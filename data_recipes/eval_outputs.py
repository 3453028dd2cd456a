"""A recipe's eval sets (``outputs.eval``): written whole, apart from training, and kept out of it.

Before pass 1 of a build (build.py), every eval set's source is read and transformed like any
source (malformed records quarantined, transforms counted), each record becomes one eval case
(data_recipes/eval_cases.py: ``eval/<name>.parquet``), and the cases' patient messages go into
an :class:`~data_recipes.transforms.decontaminate.EvalSetIndex`. Pass 1 then reads only the
training sources and removes every row of every training output, in every split, one of whose
texts overlaps an eval case (exact, near duplicate or a shared window: ``eval_overlap``); each
removed row is counted per component (``eval_overlap_rows``) and written to quarantine.jsonl with
the case it overlaps. Two things fail a build with one line: a file read by an eval source and by
a training source (the same bytes, wherever they are), and a written training row that still
equals an eval message (:func:`check_no_overlap`, a guard over the written Parquet).

A record becomes a case only if its turns end with the patient (the question the model answers);
``category`` is the record's ``category`` (our format), ``label`` (KUAKE-QIC's intent) or
``department`` (Med-dialog cases); ``truth``, ``case_card`` and ``rubric`` come from our format
only (null for the real sets: ground-truth metrics do not apply to them).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from data_recipes.eval_cases import EVAL_DIR, EVAL_SCHEMA, json_or_none
from data_recipes.records import Quarantined, Record
from data_recipes.transforms import apply_transforms
from data_recipes.transforms.decontaminate import MATCH_KINDS, EvalSetIndex
from data_recipes.transforms.shingles import encode_batch, exact_keys
from medalign.config import ConfigError


def eval_index_for(recipe) -> EvalSetIndex:
    """An empty index with the recipe's ``eval_overlap`` settings."""
    o = recipe.eval_overlap
    return EvalSetIndex(o.threshold, o.num_perm, o.bands, o.shingle_chars, o.ngram_chars)


def build_eval_sets(state, out_dir: Path | None) -> tuple[EvalSetIndex | None, dict | None]:
    """Read every eval set's source (``state``: build.FirstPass, whose source stats, quarantine
    and file counts it fills), write ``out_dir/eval/<name>.parquet`` (nothing when ``out_dir`` is
    None) and return the frozen index of their patient messages and the sets' report section."""
    recipe = state.recipe
    if not recipe.outputs.eval:
        return None, None
    index, sets = eval_index_for(recipe), {}
    by_name = {s.name: i for i, s in enumerate(recipe.sources)}
    for ev in recipe.outputs.eval:
        i = by_name[ev.source]
        rows = _read_cases(state, i, ev)
        for row in rows:
            index.add(ev.name, row["case_id"], [m["content"] for m in row["messages"] if m["role"] == "user"])
        if out_dir is not None:
            (out_dir / EVAL_DIR).mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pylist(rows, schema=EVAL_SCHEMA), out_dir / EVAL_DIR / f"{ev.name}.parquet")
        sets[ev.name] = {"source": ev.source, "cases": len(rows),
                         "with_truth": sum(r["truth"] is not None for r in rows),
                         "languages": dict(sorted(Counter(r["language"] for r in rows).items())),
                         "categories": len({r["category"] for r in rows})}
        state.check_quarantine(i)
    index.freeze()
    return index, {"sets": sets, "overlap": recipe.eval_overlap.model_dump(mode="json"),
                   "patient_messages": index.messages}


def _read_cases(state, i: int, ev) -> list[dict]:
    """The eval rows of source ``i`` (at most ``ev.max_cases``), quarantining what cannot be a case."""
    from data_recipes.process import SourceJob, read_items

    spec, stats = state.recipe.sources[i], state.sources[i]
    job = SourceJob(index=i, spec=spec, near=False, num_perm=64, shingle=5)
    head = {"recipe": state.recipe.name, "recipe_hash": state.resolved.recipe_hash,
            "transforms": [t.name for t in spec.transforms], "build": "eval_set"}
    rows, seen, counts = [], set(), {}
    for file in state.resolved.source_files[i]:
        where = state.describe(file)
        for item in read_items(job, file):
            stats.read += 1
            state.file_items[str(file)] += 1
            result = item if isinstance(item, Quarantined) else apply_transforms(item, spec.transforms, counts)
            if isinstance(result, tuple):
                stats.dropped[f"{result[0]}: {result[1].reason}"] += 1
                continue
            problem = _case_problem(result, seen)
            if problem is not None:
                stats.add_quarantine(problem.reason)
                state.quarantine.write(spec, problem)
                continue
            stats.kept += 1
            stats.languages[result.language] += 1
            if ev.max_cases is None or len(rows) < ev.max_cases:
                rows.append(_case_row(result, ev.name, {**_file_head(where), **head}))
    for name, c in counts.items():
        stats.transform_counts.setdefault(name, Counter()).update(c)
    return rows


def _case_problem(item: Record | Quarantined, seen: set[str]) -> Quarantined | None:
    """A reader's quarantined item, or why a record cannot be an eval case (None: it can)."""
    if isinstance(item, Quarantined):
        return item
    why = None
    if not item.turns or item.turns[-1].role != "user":
        why = "an eval case must end with a patient (user) turn"
    elif item.id in seen:
        why = f"duplicate case id {item.id!r} in the eval set"
    seen.add(item.id)
    if why is None:
        return None
    return Quarantined(item.source_file, item.source_line, why, json.dumps(
        {"id": item.id, "turns": [[t.role, t.content] for t in item.turns]}, ensure_ascii=False))


def _file_head(where: dict) -> dict:
    """``{"file", "sha256"}`` of an input as provenance records it (``inputs.InputFile.to_json``)."""
    return {"file": where.get("path", where.get("file")), **({"sha256": where["sha256"]} if "sha256" in where else {})}


def _case_row(record: Record, name: str, provenance: dict) -> dict:
    meta = record.meta
    category = meta.get("category") or meta.get("label") or meta.get("department") or None
    return {"case_id": record.id, "eval_set": name, "language": record.language,
            "messages": [{"role": t.role, "content": t.content} for t in record.turns],
            "category": category, "reference": meta.get("reference"), "truth": json_or_none(meta.get("truth")),
            "case_card": json_or_none(meta.get("case_card")), "rubric": json_or_none(meta.get("rubric")),
            "provenance": json.dumps({**provenance, "line": record.source_line, "record_id": record.id},
                                     ensure_ascii=False)}


def shared_content_problems(resolved, inputs) -> list[str]:
    """A file of an eval source with the same bytes (sha256) as a file of a training source."""
    from data_recipes.recipe_load import eval_source_indices

    evals = eval_source_indices(resolved.recipe)
    trained = {inputs[f].sha256: i for i, files in enumerate(resolved.source_files) if i not in evals for f in files}
    problems = []
    for i in sorted(evals):
        for f in resolved.source_files[i]:
            other = trained.get(inputs[f].sha256)
            if other is not None:
                problems.append(f"{resolved.where(('sources', i, 'path'))}: file {f} of eval source "
                                f"{resolved.recipe.sources[i].name!r} has the same content as a file of training "
                                f"source {resolved.recipe.sources[other].name!r}: an eval set is never trained on")
    return problems


def quarantine_overlaps(state, spec, file: str, kind: str, batch: pa.RecordBatch, case: list[int],
                        match: list[int]) -> None:
    """Write the removed training rows (``batch``: the rows, ``case``/``match`` per row) to quarantine.jsonl."""
    ids = batch.column(0).to_pylist()
    provenance = batch.column(batch.schema.get_field_index("provenance")).to_pylist()
    messages = batch.column(batch.schema.get_field_index("messages")).to_pylist() \
        if "messages" in batch.schema.names else [None] * len(ids)
    cases = state.eval_sets.cases
    for row_id, prov, msgs, c, m in zip(ids, provenance, messages, case, match):
        eval_set, case_id = cases[c]
        line = json.loads(prov).get("line", 0)
        text = next((x["content"] for x in msgs or [] if x["role"] == "user"), "") if msgs else ""
        state.quarantine.write(spec, Quarantined(
            file, line, f"training row {row_id} of {kind} overlaps eval set {eval_set!r} case {case_id!r} "
                        f"({MATCH_KINDS[m]}): removed", text))


def check_no_overlap(state, out_dir: Path) -> None:
    """After writing: no written training row may hold a text equal to an eval message (a guard on
    the build's own filtering; ConfigError naming the output, the row and the case)."""
    index, problems = state.eval_sets, []
    for kind in state.outputs:
        for path in sorted((out_dir / kind).glob("*.parquet")):
            table = pq.read_table(path)
            texts, owners = _row_texts(table)
            if not texts:
                continue
            case = index.exact_cases(exact_keys(encode_batch(texts)))
            hit = [(owners[j], c) for j, c in enumerate(case.tolist()) if c >= 0]
            if hit:
                row_id = table.column(0)[hit[0][0]].as_py()
                eval_set, case_id = index.cases[hit[0][1]]
                problems.append(f"{state.resolved.path}: outputs.{kind} ({path.name}): {len({h[0] for h in hit})} "
                                f"rows still overlap eval set {eval_set!r} after decontamination (e.g. row {row_id} "
                                f"equals case {case_id!r}); the build refuses to write training data that holds an eval case")
    if problems:
        raise ConfigError(problems)


def _row_texts(table: pa.Table) -> tuple[list[str], list[int]]:
    """Every message, answer and document text of a written output, with the row it belongs to."""
    texts, owners = [], []
    if "messages" in table.column_names:
        lists = table.column("messages").combine_chunks()
        counts = pc.list_value_length(lists).fill_null(0).to_numpy()
        contents = pc.struct_field(pc.list_flatten(lists), "content").to_pylist()
        texts += contents
        owners += [r for r, n in enumerate(counts.tolist()) for _ in range(n)]
    for name in ("text", "chosen", "rejected", "reference"):
        if name in table.column_names:
            values = table.column(name).to_pylist()
            texts += [v for v in values if v]
            owners += [r for r, v in enumerate(values) if v]
    if "responses" in table.column_names:
        for r, values in enumerate(table.column("responses").to_pylist()):
            texts += list(values or [])
            owners += [r] * len(values or [])
    return texts, owners
