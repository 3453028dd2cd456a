"""JSON and JSONL readers on hand-written fixtures: records, and quarantines with file, line and
reason for every malformed record."""

from __future__ import annotations

import json

import pytest

from data_recipes.readers import streams

# fixture file, format, expected (id, kind, language) of the records, expected (line, reason)
CASES = [
    ("huatuo_sft.jsonl", "huatuo_sft",
     [("huatuo_sft:1", "qa", "zh"), ("conv-2", "dialogue", "zh"), ("huatuo_sft:3", "qa", "en"),
      ("huatuo_sft:11", "qa", "zh")],
     [(4, "bad JSON: Expecting value at column 19"), (5, "missing field 'data'"),
      (6, "field 'data' must be a list, got string"),
      (7, "unknown speaker tag in data[0]: expected 问：/答： (or Q:/A:), got '病人：头痛'"),
      (8, "empty utterance in data[0]"), (9, "dialogue has no doctor/assistant turn")]),
    ("cmd_pretrain.jsonl", "cmd_pretrain",
     [("cmd_pretrain:1", "text", "zh"), ("cmd_pretrain:2", "text", "en")],
     [(3, "empty field 'text'"), (4, "missing field 'text'"), (5, "record must be a JSON object, got list")]),
    ("cmd_finetune.jsonl", "cmd_finetune",
     [("cmd_finetune:1", "qa", "zh"), ("cmd_finetune:2", "qa", "zh")],
     [(3, "missing field 'output'"), (4, "field 'instruction' must be a string, got number")]),
    ("cmd_reward.jsonl", "cmd_reward",
     [("cmd_reward:1", "preference", "zh"), ("cmd_reward:2", "preference", "zh")],
     [(3, "missing field 'response_rejected'"), (4, "empty field 'response_chosen'"),
      (5, "history[0] must be a [question, answer] pair of non-empty strings")]),
    ("ranked.jsonl", "ranked_jsonl",
     [("r1", "ranked", "zh"), ("ranked:2", "ranked", "en")],
     [(3, "field 'responses' has 1 items, need at least 2"),
      (4, "field 'ranks' must be 2 non-negative integers, one per response"),
      (5, "field 'sources' must be 2 strings, one per response"), (6, "empty utterance in responses[1]")]),
    ("sharegpt.jsonl", "sharegpt",
     [("sharegpt:1", "qa", "zh"), ("sg-2", "dialogue", "en")],
     [(3, "unknown speaker tag 'narrator' in conversations[0]"), (4, "empty utterance in conversations[0]"),
      (5, "conversation has no doctor/assistant turn"), (6, "field 'conversations' must be a list, got object")]),
    ("sharegpt_list.json", "sharegpt",
     [("sharegpt_list:1", "qa", "zh")],
     [(2, "unknown speaker tag 'robot' in conversations[1]")]),
    ("openai_messages.jsonl", "openai_messages",
     [("openai_messages:1", "qa", "zh"), ("openai_messages:2", "dialogue", "en")],
     [(3, "unknown role 'tool' in messages[0]"), (4, "messages[0].content must be a string, got list"),
      (5, "conversation has no doctor/assistant turn")]),
    ("alpaca.json", "alpaca",
     [("alpaca:1", "qa", "zh"), ("alpaca:2", "dialogue", "en")],
     [(3, "missing field 'output'"), (4, "empty field 'output'")]),
    ("kuake_qic.json", "kuake_qic",
     [("s1", "qa", "zh"), ("s2", "qa", "zh"), ("s5", "qa", "zh")],
     [(3, "missing field 'query'"), (4, "missing field 'id'")]),
    ("meddialog_cases.json", "huatuo_meddialog_cases",
     [("501", "qa", "zh"), ("502", "qa", "zh")],
     [(3, "missing field 'doctor_diagnosis'"), (4, "empty field 'medical_case'")]),
    ("safety_prompts.json", "safety_prompts",
     [("Mental_Health:1", "qa", "zh"), ("Mental_Health:2", "qa", "en"), ("Crimes_And_Illegal_Activities:1", "qa", "zh")],
     [(4, "missing field 'response' (scenario 'Crimes_And_Illegal_Activities', item 2)"),
      (5, "record must be a JSON object, got string (scenario 'Crimes_And_Illegal_Activities', item 3)"),
      (6, "scenario 'Broken' must be a list, got object")]),
]


