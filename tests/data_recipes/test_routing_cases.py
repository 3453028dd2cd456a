"""The ``cases`` output (department routing, doctor recommendation): what a case holds, and the
routing recipe on the demo corpus with its RealMedDial-shaped file."""

from __future__ import annotations

import pandas as pd

from data_recipes.records import Record, Turn
from data_recipes.transforms.builders import routing_case


def test_a_case_is_the_patients_opening_with_the_first_reply_department_and_doctor():
    record = Record(id="7", kind="dialogue", language="zh", meta={
        "department": "皮肤科", "diagnosis": "湿疹", "doctor_id": "d07", "doctor_profile": "擅长湿疹。"},
        turns=[Turn("system", "你是医生。"), Turn("user", "医生在吗？"), Turn("user", "手臂起红疹，很痒。"),
               Turn("assistant", "多久了？"), Turn("user", "一周。"), Turn("assistant", "考虑湿疹。")])
    assert routing_case(record) == [{
        "suffix": "case", "turn": None,
        "messages": [{"role": "user", "content": "医生在吗？"}, {"role": "user", "content": "手臂起红疹，很痒。"}],
        "reply": "多久了？", "department": "皮肤科", "diagnosis": "湿疹", "doctor": "d07", "doctor_profile": "擅长湿疹。"}]
    record.meta.pop("department")
    assert routing_case(record) == []                      # no department, no case
    assert routing_case(Record(id="8", kind="dialogue", meta={"department": "眼科"},
                               turns=[Turn("assistant", "您好")])) == []


def test_routing_recipe_builds_cases_and_sft_split_by_consultation(tmp_path):
    from data_recipes.build import build
    from data_recipes.recipe_load import find_recipe, load_recipe
    from data_recipes.synthetic.generate import write_corpus

    write_corpus(tmp_path / "corpus", n_consultations=60, seed=0, languages=("zh",), sizes={"realmeddial": 60})
    report = build(load_recipe(find_recipe("routing"), [], {"corpus": str(tmp_path / "corpus")}), tmp_path / "out")
    assert report["outputs"]["cases"]["total_actual"] == 120
    cases = {s: pd.read_parquet(tmp_path / "out" / "cases" / f"{s}.parquet") for s in ("train", "validation", "test")}
    sft = {s: pd.read_parquet(tmp_path / "out" / "sft" / f"{s}.parquet") for s in ("train", "validation", "test")}
    everything = pd.concat(cases.values())
    assert everything.department.notna().all() and everything.reply.str.len().gt(0).all()
    assert everything[everything.source == "realmeddial"].doctor.notna().all()
    assert everything[everything.source == "doctor_dialogues"].doctor.isna().all()
    # a test case's consultation is never in the SFT training split
    assert not set(cases["test"].consultation_id) & set(sft["train"].consultation_id)
