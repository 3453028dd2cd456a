"""MedDialog readers: raw text (CN and EN) and processed JSON, on fixtures with edge cases."""

from __future__ import annotations

import pytest

from data_recipes.readers import meddialog_raw

ZH = "meddialog_raw_zh.txt"


def _turns(record):
    return [(t.role, t.content) for t in record.turns]


def test_raw_zh_consultation_with_repeated_blocks(reader_fixtures, read_all):
    records, _ = read_all(reader_fixtures / ZH, "meddialog_raw")
    first = records[0]
    assert (first.id, first.kind, first.language, first.source_line) == ("101", "dialogue", "zh", 1)
    assert first.source_file == str(reader_fixtures / ZH)
    # ASCII colon ("病人:") and full-width tags alike; consecutive patient utterances stay separate
    # turns; the repeated Description/Dialogue block's dialogue is appended; a multi-line
    # utterance keeps its lines.
    assert _turns(first) == [
        ("user", "医生您好，我头痛三天了，一侧跳着痛。"),
        ("assistant", "有没有恶心？"),
        ("user", "有一点恶心。"),
        ("user", "还怕光。"),
        ("assistant", "考虑偏头痛，建议神经内科就诊。"),
        ("user", "需要吃药吗？"),
        ("assistant", "可以先吃布洛芬，\n注意休息。"),
    ]
    meta = first.meta
    assert meta["dialogue_blocks"] == 2
    assert meta["department"] == "神经内科"
    assert meta["url"] == "https://www.haodf.com/wenda/a_101.htm"
    # the first description is kept (trailing blanks stripped), not the repeated one
    assert meta["description"].startswith("疾病：\n头痛\n病情描述（发病时间、主要症状、就诊医院等）：")
    assert meta["diagnosis"] == "偏头痛"
    assert meta["diagnosis_and_suggestions"].endswith("总结建议：\n规律作息。")


def test_raw_zh_quarantines_name_file_line_and_reason(reader_fixtures, read_all):
    records, quarantined = read_all(reader_fixtures / ZH, "meddialog_raw")
    assert [r.id for r in records] == ["101", "106"]
    # a tag with its text on the same line is accepted
    assert _turns(records[1])[0] == ("user", "肚子痛，拉肚子。")
    got = [(q.source_file, q.source_line, q.reason) for q in quarantined]
    path = str(reader_fixtures / ZH)
    assert got == [
        (path, 44, "missing id= line: consultation block starts with "
                   "'https://www.haodf.com/wenda/a_102.htm\\n\\nD'"),
        (path, 62, "unknown speaker tag '护士：' in consultation id=103"),
        (path, 71, "empty utterance after '医生' tag in consultation id=104"),
        (path, 76, "consultation id=105 has no doctor/assistant turn"),
    ]
    assert "护士：" in quarantined[1].raw


def test_raw_en_multiline_and_case_insensitive_tags(reader_fixtures, read_all):
    records, quarantined = read_all(reader_fixtures / "meddialog_raw_en.txt", "meddialog_raw")
    assert quarantined == []
    back, cough = records
    assert back.language == cough.language == "en"
    assert _turns(back) == [
        ("user", "Hi doctor,\nI have back pain spreading down my left leg.\nWhat does this mean?"),
        ("assistant", "Hi. This is likely lumbar disc herniation.\nSee orthopedics."),
    ]
    assert back.meta["description"] == "Q. What does abutment of the nerve root mean?"
    assert (cough.id, cough.source_line) == ("8", 16)
    assert _turns(cough) == [("user", "Cough for ten days."), ("assistant", "Likely acute bronchitis.")]
    assert cough.meta["diagnosis"] == "acute bronchitis"


def test_raw_invalid_utf8_quarantines_only_its_consultation(tmp_path, read_all):
    good = "id=1\nhttp://x/1\n\nDialogue\n病人：\n头痛。\n医生：\n考虑偏头痛。\n\n".encode()
    bad = "id=2\nhttp://x/2\n\nDialogue\n病人：\n".encode() + b"\xff\xfe broken\n" + "医生：\n嗯。\n\n".encode()
    path = tmp_path / "bad.txt"
    path.write_bytes(good + bad + good.replace(b"id=1", b"id=3"))
    records, quarantined = read_all(path, "meddialog_raw")
    assert [r.id for r in records] == ["1", "3"]
    assert len(quarantined) == 1
    assert (quarantined[0].source_file, quarantined[0].source_line) == (str(path), 15)
    assert quarantined[0].reason.startswith("undecodable bytes (invalid UTF-8")


