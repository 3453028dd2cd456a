"""Eval sets: the synthetic world's sets in the seeds' shapes, a recipe output of their own, never
trained on (decontamination of every training output, a build with overlap fails), and the real
KUAKE-QIC / Med-dialog samples as sets without ground truth."""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from data_recipes.build import build
from data_recipes.eval_cases import EvalCase
from data_recipes.recipe_load import load_recipe
from data_recipes.synthetic import corpus_records
from data_recipes.synthetic.case_cards import CaseCard
from data_recipes.synthetic.eval_sets import build_eval_multi_turn, build_eval_single_turn
from data_recipes.synthetic.world import DEPARTMENTS
from medalign.config import ConfigError

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"


def test_single_turn_set_is_ten_intents_by_ten_with_the_checks_that_apply():
    rows = build_eval_single_turn(100, random.Random(0), "zh")
    assert Counter(r["category"] for r in rows) == {label: 10 for label in (
        "病情诊断", "病因分析", "治疗方案", "就医建议", "指标解读", "疾病表述", "后果表述", "注意事项", "功效作用", "医疗费用")}
    cases = [EvalCase.model_validate(r) for r in rows]                 # the schema of the JSONL format
    by = {r["category"]: r["truth"]["expects"] for r in rows if r["category"] != "病情诊断"}
    assert by["就医建议"] == ["department"] and by["病因分析"] == ["diagnosis"] and by["治疗方案"] == ["red_flags"]
    diagnosis = [r["truth"] for r in rows if r["category"] == "病情诊断"]
    assert {tuple(t["expects"]) for t in diagnosis if t["missing_info"]} == {("asking",)}
    assert all(c.messages[-1].role == "user" and c.reference for c in cases)
    assert len({c.case_id for c in cases}) == 100
    # every case carries the demo rubric of the checks it expects (HealthBench format)
    for c in cases:
        points = {r.points for r in c.rubric}
        expects = set(c.truth.expects)
        assert (5 in points) == ("diagnosis" in expects) and (3 in points) == ("department" in expects)
        assert (2 in points) == ("red_flags" in expects) and (4 in points) == ("asking" in expects and c.truth.missing_info)
        assert any(p > 0 for p in points) and c.case_card is None


def test_multi_turn_set_is_twenty_departments_by_five_with_case_cards():
    rows = build_eval_multi_turn(100, random.Random(0), "en")
    assert len(DEPARTMENTS) == 20
    assert Counter(r["category"] for r in rows) == {d.name["en"]: 5 for d in DEPARTMENTS.values()}
    missing = sum(r["truth"]["missing_info"] for r in rows)
    assert 30 <= missing <= 85                                          # a share of them lack key information
    for r in rows:
        card, truth = CaseCard.model_validate(r["case_card"]), r["truth"]      # the patient's schema
        assert card.opening == r["messages"][0]["content"] and card.condition == truth["condition"]
        assert card.withheld_symptoms and not set(card.withheld_symptoms) & set(card.shown_symptoms)
        assert card.onset_told == (not truth["missing_info"])
        assert truth["missing_items"] == (["onset", "withheld_symptoms"] if truth["missing_info"] else [])
        assert truth["condition_names"] and truth["department_names"] and truth["red_flags"]
        assert r["rubric"] and EvalCase.model_validate(r).case_card == card


def test_training_qa_asks_the_same_kinds_of_questions():
    questions = [rec["data"][0] for rec in corpus_records.build_real_qa(400, random.Random(1), "zh")]
    for phrase in ("怎么治疗", "挂什么科", "有哪些症状", "要花多少钱", "是什么原因引起的"):
        assert any(phrase in q for q in questions), phrase


RECIPE = """
name: with_eval
seed: 0
origins: [eval]
sources:
  - {name: qa, path: "%(qa)s", format: huatuo_sft, origin: real_doctor, language: zh}
  - {name: single, path: "%(single)s", format: medalign_eval_cases, origin: eval}
  - {name: kuake, path: "%(kuake)s", format: kuake_qic, origin: eval, language: zh}
  - {name: cases, path: "%(cases)s", format: huatuo_meddialog_cases, origin: eval, language: zh}
outputs:
  eval:
    - {name: single, source: single}
    - {name: kuake_100, source: kuake}
    - {name: meddialog_100, source: cases}
  sft:
    mix: [{source: qa, count: all}]
  prompts:
    mix: [{source: qa, count: all, build: final_turn_prompt}]
"""


@pytest.fixture
def eval_recipe(tmp_path, recipe_corpus):
    """A recipe whose training QA holds three eval questions verbatim (and one near duplicate)."""
    single = tmp_path / "single.jsonl"
    rows = build_eval_single_turn(20, random.Random(5), "zh")
    single.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    qa = tmp_path / "qa.jsonl"
    lines = (recipe_corpus / "huatuo_real_qa_zh.jsonl").read_text(encoding="utf-8").splitlines()[:40]
    leaked = [rows[i]["messages"][0]["content"] for i in (0, 3, 7)]
    lines += [json.dumps({"data": ["问：" + q, "答：" + rows[i]["reference"]]}, ensure_ascii=False)
              for i, q in zip((0, 3, 7), leaked)]
    near = next(r["messages"][0]["content"] for k, r in enumerate(rows) if k not in (0, 3, 7)
                and len(r["messages"][0]["content"]) >= 25) + "谢谢"         # two characters more: near, not exact
    lines.append(json.dumps({"data": ["问：" + near, "答：好的。"]}, ensure_ascii=False))
    leaked.append(near)
    qa.write_text("\n".join(lines) + "\n", encoding="utf-8")
    text = RECIPE % {"qa": qa, "single": single, "kuake": REAL / "kuake_qic_100.json",
                     "cases": REAL / "meddialog_cases_100.json"}
    path = tmp_path / "recipe.yaml"
    path.write_text(text, encoding="utf-8")
    return path, rows, leaked


