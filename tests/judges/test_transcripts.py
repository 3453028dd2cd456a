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


# --------------------------------------------------------------------------------------------
# Keyed chain, honest reports
# --------------------------------------------------------------------------------------------

KEY = b"0123456789abcdef0123456789abcdef"


def _keyed(tmp_path, n=5, key=KEY):
    store = TranscriptStore.open(tmp_path / "k.jsonl", key=key)
    for i in range(n):
        store.append({"judgment_id": f"j{i}", "status": "ok", "scores": {"A": float(i), "B": 1.0}})
    store.close()
    return tmp_path / "k.jsonl"


def _rewrite_plain(path, edit):
    """What an attacker without the key does: edit a row and recompute every hash and the head
    with plain sha256 (the file's own algorithm is then of no help)."""
    from judges.transcripts import GENESIS, row_hash

    rows = [json.loads(x) for x in _lines(path)]
    edit(rows)
    prev, out = GENESIS, []
    for r in rows:
        r = {k: v for k, v in r.items() if k != "hash"}
        r["prev_hash"] = prev
        r["hash"] = prev = row_hash(prev, r)
        out.append(json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n")
    path.write_text("".join(out), encoding="utf-8")
    head = path.with_name(path.name + ".head.json")
    head.write_text(json.dumps({"count": len(rows), "last_hash": prev}))


def test_keyed_chain_verifies_only_with_its_key(tmp_path):
    path = _keyed(tmp_path)
    rows = [json.loads(x) for x in _lines(path)]
    assert {r["chain"] for r in rows} == {"hmac-sha256"} and len({r["key_id"] for r in rows}) == 1
    assert KEY.decode() not in path.read_text() + path.with_name("k.jsonl.head.json").read_text()
    good = verify_transcript(path, key=KEY)
    assert good.complete and good.chains == {"hmac-sha256": 5}
    without = verify_transcript(path)
    assert without.ok and not without.complete
    assert any("cannot be checked without the key" in u for u in without.unchecked)
    wrong = verify_transcript(path, key=b"another key, not the one used here")
    assert not wrong.ok and any("wrong key" in p for p in wrong.problems)


def test_a_rewritten_keyed_transcript_fails_while_a_rewritten_plain_one_passes(tmp_path):
    def edit(rows):
        rows[2]["scores"]["A"] = 9.0
    plain = _store(tmp_path)
    _rewrite_plain(plain, edit)
    assert verify_transcript(plain).complete           # the limit of a plain chain
    keyed = _keyed(tmp_path)
    for r in (json.loads(x) for x in _lines(keyed)):
        assert r["chain"] == "hmac-sha256"
    lines = _lines(keyed)
    forged = [json.loads(x) for x in lines]
    edit(forged)
    from judges.transcripts import row_hash
    prev = "0" * 64
    for r in forged:                                   # recompute with sha256: no key at hand
        body = {k: v for k, v in r.items() if k != "hash"}
        body["prev_hash"] = prev
        r.update(body, hash=row_hash(prev, body))
        prev = r["hash"]
    keyed.write_text("".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n"
                             for r in forged))
    result = verify_transcript(keyed, key=KEY)
    assert not result.ok and all("edited" in p or "head" in p for p in result.problems)
    # rewriting it as a plain chain does not pass as keyed either
    _rewrite_plain(keyed, lambda rows: [r.update(chain="sha256", key_id=None) for r in rows])
    downgraded = verify_transcript(keyed, key=KEY)
    assert not downgraded.complete and any("no key protects them" in u for u in downgraded.unchecked)
    keyed.unlink()
    keyed = _keyed(tmp_path)
    # and the head cannot be rewritten either
    head = keyed.with_name("k.jsonl.head.json")
    h = json.loads(head.read_text())
    head.write_text(json.dumps({**h, "count": 3}))
    assert any("tag does not verify" in p for p in verify_transcript(keyed, key=KEY).problems)