@pytest.mark.parametrize("name, fmt, expected, bad", CASES, ids=[c[0] for c in CASES])
def test_fixture_records_and_quarantines(reader_fixtures, read_all, name, fmt, expected, bad):
    path = reader_fixtures / name
    records, quarantined = read_all(path, fmt)
    assert [(r.id, r.kind, r.language) for r in records] == expected
    assert all(r.source_file == str(path) for r in records)
    assert [(q.source_file, q.source_line, q.reason) for q in quarantined] == [(str(path), *b) for b in bad]
    assert all(q.raw for q in quarantined if "scenario 'Broken'" not in q.reason)


def _one(reader_fixtures, read_all, name, fmt, index=0):
    records, _ = read_all(reader_fixtures / name, fmt)
    return records[index]


def test_huatuo_sft_roles_and_tags(reader_fixtures, read_all):
    conv = _one(reader_fixtures, read_all, "huatuo_sft.jsonl", "huatuo_sft", 1)
    assert [(t.role, t.content) for t in conv.turns] == [
        ("user", "咳嗽一周"), ("assistant", "咳嗽有痰吗？"), ("user", "有黄痰"), ("assistant", "考虑急性支气管炎。")]
    assert conv.source_line == 2


def test_preference_and_ranked_fields(reader_fixtures, read_all):
    pref = _one(reader_fixtures, read_all, "cmd_reward.jsonl", "cmd_reward", 1)
    assert [t.role for t in pref.turns] == ["user", "assistant", "user"]
    assert pref.responses == ["有痰吗？考虑急性支气管炎。", "可能是肺癌。"] and pref.ranks == [0, 1]
    ranked, tied = read_all(reader_fixtures / "ranked.jsonl", "ranked_jsonl")[0]
    assert ranked.response_sources == ["doctor", "gpt-4", "gpt-3.5", "weak"]
    assert ranked.ranks == [0, 1, 2, 3]
    assert ranked.meta == {"department": "神经内科", "diagnosis": "偏头痛"}
    assert tied.ranks == [0, 1, 1] and tied.response_sources is None
    assert [t.role for t in tied.turns] == ["user", "assistant", "user"]


def test_finetune_alpaca_and_chat_turns(reader_fixtures, read_all):
    finetune = _one(reader_fixtures, read_all, "cmd_finetune.jsonl", "cmd_finetune", 1)
    assert finetune.turns[0].content == "请根据病情描述给出建议。\n咳嗽一周，有黄痰。"
    alpaca = _one(reader_fixtures, read_all, "alpaca.json", "alpaca", 1)
    assert [(t.role, t.content) for t in alpaca.turns][:2] == [("user", "Hello"), ("assistant", "Hi!")]
    sharegpt = _one(reader_fixtures, read_all, "sharegpt.jsonl", "sharegpt", 1)
    assert sharegpt.turns[0].role == "system" and sharegpt.kind == "dialogue"
    openai = _one(reader_fixtures, read_all, "openai_messages.jsonl", "openai_messages")
    assert [t.role for t in openai.turns] == ["system", "user", "assistant"] and openai.kind == "qa"


def test_eval_sets_are_prompt_only(reader_fixtures, read_all):
    kuake = _one(reader_fixtures, read_all, "kuake_qic.json", "kuake_qic")
    assert [(t.role, t.content) for t in kuake.turns] == [("user", "头痛三天，怕光，是什么病？")]
    assert kuake.meta == {"label": "病情诊断"}
    cases, _ = read_all(reader_fixtures / "meddialog_cases.json", "huatuo_meddialog_cases")
    first, second = cases
    assert [t.role for t in first.turns] == ["user"]
    assert first.meta["reference"].startswith("病情摘要及初步印象：\n偏头痛")
    assert (first.meta["diagnosis"], first.meta["department"]) == ("偏头痛", "神经内科")
    assert first.meta["description_fields"]["患病多久"] == "一周内"
    # an embedded Dialogue is cut from the prompt and kept in meta
    assert "Dialogue" not in second.turns[0].content
    assert second.meta["case_dialogue"] == "医生：\n症状多久了？\n病人：\n一个月。"
    assert second.meta["diagnosis"] == "过敏性紫癜"