def test_raw_crlf_bom_text_before_first_id_and_no_dialogue(tmp_path, read_all):
    text = ("stray header line\r\n\r\nid=1\r\nhttp://x/1\r\n\r\nDialogue\r\nPatient:\r\nFever.\r\n"
            "Doctor:\r\nLikely influenza.\r\n\r\nid=2\r\nhttp://x/2\r\n\r\nDescription\r\nonly a description\r\n")
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    records, quarantined = read_all(path, "meddialog_raw")
    assert [(r.id, r.source_line, _turns(r)) for r in records] == [
        ("1", 3, [("user", "Fever."), ("assistant", "Likely influenza.")])]
    assert [(q.source_line, q.reason) for q in quarantined] == [
        (1, "missing id= line: consultation block starts with 'stray header line'"),
        (12, "no Dialogue section in consultation id=2"),
    ]


def test_raw_text_before_first_tag_is_quarantined(tmp_path, read_all):
    path = tmp_path / "pre.txt"
    path.write_text("id=9\nhttp://x/9\n\nDialogue\nhello there\n病人：\n头痛\n医生：\n休息\n", encoding="utf-8")
    records, quarantined = read_all(path, "meddialog_raw")
    assert records == []
    assert [(q.source_line, q.reason) for q in quarantined] == [
        (5, "dialogue text before any speaker tag in consultation id=9")]


@pytest.mark.parametrize("chunk", [7, 64, 1 << 20])
def test_raw_blocks_survive_any_chunk_boundary(reader_fixtures, read_all, monkeypatch, chunk):
    monkeypatch.setattr(meddialog_raw, "CHUNK_BYTES", chunk)
    records, quarantined = read_all(reader_fixtures / ZH, "meddialog_raw")
    assert [r.id for r in records] == ["101", "106"]
    assert [q.source_line for q in quarantined] == [44, 62, 71, 76]


def test_raw_empty_file_yields_nothing(tmp_path, read_all):
    path = tmp_path / "empty.txt"
    path.write_text("\n\n", encoding="utf-8")
    assert read_all(path, "meddialog_raw") == ([], [])


def test_processed_json(reader_fixtures, read_all):
    path = reader_fixtures / "meddialog_processed.json"
    records, quarantined = read_all(path, "meddialog_json")
    assert [(r.id, r.language, r.source_line) for r in records] == [
        ("meddialog_processed:1", "zh", 1), ("meddialog_processed:2", "en", 2),
        ("meddialog_processed:3", "zh", 3), ("meddialog_processed:8", "en", 8)]
    assert _turns(records[1]) == [("user", "My chest hurts when I climb stairs."),
                                  ("assistant", "Likely angina pectoris. See cardiology.")]
    assert records[1].meta == {"description": "Chest pain on exertion."}
    assert [t.role for t in records[2].turns] == ["user", "user", "assistant"]
    assert [(q.source_file, q.source_line, q.reason) for q in quarantined] == [
        (str(path), 4, "unknown speaker tag in utterance 0: '护士：请排队。'"),
        (str(path), 5, "empty utterance in utterance 0"),
        (str(path), 6, "dialogue has no doctor/assistant turn"),
        (str(path), 7, "dialogue must be a list of utterances or an object, got string"),
    ]


def test_language_option_overrides_detection(reader_fixtures, read_all):
    records, _ = read_all(reader_fixtures / "meddialog_raw_en.txt", "meddialog_raw", language="other")
    assert {r.language for r in records} == {"other"}


def test_raw_heading_lines_stay_inside_utterances(tmp_path, read_all):
    path = tmp_path / "headings.txt"
    path.write_text("id=5\nhttp://x/5\n\nDialogue\n病人：\n头痛。\n医生：\n建议：\n多休息。\n"
                    "\nid=6\nhttp://x/6\n\nDialogue\nPatient:\nRash.\nDoctor:\nInvestigations:\nA skin swab.\n"
                    "\nid=7\nhttp://x/7\n\nDialogue\nPatient:\nRash.\nNURSE:\nWait please.\n", encoding="utf-8")
    records, quarantined = read_all(path, "meddialog_raw")
    assert [_turns(r)[-1] for r in records] == [("assistant", "建议：\n多休息。"),
                                                ("assistant", "Investigations:\nA skin swab.")]
    assert [(q.source_line, q.reason) for q in quarantined] == [
        (27, "unknown speaker tag 'NURSE:' in consultation id=7")]
