"""The build's fast paths against their plain definitions: the hash key index against a dict,
row keys and decontamination texts against ``row_text``, label parsing against a line-by-line
reading, the MedDialog reader at any chunk size, mixing independent of spool batch sizes."""

from __future__ import annotations

import random
import re

import numpy as np
import pyarrow as pa
import pytest

from data_recipes.mixing import fixed_chunks, selected_batches
from data_recipes.readers import meddialog_raw
from data_recipes.readers.labels import EN_LABELS, diagnosis_from, diagnosis_of, parse_labelled
from data_recipes.records import Quarantined, Record, Turn
from data_recipes.rows import ComponentJob, PartTable, _row_codes, build_rows, record_keys, row_exact_keys, row_text
from data_recipes.spool import SpoolWriter
from data_recipes.transforms.keyindex import MISSING, HashKeyIndex
from data_recipes.transforms.shingles import encode_batch, exact_keys


@pytest.mark.parametrize("high", [3000, 2**64 - 1])        # small keys too: they must still spread
def test_hash_key_index_matches_a_dict(high):
    rng = np.random.default_rng(0)
    index, reference = HashKeyIndex(), {}
    for step in range(40):
        keys = rng.integers(0, high, 1000, dtype=np.uint64)
        keys[:3] = 0                                          # key 0 is a key like any other
        found = index.lookup(keys)
        assert found.tolist() == [reference.get(k, int(MISSING)) for k in keys.tolist()]
        new = found == MISSING
        vals = np.arange(step * 1000, step * 1000 + 1000, dtype=np.uint32)
        index.insert_new(keys[new], vals[new])
        for k, v in zip(keys[new].tolist(), vals[new].tolist()):
            reference.setdefault(k, v)                        # first insert wins, also within a batch
    assert len(index) == len(reference)
    assert 2 * len(index) <= index.nbytes // 12               # grown: never more than half full