def test_appending_to_a_keyed_transcript_needs_the_same_key(tmp_path):
    path = _keyed(tmp_path)
    with pytest.raises(TranscriptError, match="transcript_key_env"):
        TranscriptStore.open(path)
    with pytest.raises(TranscriptError, match="key id"):
        TranscriptStore.open(path, key=b"some other key of enough length")
    store = TranscriptStore.open(path, key=KEY)
    store.append({"judgment_id": "j9", "status": "ok", "scores": None})
    store.close()
    assert verify_transcript(path, key=KEY).complete


def test_missing_head_is_said_not_silently_ok(tmp_path):
    path = _store(tmp_path)
    path.with_name("t.jsonl.head.json").unlink()
    lines = _lines(path)
    path.write_text("".join(lines[:-2]), encoding="utf-8")       # truncated at the end
    result = verify_transcript(path)
    assert result.ok and not result.complete
    assert any("no head file" in u and "deleted from the end" in u for u in result.unchecked)


def test_cut_inside_a_multibyte_character_is_reported_not_raised(tmp_path):
    store = TranscriptStore.open(tmp_path / "t.jsonl")
    for i in range(3):
        store.append({"judgment_id": f"j{i}", "status": "ok", "completion": "偏头痛，建议神经内科就诊"})
    store.close()
    path = tmp_path / "t.jsonl"
    data = path.read_bytes()
    cut = data.rindex("神".encode()) + 1                   # inside the 3-byte character
    path.write_bytes(data[:cut])
    result = verify_transcript(path)
    assert not result.ok and any("partial" in p for p in result.problems)
    # a complete line with broken UTF-8 in the middle of the file
    lines = data.split(b"\n")
    lines[1] = lines[1].replace("神".encode(), "神".encode()[:2])
    path.write_bytes(b"\n".join(lines))
    problems = verify_transcript(path).problems
    assert any(":2: not valid UTF-8" in p for p in problems)


def test_one_deleted_middle_line_is_one_problem_with_its_position(tmp_path):
    store = TranscriptStore.open(tmp_path / "t.jsonl")
    for i in range(300):
        store.append({"judgment_id": f"j{i}", "status": "ok"})
    store.close()
    path = tmp_path / "t.jsonl"
    lines = _lines(path)
    del lines[100]
    path.write_text("".join(lines), encoding="utf-8")
    problems = verify_transcript(path).problems
    assert len(problems) == 1, problems
    assert ":101:" in problems[0] and "1 line missing" in problems[0] and "seq 100" in problems[0]
    assert "end" not in problems[0]


@pytest.mark.parametrize("how, expected", [
    ("reorder", "reordered"), ("insert_copy", "copied"), ("delete_last", "deleted at the end")])
def test_structural_tampering_is_named(tmp_path, how, expected):
    path = _store(tmp_path, 6)
    lines = _lines(path)
    if how == "reorder":
        lines[2], lines[3] = lines[3], lines[2]
    elif how == "insert_copy":
        lines.insert(4, lines[1])
    else:
        del lines[-1]
    path.write_text("".join(lines), encoding="utf-8")
    problems = verify_transcript(path).problems
    assert problems and any(expected in p for p in problems), problems
    assert len(problems) <= 2, problems


def test_secrets_are_masked_in_every_line(tmp_path):
    secret = "sk-live-0123456789abcdefSECRET"
    store = TranscriptStore.open(tmp_path / "t.jsonl", secrets=(secret,))
    text = f"My key is {secret}.\nRating A: 8; Rating B: 3"
    store.append({"judgment_id": "j0", "status": "ok", "completion": text, "span": [len(text) - 24, len(text)]})
    store.close()
    raw = (tmp_path / "t.jsonl").read_text()
    assert secret not in raw and "*" * len(secret) in raw
    row = json.loads(raw)
    assert row["completion"][slice(*row["span"])] == "Rating A: 8; Rating B: 3"   # offsets kept
    assert verify_transcript(tmp_path / "t.jsonl").complete