def test_eval_sets_are_written_whole_and_overlapping_training_rows_are_removed(eval_recipe, tmp_path):
    path, rows, leaked = eval_recipe
    out = tmp_path / "out"
    report = build(load_recipe(path), out)
    single = pq.read_table(out / "eval" / "single.parquet").to_pylist()
    assert [r["case_id"] for r in single] == [r["case_id"] for r in rows]
    assert json.loads(single[0]["truth"])["condition"] == rows[0]["truth"]["condition"]
    kuake = pq.read_table(out / "eval" / "kuake_100.parquet").to_pylist()
    cases = pq.read_table(out / "eval" / "meddialog_100.parquet").to_pylist()
    assert len(kuake) == len(cases) == 100 and kuake[0]["truth"] is None and kuake[0]["category"] == "功效作用"
    assert cases[0]["category"] == "皮肤科" and cases[0]["reference"].startswith("病情摘要")
    removed = report["eval"]["removed_training_rows"]
    # 3 verbatim + 1 near duplicate planted, per output (the templated corpus may hold a few more)
    assert removed["sft"] == removed["prompts"] >= 4 and report["eval"]["removed_by_match"]["near"] == 2
    for kind in ("sft", "prompts"):
        texts = [m["content"] for split in ("train", "validation", "test")
                 for r in pq.read_table(out / kind / f"{split}.parquet").to_pylist() for m in r["messages"]]
        assert not set(leaked) & set(texts)
    quarantined = [json.loads(x) for x in (out / "quarantine.jsonl").read_text(encoding="utf-8").splitlines()]
    reasons = [q["reason"] for q in quarantined if "overlaps eval set" in q["reason"]]
    assert len(reasons) == removed["sft"] + removed["prompts"] == sum(report["eval"]["removed_by_match"].values())
    assert any(f"case {rows[0]['case_id']!r} (exact)" in r for r in reasons)
    assert report["quarantine"]["total"] == 0                           # removed rows are not malformed records
    assert report["sources"]["single"]["records_read"] == 20 and report["eval"]["sets"]["single"]["with_truth"] == 20


def test_a_source_that_is_an_eval_set_and_trained_on_fails_with_one_line(eval_recipe):
    path, _, _ = eval_recipe
    text = path.read_text(encoding="utf-8").replace("mix: [{source: qa, count: all}]",
                                                    "mix: [{source: qa, count: all}, {source: single, count: all}]")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_recipe(path)
    (problem,) = err.value.problems
    assert f"{path}:" in problem and "outputs.eval.0.source: source 'single' is an eval set and also feeds outputs.sft" in problem


def test_a_file_read_as_eval_and_as_training_fails_by_path_and_by_content(eval_recipe, tmp_path):
    path, _, _ = eval_recipe
    single = tmp_path / "single.jsonl"
    text = path.read_text(encoding="utf-8")
    both = text.replace("  - {name: kuake,", f'  - {{name: leak, path: "{single}", format: medalign_eval_cases, '
                                            f'origin: eval}}\n  - {{name: kuake,')
    both = both.replace("    mix: [{source: qa, count: all}]\n  prompts", "    mix: [{source: qa, count: all}, "
                        "{source: leak, count: all}]\n  prompts")
    path.write_text(both, encoding="utf-8")
    with pytest.raises(ConfigError, match="file .*single.jsonl of eval source 'single' is also read by training source 'leak'"):
        load_recipe(path)
    copy = tmp_path / "copy.jsonl"
    shutil.copy(single, copy)
    path.write_text(both.replace(f'name: leak, path: "{single}"', f'name: leak, path: "{copy}"'), encoding="utf-8")
    with pytest.raises(ConfigError, match="has the same content as a file of training source 'leak'"):
        build(load_recipe(path), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_overlap_left_after_decontamination_fails_the_build(eval_recipe, tmp_path, monkeypatch):
    """The guard on the written outputs: with the row filter broken, the build refuses to finish."""
    import numpy as np

    from data_recipes.transforms.decontaminate import EvalSetIndex

    path, _, _ = eval_recipe
    monkeypatch.setattr(EvalSetIndex, "match_codes",
                        lambda self, batch: (np.full(len(batch), -1), np.zeros(len(batch), np.uint8)))
    with pytest.raises(ConfigError) as err:
        build(load_recipe(path), tmp_path / "out")
    assert "outputs.sft" in err.value.problems[0] and "still overlap eval set 'single' after decontamination" in \
        err.value.problems[0]
    assert not (tmp_path / "out").exists()


def test_bad_eval_cases_are_quarantined_naming_the_field(tmp_path, read_all):
    good = build_eval_single_turn(2, random.Random(0), "en")[1]          # a cause question: expects diagnosis
    bad = [{**good, "case_id": "x1", "extra": 1},
           {**good, "case_id": "x2", "messages": good["messages"] + [{"role": "assistant", "content": "ok"}]},
           {**good, "case_id": "x3", "truth": {**good["truth"], "condition_names": []}}]
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [good, *bad]), encoding="utf-8")
    records, quarantined = read_all(path, "medalign_eval_cases")
    assert [r.id for r in records] == [good["case_id"]] and records[0].meta["truth"]["expects"]
    reasons = [q.reason for q in quarantined]
    assert reasons[0].startswith("extra: Extra inputs are not permitted")
    assert "must end with a user turn" in reasons[1]
    assert reasons[2].startswith("truth: ") and "condition_names" in reasons[2]