def dialogue(rid: str, *texts: str) -> Record:
    turns = [Turn("user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(texts)]
    return Record(id=rid, kind="dialogue", turns=turns, language="zh", source_line=1)


def component(kind: str, build: str) -> ComponentJob:
    return ComponentJob(kind=kind, index=0, build=build, source="s", origin="real_doctor", provenance={},
                        seed=0, train=0.8, validation=0.1, dedup_rows=True)


RECORDS = [dialogue("a", "头痛三天", "有发热吗？", "没有", "考虑偏头痛。"),
           dialogue("b", "头痛 三天", "有发热吗？", "有", "考虑感冒。"),         # first row: a's, but for a space
           dialogue("c", "头痛三天", "有发热吗？"),
           dialogue("d", "HEADACHE", "Fever?"), dialogue("e", "headache", "fever?"),
           Record(id="f", kind="preference", turns=[Turn("user", "q")], responses=["good", "bad"], ranks=[0, 1]),
           Record(id="g", kind="preference", turns=[Turn("user", "q")], responses=["good", "worse"], ranks=[0, 1]),
           Record(id="h", kind="preference", turns=[Turn("user", "Q")], responses=["Good ", "bad"], ranks=[0, 1])]


@pytest.mark.parametrize("kind, build", [("sft", "per_turn_examples"), ("sft", "whole_conversation"),
                                         ("prompts", "per_turn_prompts"), ("preferences", "preference_pairs"),
                                         ("pretrain", "pretrain_text")])
def test_row_keys_are_equal_exactly_when_row_texts_are(kind, build):
    job = component(kind, build)
    block = build_rows(job, RECORDS, {"file": "f.txt"}, record_keys(RECORDS, "s", 0, 0.8, 0.1), PartTable())
    rows = block.batch.to_pylist()
    texts = [row_text(kind, r, False) for r in rows]
    want = exact_keys(encode_batch(texts))                    # the definition: the whole normalised text
    for i in range(len(rows)):
        for j in range(len(rows)):
            assert (block.row_keys[i] == block.row_keys[j]) == (want[i] == want[j]), (rows[i], rows[j])
    assert len(set(block.row_keys.tolist())) < len(rows)      # the case and space variants collide


@pytest.mark.parametrize("kind, build", [("sft", "per_turn_examples"), ("sft", "whole_conversation"),
                                         ("prompts", "per_turn_prompts"), ("prompts", "final_turn_prompt"),
                                         ("prompts", "first_turn_prompt")])
def test_planned_rows_equal_the_builder_dicts(kind, build, monkeypatch):
    from data_recipes import rows as rows_module

    records = RECORDS + [dialogue("i", "好的", "嗯", "还有呢"), dialogue("j"),
                         Record(id="k", kind="qa", turns=[Turn("user", "q?")], meta={"reference": "r", "department": ""})]
    job = component(kind, build)
    planned = build_rows(job, records, {"file": "f.txt"}, record_keys(records, "s", 0, 0.8, 0.1), PartTable())
    monkeypatch.setattr(rows_module, "PLANS", {})             # every row through the builder's dicts
    plain = build_rows(job, records, {"file": "f.txt"}, record_keys(records, "s", 0, 0.8, 0.1), PartTable())
    assert planned.batch.equals(plain.batch) and planned.batch.num_rows > 0
    assert planned.record_index.tolist() == plain.record_index.tolist()
    assert planned.row_keys.tolist() == plain.row_keys.tolist()


def test_incremental_row_keys_equal_hashing_each_gathered_row():
    rng = random.Random(2)
    codes = encode_batch(["".join(rng.choice("ab 头痛X") for _ in range(rng.randint(0, 6))) for _ in range(12)])
    full = [rng.randrange(12) for _ in range(8)]
    rows = [full[:n] for n in (0, 0, 1, 3, 3, 8, 2)] + [[], [5, 5], [rng.randrange(12) for _ in range(4)], full[:4]]
    assert row_exact_keys(codes, rows).tolist() == exact_keys(_row_codes(codes, rows)).tolist()


def test_decontamination_reads_exactly_row_text():
    job = component("prompts", "per_turn_prompts")
    parts = PartTable()
    block = build_rows(job, RECORDS, {"file": "f.txt"}, record_keys(RECORDS, "s", 0, 0.8, 0.1), parts)
    rows = block.batch.to_pylist()
    refs = [parts.messages(r["messages"]) + ([parts.text(r["reference"])] if r["reference"] else []) for r in rows]
    got = _row_codes(parts.codes(), refs, drop_last=True)
    want = encode_batch([row_text("prompts", r, True) for r in rows])
    assert got.lengths.tolist() == want.lengths.tolist() and np.array_equal(got.codes, want.codes)


_LABEL = re.compile(r"(?:([\u4e00-\u9fff]{2,12})(?:（[^）]*）|\([^)]*\))?|(" + "|".join(EN_LABELS)
                    + r"))[ \t]*[:：][ \t]*(.*)", re.IGNORECASE)


def labels_line_by_line(text: str) -> dict[str, str]:
    """The plain definition: each stripped line is a label line or a value line."""
    fields, current, value = {}, None, []
    for line in text.split("\n"):
        line = line.strip()
        match = _LABEL.match(line) if ("：" in line or ":" in line) else None
        if match:
            if current is not None:
                fields[current] = "\n".join(value)
            label = match.group(1) or match.group(2).lower()
            current = None if label in fields else label
            value = [match.group(3)] if match.group(3) else []
        elif current is not None and line:
            value.append(line)
    if current is not None:
        fields[current] = "\n".join(value)
    return fields


def test_parse_labelled_agrees_with_line_by_line_reading():
    pieces = ["疾病", "诊断", "病情摘要及初步印象", "疾病（主要）", "诊断(初步)", "Diagnosis", "help WANTED", "头痛三天",
              "（注", "a(b", " ", "\u3000", "\t", "\r", "：", ":", "值", "血压：140/90", ")", "）", "abc def"]
    rng = random.Random(0)
    for _ in range(20000):
        text = "\n".join("".join(rng.choice(pieces) for _ in range(rng.randint(0, 4)))
                         for _ in range(rng.randint(0, 6)))
        assert parse_labelled(text) == labels_line_by_line(text), repr(text)


def test_diagnosis_of_agrees_with_parsing_every_label():
    pieces = ["病情摘要及初步印象：", "疾病诊断：", "诊断：", "总结建议：", "良性眩晕", "Diagnosis:", "（注）", " ", "\u3000",
              "\t", "\r", "：", "值", "血压：140/90", "abc def", ""]
    rng = random.Random(1)
    for _ in range(20000):
        lines = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 3))) for _ in range(rng.randint(0, 5))]
        if rng.random() < 0.5:
            lines.insert(0, "病情摘要及初步印象：")
        text = "\n".join(lines)
        assert diagnosis_of(text) == diagnosis_from(parse_labelled(text)), repr(text)
    assert diagnosis_of("病情摘要及初步印象：\n偏头痛\n总结建议：\n休息。") == "偏头痛"