def test_safety_meta_and_ids(reader_fixtures, read_all):
    records, _ = read_all(reader_fixtures / "safety_prompts.json", "safety_prompts")
    assert records[1].meta == {"scenario": "Mental_Health", "label": "Mental_Health"}
    assert [r.source_line for r in records] == [1, 2, 3]


JSONL_FORMATS = ["huatuo_sft", "cmd_pretrain", "cmd_finetune", "cmd_reward", "ranked_jsonl", "sharegpt",
                 "openai_messages", "alpaca"]
GOOD_LINE = {
    "huatuo_sft": {"data": ["问：头痛", "答：休息"]},
    "cmd_pretrain": {"text": "偏头痛是常见头痛。"},
    "cmd_finetune": {"instruction": "头痛怎么办", "input": "", "output": "休息"},
    "cmd_reward": {"question": "头痛", "response_chosen": "考虑偏头痛", "response_rejected": "不知道"},
    "ranked_jsonl": {"question": "头痛", "responses": ["考虑偏头痛", "不知道"]},
    "sharegpt": {"conversations": [{"from": "human", "value": "头痛"}, {"from": "gpt", "value": "休息"}]},
    "openai_messages": {"messages": [{"role": "user", "content": "头痛"}, {"role": "assistant", "content": "休息"}]},
    "alpaca": {"instruction": "头痛怎么办", "output": "休息"},
}


@pytest.mark.parametrize("fmt", JSONL_FORMATS)
def test_invalid_utf8_line_quarantines_only_that_line(tmp_path, read_all, fmt):
    good = json.dumps(GOOD_LINE[fmt], ensure_ascii=False).encode()
    path = tmp_path / f"{fmt}.jsonl"
    path.write_bytes(good + b"\n" + good[:-2] + b"\xc3\x28" + good[-2:] + b"\n" + good + b"\n")
    records, quarantined = read_all(path, fmt)
    assert [r.source_line for r in records] == [1, 3]
    assert [(q.source_file, q.source_line) for q in quarantined] == [(str(path), 2)]
    assert quarantined[0].reason.startswith("undecodable bytes (invalid UTF-8 at byte")


@pytest.mark.parametrize("fmt", ["kuake_qic", "huatuo_meddialog_cases", "meddialog_json", "sharegpt", "alpaca"])
def test_invalid_utf8_in_a_json_list_quarantines_only_that_element(tmp_path, read_all, fmt):
    element = {
        "kuake_qic": {"id": "s1", "label": "病情诊断", "query": "头痛"},
        "huatuo_meddialog_cases": {"id": 1, "medical_case": "疾病：\n头痛", "doctor_diagnosis": "偏头痛",
                                   "Department": "神经内科"},
        "meddialog_json": ["病人：头痛", "医生：休息"],
        "sharegpt": GOOD_LINE["sharegpt"],
        "alpaca": GOOD_LINE["alpaca"],
    }[fmt]
    good = json.dumps(element, ensure_ascii=False).encode()
    bad = good.replace("头痛".encode(), b"\xe5\xa4", 1)    # a truncated 3-byte character
    path = tmp_path / f"{fmt}.json"
    path.write_bytes(b"[" + good + b",\n" + bad + b",\n" + good + b"]\n")
    records, quarantined = read_all(path, fmt)
    assert [r.source_line for r in records] == [1, 3]
    assert [(q.source_file, q.source_line, q.reason) for q in quarantined] == [
        (str(path), 2, "undecodable bytes (invalid UTF-8) in this record")]
    assert "\ufffd" in quarantined[0].raw.encode("utf-8").decode("utf-8")   # writable as UTF-8


