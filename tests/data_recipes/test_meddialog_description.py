"""MedDialog files read the way their authors read them: the Description opens the dialogue
(``description_as_first_turn``), unanswered consultations are quarantined apart from malformed
ones, and a file in CovidDialog-CN's raw shape builds under the default quarantine limit."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from data_recipes.records import Quarantined, Record, Turn
from data_recipes.transforms.description import DescriptionAsFirstTurn, description_as_first_turn
from medalign.config import ConfigError

SHAPE = Path(__file__).resolve().parents[1] / "fixtures" / "meddialog_shape"
ZH_DESCRIPTION = "疾病： 肺炎相关\n病情描述： 咳嗽从2月开始到现在，有痰。\n希望获得的帮助： 能不能医好？"


def _record(turns, description=ZH_DESCRIPTION, language="zh", **meta) -> Record:
    record = Record(id="1", kind="dialogue", turns=[Turn(r, c) for r, c in turns], language=language,
                    meta={"description": description, **meta} if description is not None else dict(meta))
    return record


def _apply(record, **spec):
    counts = Counter()
    return description_as_first_turn(record, DescriptionAsFirstTurn(**spec), counts), counts


def test_doctor_only_dialogue_gets_the_description_as_its_patient_turn_and_loses_its_defect():
    record = _record([("assistant", "感谢您的信任。"), ("assistant", "是新冠活不了这么久的。")])
    record.defect = Quarantined("f.txt", 3, "consultation id=1 has no patient/user turn")
    out, counts = _apply(record)
    assert [(t.role, t.content) for t in out.turns] == [
        ("user", "咳嗽从2月开始到现在，有痰。"), ("assistant", "感谢您的信任。"), ("assistant", "是新冠活不了这么久的。")]
    assert out.defect is None
    assert counts == Counter({"prepended": 1, "repaired": 1})


def test_fields_are_configurable_and_joined_in_order():
    out, _ = _apply(_record([("assistant", "多久了？")]), fields_zh=["病情描述", "希望获得的帮助"])
    assert out.turns[0].content == "咳嗽从2月开始到现在，有痰。\n能不能医好？"


def test_text_the_patient_already_wrote_is_not_added_twice():
    turns = [("user", "医生在吗？"), ("user", "咳嗽从2月开始到现在， 有痰。请问怎么办"), ("assistant", "先查血常规。")]
    out, counts = _apply(_record(turns))
    assert [t.content for t in out.turns] == [c for _, c in turns]
    assert counts == Counter({"already_in_dialogue": 1})


def test_always_prepends_before_a_patient_opening_unless_told_otherwise():
    turns = [("user", "还有点发烧。"), ("assistant", "多少度？")]
    out, _ = _apply(_record(turns))
    assert [t.role for t in out.turns] == ["user", "user", "assistant"]
    out, counts = _apply(_record(turns), when="no_patient_opening")
    assert [t.content for t in out.turns] == ["还有点发烧。", "多少度？"] and not counts


def test_the_system_turn_stays_first():
    out, _ = _apply(_record([("system", "你是医生。"), ("assistant", "您好")]))
    assert [t.role for t in out.turns] == ["system", "user", "assistant"]


def test_english_labelled_and_free_text_descriptions():
    out, _ = _apply(_record([("assistant", "Hello.")], "Condition:\ncough\nDescription:\nI cough at night.",
                            language="en"))
    assert out.turns[0].content == "I cough at night."
    out, _ = _apply(_record([("assistant", "Hello.")], "Q. Can a sore throat be COVID-19?", language="en"))
    assert out.turns[0].content == "Q. Can a sore throat be COVID-19?"


def test_a_description_without_the_field_keeps_the_defect():
    record = _record([("assistant", "复查血常规。")], "疾病名称： 肺炎\n报到来源： 住院")
    record.defect = Quarantined("f.txt", 3, "no patient turn")
    out, counts = _apply(record)
    assert out.defect is not None and counts == Counter({"no_field": 1})
    out, counts = _apply(_record([("assistant", "复查血常规。")], None))
    assert counts == Counter({"no_description": 1})


def test_the_first_description_holding_the_field_is_used():
    first, second = "疾病名称： 肺炎\n报到来源： 住院", "疾病： 肺炎\n病情描述： 伏立康唑已服用两个月，可以停药吗？"
    out, _ = _apply(_record([("assistant", "可以明天看我门诊。")], first, descriptions=[first, second]))
    assert out.turns[0].content == "伏立康唑已服用两个月，可以停药吗？"


def test_reader_marks_doctor_only_consultations_and_unanswered_ones(read_all):
    records, quarantined = read_all(SHAPE / "covid_dialog_shape_zh.txt", "meddialog_raw")
    assert len(records) + len(quarantined) == 70
    assert sorted(r.id for r in records if r.defect) == sorted(["6", "7", "15", "25", "34", "35", "38", "39", "54"])
    assert Counter((q.unanswered, q.reason.split(" in consultation")[0].split(" id=")[0]) for q in quarantined) == {
        (True, "no Dialogue section"): 4, (True, "consultation"): 2, (False, "dialogue text before any speaker tag"): 1}
    by_id = {r.id: r for r in records}
    assert by_id["6"].defect.reason.startswith("consultation id=6 has no patient/user turn")
    assert [t.role for t in by_id["6"].turns] == ["assistant"] * len(by_id["6"].turns)


RECIPE = """
name: covid_shape
seed: 0
sources:
  - name: covid
    path: {path}
    format: meddialog_raw
    origin: real_doctor
    language: {lang}
    transforms: [{transforms}merge_consecutive_speakers, normalize_roles, drop_closing_courtesies, scrub_pii]