def test_meddialog_reader_gives_the_same_items_at_any_chunk_size(tmp_path, monkeypatch):
    block = "id={i}\r\nhttp://x/{i}\r\n\r\nDescription\r\n疾病：\r\n头痛 \r\n\r\nDialogue\r\n病人：\r\n头痛{i}。\r\n医生：\r\n休息。\r\n\r\n"
    data = "".join(block.format(i=i) for i in range(40)).encode()
    data = data.replace("头痛7。".encode(), b"\xff\xfe")                    # one undecodable consultation
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"\xef\xbb\xbf" + data)

    def items():
        return [(i.source_line, i.reason) if isinstance(i, Quarantined) else
                (i.id, i.source_line, [(t.role, t.content) for t in i.turns], i.meta)
                for i in meddialog_raw.read_meddialog_raw(path)]
    whole = items()
    assert len(whole) == 40 and whole[7][1].startswith("undecodable bytes")
    assert whole[3] == ("3", 40, [("user", "头痛3。"), ("assistant", "休息。")], {
        "dialogue_blocks": 1, "url": "http://x/3", "description": "疾病：\n头痛"})
    for chunk in (5, 64, 333):
        monkeypatch.setattr(meddialog_raw, "CHUNK_BYTES", chunk)
        assert items() == whole, chunk


def test_selection_does_not_depend_on_how_the_spool_was_batched(tmp_path):
    schema = pa.schema([("i", pa.int64())])

    def spool(block: int):
        writer = SpoolWriter(tmp_path / f"s{block}.arrow", schema)
        for start in range(0, 10_000, block):
            writer.write({"i": list(range(start, min(10_000, start + block)))})
        writer.close()
        return writer.path

    def chosen(path):
        return [i for batch, _ in selected_batches(path, 10_000, 3_000, np.random.default_rng(1))
                for i in batch.column("i").to_pylist()]
    assert chosen(spool(7)) == chosen(spool(2048)) == chosen(spool(10_000))
    sizes = [b.num_rows for b in fixed_chunks(iter([pa.record_batch({"i": list(range(n))}) for n in (3, 5, 9)]), 4)]
    assert sizes == [4, 4, 4, 4, 1]


def test_batch_splits_equal_split_of_each_id():
    from data_recipes.writers import split_of, splits_of

    rng = random.Random(3)
    ids = [f"{rng.randrange(10**9)}-{i}" for i in range(5000)] + ["", "x", "病例-1"]
    for seed, train, validation in [(0, 0.9, 0.05), (7, 0.5, 0.25), (1, 1.0, 0.0)]:
        assert splits_of(ids, seed, train, validation) == [split_of(c, seed, train, validation) for c in ids]
