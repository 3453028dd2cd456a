"""The demo corpus generator: deterministic, counted, and read back cleanly by the readers."""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter

import pytest

from data_recipes.readers import read_source
from data_recipes.records import Quarantined
from data_recipes.synthetic import corpus_records as build
from data_recipes.synthetic.lexicon import mentioned_conditions
from data_recipes.synthetic.phrasing import T
from data_recipes.synthetic.generate import FILES, default_sizes, iter_meddialog_raw_blocks, write_corpus


def _digests(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a = write_corpus(tmp_path / "a", n_consultations=40, seed=7, languages=("zh", "en"))
    b = write_corpus(tmp_path / "b", n_consultations=40, seed=7, languages=("zh", "en"))
    c = write_corpus(tmp_path / "c", n_consultations=40, seed=8, languages=("zh", "en"))
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    assert a == b
    other = {f["file"]: f["sha256"] for f in c["files"]}
    assert all(other[f["file"]] != f["sha256"] for f in a["files"])


# First computed with the code of commit 4c0a25e, before the condition tables moved from Python
# literals to data_recipes/synthetic/data/*.yaml: the move must not change one byte of the corpus.
# A change to the tables or the generator that is meant to change the corpus updates this digest;
# last: the eval-set files carry CaseCard case cards and the demo rubrics (their cases, truths and
# references unchanged; every other file unchanged). Before: issue 10 (five more departments and
# their conditions, synonyms, the KUAKE-QIC intents in real-doctor QA, the eval-set files).
CORPUS_DIGEST_N60_SEED7 = "4d44d382e17289e390950542589548eb9b6a50cc764aefe416556230c0305672"


def test_corpus_bytes_unchanged_by_the_move_to_data_files(tmp_path):
    from medalign.artifacts import digest_path

    write_corpus(tmp_path, n_consultations=60, seed=7, languages=("zh", "en"))
    assert digest_path(tmp_path) == CORPUS_DIGEST_N60_SEED7


def test_summary_lists_every_file_with_counts_and_digests(synthetic_corpus):
    directory, summary = synthetic_corpus
    sizes = default_sizes(120)
    # every file but the RealMedDial-shaped one, which is written only when asked for (size 0)
    assert len(summary["files"]) == 2 * sum(1 for f in FILES if sizes[f.key]) == 2 * (len(FILES) - 1)
    assert summary["total_records"] == 2 * sum(sizes.values())
    assert json.loads((directory / "corpus_summary.json").read_text(encoding="utf-8")) == summary
    for entry in summary["files"]:
        path = directory / entry["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        assert entry["language"] in entry["file"]


def test_every_file_reads_back_with_zero_quarantined(synthetic_corpus):
    directory, summary = synthetic_corpus
    for entry in summary["files"]:
        items = list(read_source(directory / entry["file"], entry["format"]))
        quarantined = [i for i in items if isinstance(i, Quarantined)]
        assert quarantined == [], (entry["file"], quarantined[:1])
        assert len(items) == entry["records"], entry["file"]
        assert {r.language for r in items} == {entry["language"]}, entry["file"]
        assert len({r.id for r in items}) == len(items), entry["file"]


def test_raw_stream_equals_the_written_file_and_is_prefix_stable(synthetic_corpus):
    directory, _ = synthetic_corpus
    streamed = "".join(iter_meddialog_raw_blocks(120, seed=3, lang="zh"))
    assert streamed == (directory / "meddialog_raw_zh.txt").read_text(encoding="utf-8")
    assert list(iter_meddialog_raw_blocks(5, seed=3, lang="zh")) == list(iter_meddialog_raw_blocks(12, 3, "zh"))[:5]
    blocks = list(iter_meddialog_raw_blocks(3, seed=3, lang="en", start_id=1000))
    assert [b.split("\n", 1)[0] for b in blocks] == ["id=1000", "id=1001", "id=1002"]
    assert all(b.endswith("\n\n") for b in blocks)


def test_sizes_override_and_bad_arguments(tmp_path):
    summary = write_corpus(tmp_path, n_consultations=10, seed=0, languages=("en",), sizes={"ranked": 0, "kuake_qic": 7})
    files = {f["file"]: f["records"] for f in summary["files"]}
    assert "ranked_en.jsonl" not in files and files["kuake_qic_en.json"] == 7
    assert not (tmp_path / "ranked_en.jsonl").exists()
    with pytest.raises(ValueError, match="unknown corpus file keys in sizes: \\['rankd'\\]"):
        write_corpus(tmp_path, 10, sizes={"rankd": 3})
    with pytest.raises(ValueError, match="languages must be a non-empty subset"):
        write_corpus(tmp_path, 10, languages=("fr",))


def test_raw_corpus_has_the_quirks_of_real_data(tmp_path):
    path = tmp_path / "raw.txt"
    path.write_text("".join(iter_meddialog_raw_blocks(600, seed=1, lang="zh")), encoding="utf-8")
    records = list(read_source(path, "meddialog_raw"))
    assert not [r for r in records if isinstance(r, Quarantined)]
    text = path.read_text(encoding="utf-8")
    repeated = [r for r in records if r.meta["dialogue_blocks"] == 2]
    consecutive = [r for r in records if any(a.role == b.role for a, b in zip(r.turns, r.turns[1:]))]
    multiline = [r for r in records if any("\n" in t.content for t in r.turns)]
    assert repeated and consecutive and multiline
    assert re.search(r"1[3589]\d{9}", text) and "我叫" in text and "@example.com" in text
    assert re.search(r"身份证号\d{17}[\dX]", text)
    with_diagnosis = sum("diagnosis" in r.meta for r in records) / len(records)
    assert 0.55 < with_diagnosis < 0.85
    assert all(r.meta["department"] and r.meta["description"] for r in records)


def test_derived_files_keep_their_roles():
    rng = random.Random(0)
    asks = [p.split("{q}")[0] for p in T["zh"]["dis_ask"]]
    answers = [row["data"][1] for row in build.build_distilled_conversations(600, rng, "zh")]
    rate = sum(any(a in text for a in asks) for text in answers) / len(answers)
    assert 0.05 < rate < 0.16                      # distilled answers rarely ask (~10%)
    for row in build.build_ranked(50, rng, "zh"):
        doctor, gpt4, gpt35, weak = row["responses"]
        assert row["sources"] == ["doctor", "gpt-4", "gpt-3.5", "weak"] and row["ranks"] == [0, 1, 2, 3]
        assert mentioned_conditions(doctor, "zh") == [mentioned_conditions(row["diagnosis"], "zh")[0]]
        assert len(gpt4) > len(gpt35)
        assert row["diagnosis"] not in weak
    for row in build.build_cmd_reward(50, rng, "en"):
        chosen = mentioned_conditions(row["response_chosen"], "en")
        rejected = mentioned_conditions(row["response_rejected"], "en")
        assert len(chosen) == 1 and chosen[0] not in rejected
    labels = Counter(r["label"] for r in build.build_kuake_qic(100, rng, "zh"))
    assert len(labels) == 10 and set(labels.values()) == {10}
    departments = Counter(r["Department"] for r in build.build_meddialog_cases(60, rng, "zh"))
    assert len(departments) == 20 and set(departments.values()) == {3}
def test_the_realmeddial_file_is_written_when_asked_and_reads_back_with_its_doctors(tmp_path):
    from data_recipes.synthetic.doctors import DOCTORS_BY_KEY, assigned_doctor, doctor_profile
    from data_recipes.synthetic.world import condition_names

    summary = write_corpus(tmp_path, n_consultations=10, seed=1, languages=("zh", "en"), sizes={"realmeddial": 30})
    entries = [f for f in summary["files"] if f["format"] == "realmeddial"]
    assert [(f["file"], f["records"]) for f in entries] == [("realmeddial_zh.json", 30), ("realmeddial_en.json", 30)]
    for entry in entries:
        lang = entry["language"]
        records = list(read_source(tmp_path / entry["file"], "realmeddial"))
        assert not [r for r in records if isinstance(r, Quarantined)] and len(records) == 30
        for i, record in enumerate(records):
            condition = condition_names(lang)[record.meta["disease"]]
            doctor = assigned_doctor(condition, f"{lang}-{i}")
            assert record.meta["doctor_id"] == doctor.key
            assert record.meta["doctor_profile"] == doctor_profile(DOCTORS_BY_KEY[doctor.key], lang)
            assert record.turns[0].role == "user" and record.meta["symptoms"]
