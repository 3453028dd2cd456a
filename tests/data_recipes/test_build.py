"""End-to-end builds: contract columns, splits by consultation, mixing, dedup across sources,
quarantine, decontamination, determinism."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from data_recipes.build import build
from data_recipes.recipe_load import find_recipe, load_recipe
from medalign.config import ConfigError

CONTRACT = {
    "sft": ["id", "consultation_id", "messages", "origin", "source", "language", "provenance"],
    "prompts": ["prompt_id", "consultation_id", "messages", "reference", "origin", "source", "language",
                "department", "provenance"],
    "preferences": ["prompt_id", "messages", "chosen", "rejected", "margin", "source", "provenance"],
    "ranked": ["prompt_id", "messages", "responses", "ranks", "response_sources", "source", "provenance"],
    "pretrain": ["id", "text", "source", "provenance"],
}
SPLITS = ("train", "validation", "test")


def rows(out: Path, kind: str) -> dict[str, list[dict]]:
    return {s: pq.read_table(out / kind / f"{s}.parquet").to_pylist() for s in SPLITS}


def test_quickstart_writes_every_contracted_column(quickstart_build):
    out, report = quickstart_build
    assert set(report["outputs"]) == set(CONTRACT)
    for kind, columns in CONTRACT.items():
        for split in SPLITS:
            assert pq.read_schema(out / kind / f"{split}.parquet").names == columns, (kind, split)
    assert (out / "quarantine.jsonl").is_file() and (out / "build_report.json").is_file()
    assert not (out / ".spool").exists() and not (out.parent / f".{out.name}.building").exists()


def test_outputs_load_with_the_documented_datasets_one_liner(quickstart_build, tmp_path):
    """data_recipes/recipes/README.md: load_dataset("parquet", data_dir=<out>/<kind>) -> train/validation/test."""
    import datasets

    out, report = quickstart_build
    ds = datasets.load_dataset("parquet", data_dir=str(out / "sft"), cache_dir=str(tmp_path))
    assert set(ds) == set(SPLITS)
    assert {s: len(ds[s]) for s in SPLITS} == report["outputs"]["sft"]["by_split"]
    assert sum(len(ds[s]) for s in SPLITS) == report["outputs"]["sft"]["total_actual"] == 400
    message = ds["train"][0]["messages"][-1]
    assert message["role"] == "assistant" and message["content"]


def test_no_consultation_in_two_splits(quickstart_build):
    out, _ = quickstart_build
    split_of: dict[str, set] = defaultdict(set)
    for kind, id_column in [("sft", "consultation_id"), ("prompts", "consultation_id"),
                            ("preferences", "prompt_id"), ("ranked", "prompt_id"), ("pretrain", "id")]:
        for split, table in rows(out, kind).items():
            for row in table:
                split_of[row[id_column].split("#")[0]].add(split)
    assert len(split_of) > 300
    assert all(len(s) == 1 for s in split_of.values())
    assert {next(iter(s)) for s in split_of.values()} == set(SPLITS)


def test_requested_equals_actual_per_component_source_and_origin(quickstart_build):
    _, report = quickstart_build
    sft = report["outputs"]["sft"]
    assert sft["total_requested"] == sft["total_actual"] == 400
    assert [c["requested"] for c in sft["components"]] == [220, 120, 20, 20, 20]   # 0.55/0.3/0.05/0.05/0.05
    for section in report["outputs"].values():
        for c in section["components"]:
            assert c["actual"] == c["requested"] <= c["available"]
        for group in ("by_source", "by_origin"):
            for g in section[group].values():
                assert g["actual"] == g["requested"] and g["actual_fraction"] == g["requested_fraction"]
    assert sft["by_origin"]["distilled"]["requested_fraction"] == 0.1
    assert report["outputs"]["prompts"]["components"][0]["weight"] == {"count": "all", "upsample": False}


def test_report_counts_scrubbing_and_provenance(quickstart_build, recipe_corpus):
    out, report = quickstart_build
    doctor = report["sources"]["doctor_dialogues"]
    assert doctor["records_read"] == 200 and doctor["quarantined"] == 0
    assert sum(doctor["pii_spans"].values()) > 0               # the corpus plants fake phones, names ...
    assert doctor["transform_counts"]["merge_consecutive_speakers"]["merged_turns"] > 0
    assert report["dedup"]["index_bytes_per_record"] > 0
    row = rows(out, "sft")["train"][0]
    prov = json.loads(row["provenance"])
    assert prov["recipe_hash"] == report["recipe"]["hash"] and prov["recipe"] == "quickstart"
    from medalign.artifacts import sha256_file

    corpus_file = Path(prov["file"])                        # resolved, not a ${corpus} template
    assert corpus_file.is_absolute() and corpus_file.parent == recipe_corpus.resolve()
    assert prov["sha256"] == sha256_file(corpus_file) and prov["line"] >= 1 and prov["record_id"]
    assert {"path": prov["file"], "sha256": prov["sha256"], "bytes": corpus_file.stat().st_size} in \
        report["sources"][row["source"]]["files"]
    assert row["consultation_id"] == f"{row['source']}:{prov['record_id']}"
    everything = "".join(json.dumps(r["messages"], ensure_ascii=False)
                         for split in rows(out, "sft").values() for r in split)
    assert "<PHONE>" in everything or "<NAME>" in everything or "<EMAIL>" in everything


def test_prompts_carry_references_and_departments(quickstart_build):
    out, report = quickstart_build
    prompts = [r for split in rows(out, "prompts").values() for r in split]
    # a prompt at every doctor turn (per_turn_prompts): first turns (the patient's opening alone) and later ones
    consultations = {p["consultation_id"] for p in prompts}
    assert len(consultations) >= 200 - report["eval"]["removed_training_rows"]["prompts"]   # eval overlaps removed
    assert len(prompts) > len(consultations) and any(len(p["messages"]) == 1 for p in prompts)
    assert all(p["messages"][-1]["role"] == "user" for p in prompts)
    assert sum(p["reference"] is not None for p in prompts) >= 0.9 * len(prompts)
    assert all(p["department"] for p in prompts)
    ranked = rows(out, "ranked")["train"][0]
    assert ranked["ranks"] == [0, 1, 2, 3] and ranked["response_sources"][0] == "doctor"


def test_build_is_deterministic(quickstart_build, recipe_corpus, tmp_path):
    out, report = quickstart_build
    again = build(load_recipe(find_recipe("quickstart"), ["outputs.sft.total=400"], {"corpus": str(recipe_corpus)}),
                  tmp_path)
    assert again["outputs"] == report["outputs"]
    for kind in CONTRACT:
        for split in SPLITS:
            assert pq.read_table(tmp_path / kind / f"{split}.parquet").equals(
                pq.read_table(out / kind / f"{split}.parquet")), (kind, split)


def _jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


SMALL = """
name: t
seed: 0
sources:
{sources}
outputs:
  sft:
    mix:
{mix}
{extra}
"""


def _recipe(write_recipe, sources: list[tuple[str, str]], extra: str = "") -> Path:
    src = "".join(f"  - {{name: {n}, path: {p}, format: huatuo_sft, origin: real_doctor}}\n" for n, p in sources)
    mix = "".join(f"      - {{source: {n}, count: all}}\n" for n, _ in sources)
    return write_recipe(SMALL.format(sources=src.rstrip("\n"), mix=mix.rstrip("\n"), extra=extra))


def test_dedup_across_sources_exact_and_near(recipe_corpus, write_recipe, tmp_path):
    base = (recipe_corpus / "huatuo_distilled_instructions_zh.jsonl").read_text(encoding="utf-8").splitlines()[:60]
    english = (recipe_corpus / "huatuo_real_qa_en.jsonl").read_text(encoding="utf-8").splitlines()[:15]
    near = [line.replace("。", "！", 1) for line in base[20:30]]          # one character changed
    _jsonl(tmp_path / "a.jsonl", base)
    _jsonl(tmp_path / "b.jsonl", base[:10] + near + english)
    solo = build(load_recipe(_recipe(write_recipe, [("a", "a.jsonl")])), tmp_path / "solo")
    a_kept = solo["sources"]["a"]["kept"]
    report = build(load_recipe(_recipe(write_recipe, [("a", "a.jsonl"), ("b", "b.jsonl")])), tmp_path / "out")
    assert report["sources"]["a"]["kept"] == a_kept                       # earlier sources win
    b = report["sources"]["b"]
    assert b["exact_duplicates"] == 10 and b["near_duplicates"] == 10 and b["kept"] == 15
    assert report["dedup"] == report["dedup"] | {"exact": 10, "near": 10 + solo["dedup"]["near"]}
    # within_source scope keeps cross-source copies
    scoped = _recipe(write_recipe, [("a", "a.jsonl"), ("b", "b.jsonl")], "dedup: {scope: within_source}")
    assert build(load_recipe(scoped), tmp_path / "scoped")["sources"]["b"]["kept"] == 35


def test_quarantine_path_and_max_fraction(recipe_corpus, write_recipe, tmp_path):
    good = (recipe_corpus / "huatuo_real_qa_zh.jsonl").read_text(encoding="utf-8").splitlines()[:20]
    _jsonl(tmp_path / "q.jsonl", good[:5] + ['{"data": ["问：没有闭合的', '{"text": "no data field"}'] + good[5:])
    path = _recipe(write_recipe, [("q", "q.jsonl")], "max_quarantine_fraction: 0.2")
    report = build(load_recipe(path), tmp_path / "out")
    src = report["sources"]["q"]
    assert src["quarantined"] == 2 and src["records_read"] == 20 and report["quarantine"]["total"] == 2
    lines = [json.loads(x) for x in (tmp_path / "out" / "quarantine.jsonl").read_text(encoding="utf-8").splitlines()]
    file = str((tmp_path / "q.jsonl").resolve())
    assert [(q["source"], q["file"], q["line"]) for q in lines] == [("q", file, 6), ("q", file, 7)]
    assert all(q["reason"] and q["text"] and q["scrubbed"] for q in lines)
    strict = _recipe(write_recipe, [("q", "q.jsonl")], "max_quarantine_fraction: 0.05")
    with pytest.raises(ConfigError) as err:
        build(load_recipe(strict), tmp_path / "strict")
    problem, kept = err.value.problems
    assert f"{strict}:4: sources[q]:" in problem and "2 of 22 records" in problem
    assert "max_quarantine_fraction=0.05" in problem
    failed = tmp_path / "strict.failed-quarantine.jsonl"          # the failed build wrote nothing into its --out
    assert kept.endswith(str(failed)) and not (tmp_path / "strict").exists()
    assert failed.read_text(encoding="utf-8").count("\n") == 2


def test_decontamination_drops_train_rows_that_overlap_eval(recipe_corpus, write_recipe, tmp_path):
    from data_recipes.writers import split_of

    lines = (recipe_corpus / "huatuo_distilled_instructions_zh.jsonl").read_text(encoding="utf-8").splitlines()[:80]
    _jsonl(tmp_path / "train.jsonl", lines)
    _jsonl(tmp_path / "eval.jsonl", lines[:30])
    extra = ("decontaminate: {against: [{path: eval.jsonl, format: huatuo_sft}], ngram_chars: 30}\n"
             "dedup: {exact: false, near: null}")
    report = build(load_recipe(_recipe(write_recipe, [("t", "train.jsonl")], extra)), tmp_path / "out")
    dropped = report["outputs"]["sft"]["components"][0]["contaminated_rows"]
    assert report["decontamination"]["contaminated_rows"]["sft"] == dropped
    assert report["decontamination"]["eval_texts"] == 30
    eval_ids = {f"t:train:{i}" for i in range(1, 31)}
    in_train = {cid for cid in eval_ids if split_of(cid, 0, 0.9, 0.05) == 0}
    written = rows(tmp_path / "out", "sft")
    assert in_train and dropped >= len(in_train)
    assert not eval_ids & {r["consultation_id"] for r in written["train"]}
    # only train rows are decontaminated: the eval records' validation/test rows are all there
    assert eval_ids - in_train == eval_ids & {r["consultation_id"] for s in ("validation", "test") for r in written[s]}
