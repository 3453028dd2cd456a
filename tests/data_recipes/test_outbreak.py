"""The new-outbreak family: a valid table outside the world, its own corpus file, its target recipe."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from data_recipes.readers import read_source
from data_recipes.records import Quarantined
from data_recipes.synthetic import outbreak as ob
from data_recipes.synthetic.generate import FILES, default_sizes, write_corpus
from data_recipes.synthetic.lexicon import build_lexicon
from data_recipes.synthetic.world import CONDITIONS, CONDITIONS_BY_KEY, DEPARTMENTS


def test_the_family_is_valid_and_outside_the_world():
    conditions = ob.outbreak_conditions()
    assert ob.outbreak_problems() == []
    assert len(conditions) >= 4 and not {c.key for c in conditions} & set(CONDITIONS_BY_KEY)
    assert all(c.department in DEPARTMENTS for c in conditions)
    world_names = {n.lower() for c in CONDITIONS for n in c.name.values()}
    assert not {n.lower() for c in conditions for n in c.name.values()} & world_names


def test_problems_name_the_outbreak_file_and_what_is_wrong(monkeypatch):
    first, *rest = ob.outbreak_conditions()
    broken = (dataclasses.replace(first, name={"zh": "流行性感冒", "en": "greywing flu"}, differentials=("nowhere",)),
              dataclasses.replace(rest[0], key="migraine"), *rest[1:])
    table = ob.outbreak()
    monkeypatch.setattr(ob, "_loaded", lambda: (table, broken))
    problems = "\n".join(ob.outbreak_problems())
    assert "data_recipes/synthetic/data/outbreak.yaml:" in problems
    assert "condition 'greywing_fever': differential 'nowhere' is not another condition" in problems
    assert "zh names are not unique" in problems                    # 流行性感冒 is the world's influenza
    assert "condition 'migraine': key also used by the world" in problems


def test_the_corpus_file_is_written_only_when_asked_and_changes_no_other_file(tmp_path):
    plain = write_corpus(tmp_path / "plain", n_consultations=30, seed=3, languages=("zh", "en"))
    asked = write_corpus(tmp_path / "asked", n_consultations=30, seed=3, languages=("zh", "en"),
                         sizes={"meddialog_outbreak": 40})
    assert not list((tmp_path / "plain").glob("meddialog_outbreak_*"))
    assert len(plain["files"]) == 2 * sum(1 for f in FILES if default_sizes(30)[f.key])   # size-0 files are not written
    extra = [f for f in asked["files"] if f not in plain["files"]]
    assert [f["file"] for f in extra] == ["meddialog_outbreak_zh.txt", "meddialog_outbreak_en.txt"]
    assert all(f["records"] == 40 and f["format"] == "meddialog_raw" for f in extra)
    for f in plain["files"]:          # every other file: the same bytes
        digest = hashlib.sha256((tmp_path / "asked" / f["file"]).read_bytes()).hexdigest()
        assert digest == f["sha256"], f["file"]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_outbreak_consultations_read_back_and_are_about_the_family(tmp_path, lang):
    path = tmp_path / f"outbreak_{lang}.txt"
    path.write_text("".join(ob.iter_outbreak_blocks(120, seed=0, lang=lang)), encoding="utf-8")
    records = list(read_source(path, "meddialog_raw"))
    assert not [r for r in records if isinstance(r, Quarantined)] and len(records) == 120
    lexicon = build_lexicon(CONDITIONS + ob.outbreak_conditions(), DEPARTMENTS)
    family = {c.key for c in ob.outbreak_conditions()}
    named = [lexicon.find_conditions(" ".join(t.content for t in r.turns if t.role == "assistant")) for r in records]
    assert all(set(keys) <= family for keys in named)           # no world condition is ever named
    assert {k for keys in named for k in keys} == family          # every condition of the family occurs
    assert [b.split("\n", 1)[0] for b in ob.iter_outbreak_blocks(2, 0, lang, start_id=7)] == ["id=7", "id=8"]


def test_the_data_stage_builds_the_target_recipe(tmp_path, monkeypatch, repo_root):
    from data_recipes.stage import Config, provides, run
    from medalign.stage import StageContext

    monkeypatch.chdir(repo_root)
    cfg = Config(recipe="data_recipes/recipes/meddialog_outbreak.yaml",
                 synthetic={"n_consultations": 1, "sizes": {"meddialog_outbreak": 200}})
    assert provides(cfg) == {"sft", "prompts"}
    metrics = run(cfg, {}, tmp_path, StageContext(progress=False))
    assert metrics["quarantined"] == 0
    assert metrics["prompts_train"] + metrics["prompts_validation"] + metrics["prompts_test"] == 200
    assert 15 <= metrics["prompts_test"] <= 25                    # CovidDialog's 80/10/10 split
    assert (tmp_path / "corpus" / "meddialog_outbreak_zh.txt").is_file()
