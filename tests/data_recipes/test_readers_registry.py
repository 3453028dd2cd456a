"""The reader registry API (what the recipe builder codes against) and language detection."""

from __future__ import annotations

import pytest

from data_recipes.lang import detect_language
from data_recipes.readers import FORMATS, read_source, reader_options

NAMES = {"meddialog_raw", "meddialog_json", "huatuo_sft", "cmd_pretrain", "cmd_finetune", "cmd_reward",
         "ranked_jsonl", "sharegpt", "openai_messages", "alpaca", "kuake_qic", "huatuo_meddialog_cases",
         "safety_prompts", "realmeddial", "medalign_eval_cases"}


def test_registry_is_exactly_the_documented_formats():
    assert set(FORMATS) == NAMES
    assert all(reader_options(fmt) == ["language"] for fmt in FORMATS)


def test_unknown_format_names_it_and_the_known_ones(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match=r"unknown format 'medialog_raw'; known formats: alpaca, cmd_finetune"):
        read_source(path, "medialog_raw")


def test_bad_options_and_missing_file_fail_before_reading(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match=r"does not take option\(s\) \['lang'\]; it accepts: \['language'\]"):
        read_source(path, "huatuo_sft", lang="zh")
    with pytest.raises(ValueError, match="language must be one of"):
        read_source(path, "huatuo_sft", language="chinese")
    with pytest.raises(FileNotFoundError, match="nope.jsonl: no such file"):
        read_source(tmp_path / "nope.jsonl", "huatuo_sft")


def test_readers_stream_lazily(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_text('{"text": "偏头痛"}\n' * 5 + "not json\n", encoding="utf-8")
    stream = read_source(path, "cmd_pretrain")
    first = next(stream)
    assert first.text == "偏头痛" and first.source_line == 1


@pytest.mark.parametrize("text, expected", [
    ("医生你好，我头痛三天了，吃了ibuprofen没用", "zh"),
    ("I have had a headache for three days.", "en"),
    ("Patient reports 头痛 for three days with photophobia and nausea", "en"),
    ("患者主诉反复上腹痛，HP阳性，PPI治疗后好转", "zh"),
    ("頭が痛いです。どうすればいいですか", "other"),
    ("머리가 아파요", "other"),
    ("Головная боль три дня", "other"),
    ("12345 !!! ...", "other"),
    ("", "other"),
])
def test_detect_language(text, expected):
    assert detect_language(text) == expected
