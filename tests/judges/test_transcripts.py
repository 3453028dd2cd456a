"""The hash chain detects edits, deletions, insertions and reordering; partial tails recover."""

from __future__ import annotations

import json

import pytest

from judges.transcript_verify import verify_transcript
from judges.transcripts import TranscriptError, TranscriptStore


def _store(tmp_path, n=5):
    store = TranscriptStore.open(tmp_path / "t.jsonl")
    for i in range(n):
        store.append({"judgment_id": f"j{i}", "status": "ok" if i % 2 else "api_error",
                      "scores": {"A": float(i), "B": 1.0}})
    store.close()
    return tmp_path / "t.jsonl"


def _lines(path):
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def test_intact_chain_verifies(tmp_path):
    path = _store(tmp_path)
    result = verify_transcript(path)
    assert result.ok and result.lines == 5
    rows = [json.loads(line) for line in _lines(path)]
    assert [r["seq"] for r in rows] == list(range(5))
    assert all(rows[i]["prev_hash"] == rows[i - 1]["hash"] for i in range(1, 5))


def test_edit_is_detected(tmp_path):
    path = _store(tmp_path)
    lines = _lines(path)
    lines[2] = lines[2].replace('"A":2.0', '"A":9.0')
    path.write_text("".join(lines), encoding="utf-8")
    result = verify_transcript(path)
    assert not result.ok and any(":3:" in p and "edited" in p for p in result.problems)


@pytest.mark.parametrize("how", ["delete_middle", "reorder", "insert_copy", "delete_last"])
def test_structural_tampering_is_detected(tmp_path, how):
    path = _store(tmp_path)
    lines = _lines(path)
    if how == "delete_middle":
        del lines[1]
    elif how == "reorder":
        lines[1], lines[2] = lines[2], lines[1]
    elif how == "insert_copy":
        lines.insert(3, lines[1])
    else:
        del lines[-1]                          # only the head file can tell
    path.write_text("".join(lines), encoding="utf-8")
    result = verify_transcript(path)
    assert not result.ok, how


def test_partial_tail_is_truncated_and_reported(tmp_path):
    path = _store(tmp_path, 3)
    whole = path.read_bytes()
    with open(path, "ab") as f:
        f.write(b'{"judgment_id": "j9", "sta')        # a writer killed mid-line
    assert not verify_transcript(path).ok
    store = TranscriptStore.open(path)
    assert store.truncated_bytes == len(b'{"judgment_id": "j9", "sta') and store.count == 3
    assert path.read_bytes() == whole
    store.append({"judgment_id": "j3", "status": "ok", "scores": None})
    store.close()
    assert verify_transcript(path).ok and verify_transcript(path).lines == 4
    assert store.is_done("j1") and not store.is_done("j0")


def test_a_damaged_middle_refuses_to_append(tmp_path):
    path = _store(tmp_path, 3)
    lines = _lines(path)
    lines[1] = "not json\n"
    path.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(TranscriptError, match=r"t\.jsonl:2"):
        TranscriptStore.open(path)
