"""Every reader that has a real public sample in tests/fixtures/real/ reads it completely."""

from __future__ import annotations

import json
from collections import Counter

import pytest

SAMPLES = [
    ("kuake_qic_100.json", "kuake_qic", 100),
    ("meddialog_cases_100.json", "huatuo_meddialog_cases", 100),
    ("cmd_reward_test.jsonl", "cmd_reward", 100),
    ("sharegpt_medical_sft_head.jsonl", "sharegpt", 239),
]


@pytest.mark.parametrize("name, fmt, count", SAMPLES, ids=[s[0] for s in SAMPLES])
def test_real_sample_reads_without_quarantine(real_data_dir, read_all, name, fmt, count):
    records, quarantined = read_all(real_data_dir / name, fmt)
    assert quarantined == []
    assert len(records) == count
    assert {r.language for r in records} == {"zh"}
    assert len({r.id for r in records}) == count


def test_kuake_ids_labels_and_queries_match_the_file(real_data_dir, read_all):
    rows = json.loads((real_data_dir / "kuake_qic_100.json").read_text(encoding="utf-8"))
    records, _ = read_all(real_data_dir / "kuake_qic_100.json", "kuake_qic")
    assert [(r.id, r.meta["label"], r.turns[0].content) for r in records] == [
        (row["id"], row["label"], row["query"].strip()) for row in rows]
    assert Counter(r.meta["label"] for r in records) == Counter({label: 10 for label in {row["label"] for row in rows}})


def test_meddialog_cases_reference_department_and_diagnosis(real_data_dir, read_all):
    rows = json.loads((real_data_dir / "meddialog_cases_100.json").read_text(encoding="utf-8"))
    records, _ = read_all(real_data_dir / "meddialog_cases_100.json", "huatuo_meddialog_cases")
    by_id = {r.id: r for r in records}
    for row in rows:
        record = by_id[str(row["id"])]
        assert record.meta["reference"] == row["doctor_diagnosis"]
        assert record.meta["department"] == row["Department"].strip()
        assert record.turns[0].role == "user" and "Dialogue" not in record.turns[0].content
    nail = by_id["62963"]
    assert nail.meta["diagnosis"] == "甲营养不良"
    assert nail.meta["description_fields"]["疾病"] == "指甲营养不良"
    # "疾病诊断： " (trailing space) is a diagnosis label too
    assert by_id["7441"].meta["diagnosis"] == "焦虑障碍"
    assert sum("diagnosis" in r.meta for r in records) == 100
    # cases that embed the start of the consultation keep it in meta
    assert by_id["24017"].meta["case_dialogue"].startswith("医生：")


def test_cmd_reward_and_sharegpt_content(real_data_dir, read_all):
    rows = [json.loads(line) for line in (real_data_dir / "cmd_reward_test.jsonl").read_text(encoding="utf-8").splitlines()]
    records, _ = read_all(real_data_dir / "cmd_reward_test.jsonl", "cmd_reward")
    assert [(r.turns[0].content, r.responses) for r in records] == [
        (row["question"].strip(), [row["response_chosen"].strip(), row["response_rejected"].strip()]) for row in rows]
    chats, _ = read_all(real_data_dir / "sharegpt_medical_sft_head.jsonl", "sharegpt")
    assert {r.kind for r in chats} == {"qa"}
    assert [r.source_line for r in chats] == list(range(1, 240))


def test_every_real_sample_is_attributed_in_the_notice(real_data_dir):
    notice = (real_data_dir / "NOTICE").read_text(encoding="utf-8")
    assert "Apache License, Version 2.0" in notice
    samples = sorted(p.name for p in real_data_dir.iterdir() if p.name not in ("NOTICE", "README.md"))
    assert samples == sorted(name for name, _, _ in SAMPLES)
    assert all(f"\n{name} (" in notice for name in samples)