outputs:
  sft: {{mix: [{{source: covid, count: all, build: per_turn_examples}}]}}
  prompts: {{mix: [{{source: covid, count: all, build: first_turn_prompt}}]}}
dedup: {{exact: false, near: null}}     # the fixture's 70 consultations reuse a dozen invented cases
"""


def _build(write_recipe, tmp_path, lang="zh", transforms="description_as_first_turn, "):
    from data_recipes.build import build
    from data_recipes.recipe_load import load_recipe

    path = write_recipe(RECIPE.format(path=SHAPE / f"covid_dialog_shape_{lang}.txt", lang=lang,
                                      transforms=transforms))
    return build(load_recipe(path), tmp_path / "out")


def test_covid_shaped_file_builds_under_the_default_quarantine_limit(write_recipe, tmp_path):
    report = _build(write_recipe, tmp_path)
    source = report["sources"]["covid"]
    # 70 consultations: 9 doctor-only repaired, 6 unanswered and 1 malformed quarantined
    assert (source["quarantined"], source["unanswered"], source["kept"]) == (7, 6, 63)
    assert source["malformed_fraction"] == round(1 / 70, 6) < 0.05
    assert source["transform_counts"]["description_as_first_turn"]["repaired"] == 9
    lines = [json.loads(x) for x in (tmp_path / "out" / "quarantine.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sum(1 for x in lines if x.get("unanswered")) == 6 and len(lines) == 7
    import pandas as pd

    from data_recipes.readers import read_source
    from data_recipes.readers.labels import parse_labelled

    prompts = pd.concat(pd.read_parquet(tmp_path / "out" / "prompts" / f"{s}.parquet")
                        for s in ("train", "validation", "test"))
    six = prompts[prompts.consultation_id == "covid:6"].iloc[0]
    record = next(r for r in read_source(SHAPE / "covid_dialog_shape_zh.txt", "meddialog_raw") if r.id == "6")
    assert six.messages[0] == {"role": "user", "content": parse_labelled(record.meta["description"])["病情描述"]}
    assert six.reference == record.turns[0].content          # the doctor's first reply


def test_without_the_transform_the_doctor_only_consultations_fail_the_build(write_recipe, tmp_path):
    with pytest.raises(ConfigError) as error:
        _build(write_recipe, tmp_path, transforms="")
    assert "10 of 70 records of source 'covid' are malformed (14.3%), above max_quarantine_fraction=0.05" \
        in str(error.value)
    assert "'consultation id=6 has no patient/user turn (its question is the Description" in str(error.value)


def test_english_covid_shaped_file_builds_cleanly(write_recipe, tmp_path):
    report = _build(write_recipe, tmp_path, lang="en")
    source = report["sources"]["covid"]
    assert (source["quarantined"], source["kept"]) == (0, 6)
    assert source["transform_counts"]["description_as_first_turn"]["prepended"] == 6