@pytest.mark.parametrize("fmt", ["huatuo_sft", "cmd_pretrain", "cmd_reward", "ranked_jsonl", "sharegpt",
                                 "openai_messages", "alpaca", "kuake_qic", "huatuo_meddialog_cases",
                                 "meddialog_json", "safety_prompts", "meddialog_raw", "cmd_finetune"])
def test_empty_file_yields_nothing(tmp_path, read_all, fmt):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert read_all(path, fmt) == ([], [])


def test_json_list_streams_across_small_chunks(tmp_path, read_all, monkeypatch):
    monkeypatch.setattr(streams, "CHUNK_BYTES", 5)
    rows = [{"id": f"s{i}", "label": "病情诊断", "query": f"头痛{i}天，12345.5"} for i in range(30)]
    path = tmp_path / "kuake.json"
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    records, quarantined = read_all(path, "kuake_qic")
    assert quarantined == [] and [r.id for r in records] == [f"s{i}" for i in range(30)]
    numbers = tmp_path / "numbers.json"
    numbers.write_text("[12345, 678.25, -9]", encoding="utf-8")
    items = list(streams.iter_json_array(numbers))
    assert [(i, v) for i, v, _ in items] == [(1, 12345), (2, 678.25), (3, -9)]


@pytest.mark.parametrize("text, expected", [
    ('[{"a": 1}, {"a": 2', [(1, None), (2, "bad JSON in record 2")]),
    ('[{"a": 1} {"a": 2}]', [(1, None), (2, "bad JSON after record 1: expected ',' or ']'")]),
    ('[{"a": 1}] trailing', [(1, None), (2, "extra data after the closing ']'")]),
    ('{"a": 1}', [(1, "expected a JSON list at the top level, found '{'")]),
    ('[{"a": 1},', [(1, None), (1, "unterminated JSON list after record 1")]),
])
def test_json_list_syntax_errors(tmp_path, text, expected):
    path = tmp_path / "x.json"
    path.write_text(text, encoding="utf-8")
    got = []
    for item in streams.iter_json_array(path):
        if isinstance(item, tuple):
            got.append((item[0], None))
        else:
            got.append((item.source_line, item.reason))
    assert [(line, reason if reason is None else reason[: len(exp)]) for (line, reason), (_, exp)
            in zip(got, expected)] == expected
    assert len(got) == len(expected)


def test_quarantine_raw_is_truncated(tmp_path, read_all):
    path = tmp_path / "long.jsonl"
    path.write_text('{"text": ' + "x" * 10000 + "\n", encoding="utf-8")
    _, quarantined = read_all(path, "cmd_pretrain")
    assert len(quarantined[0].raw) < streams.RAW_LIMIT + 100
    assert quarantined[0].raw.endswith("more characters]")


def test_lone_surrogate_escape_is_quarantined_but_a_pair_is_fine(tmp_path, read_all):
    lines = ['{"text": "ok \\ud83d\\ude00"}', '{"text": "half an emoji \\ud83d"}', '{"text": "fine"}']
    path = tmp_path / "surrogates.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    records, quarantined = read_all(path, "cmd_pretrain")
    assert [r.text for r in records] == ["ok \U0001F600", "fine"]
    assert [(q.source_line, q.reason) for q in quarantined] == [(2, streams.LONE_SURROGATE_REASON)]
    listed = tmp_path / "surrogates.json"
    listed.write_text('[{"id": "a", "query": "x\\udc00"}, {"id": "b", "query": "y"}]', encoding="utf-8")
    records, quarantined = read_all(listed, "kuake_qic")
    assert [r.id for r in records] == ["b"] and [q.source_line for q in quarantined] == [1]
    safety = tmp_path / "safety.json"
    safety.write_text('{"S": [{"prompt": "p\\ud800", "response": "r"}, {"prompt": "p", "response": "r"}]}')
    records, quarantined = read_all(safety, "safety_prompts")
    assert [r.id for r in records] == ["S:2"]
    assert quarantined[0].reason.startswith("undecodable bytes (invalid UTF-8) or a lone surrogate")
