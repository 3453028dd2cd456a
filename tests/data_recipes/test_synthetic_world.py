"""The synthetic world: a valid, bilingual, unambiguous knowledge table."""

from __future__ import annotations

import dataclasses

from data_recipes.synthetic import world
from data_recipes.synthetic.lexicon import NameSet, find_mentions, find_spans, mentioned_conditions, mentioned_departments
from data_recipes.synthetic.world import CONDITIONS, CONDITIONS_BY_KEY, DEPARTMENTS, validate_world, world_problems


def test_world_is_valid_and_large_enough():
    validate_world()
    assert len(CONDITIONS) >= 40
    assert len(DEPARTMENTS) >= 12
    assert len({c.department for c in CONDITIONS}) == len(DEPARTMENTS)
    assert set(CONDITIONS_BY_KEY) == {c.key for c in CONDITIONS}


def test_every_condition_is_bilingual_with_sized_fields():
    for cond in CONDITIONS:
        for lang in ("zh", "en"):
            assert cond.name[lang]
            assert 3 <= len(cond.symptoms[lang]) <= 6
            assert 2 <= len(cond.onset[lang]) <= 4
            assert 3 <= len(cond.advice[lang]) <= 5
            assert 2 <= len(cond.red_flags[lang]) <= 4
            assert 2 <= len(cond.follow_up_questions[lang]) <= 4
        assert cond.differentials and all(d in CONDITIONS_BY_KEY and d != cond.key for d in cond.differentials)


def test_validation_reports_each_kind_of_problem(monkeypatch):
    migraine = CONDITIONS_BY_KEY["migraine"]
    broken = (
        dataclasses.replace(migraine, key="broken_a", department="astrology", differentials=("nowhere",)),
        dataclasses.replace(migraine, key="broken_b", name={"zh": "头痛", "en": "headache"},
                            advice={"zh": ("", "多休息"), "en": ("rest",)}),
    )
    monkeypatch.setattr(world, "CONDITIONS", CONDITIONS + broken)
    monkeypatch.setattr(world, "CONDITIONS_BY_KEY", {c.key: c for c in CONDITIONS + broken})
    problems = "\n".join(world_problems())
    assert "condition 'broken_a': unknown department 'astrology'" in problems
    assert "condition 'broken_a': differential 'nowhere' is not another condition" in problems
    assert "zh names are not unique" in problems                   # broken_a reuses 偏头痛
    assert "zh name '偏头痛' contains name '头痛'" in problems
    assert "condition 'broken_b': empty phrase in advice[zh]" in problems
    assert "advice[en] has 1 items, want 3-5" in problems
    assert "phrase '突然出现的剧烈头痛' contains name '头痛'" in problems


def test_names_are_found_in_text_order():
    text = "考虑偏头痛，建议神经内科就诊；需与紧张型头痛鉴别。"
    found = [(m.kind, m.key, m.start) for m in find_mentions(text, "zh")]
    assert found == [("condition", "migraine", 2), ("department", "neurology", 8),
                     ("condition", "tension_headache", 17)]
    assert mentioned_conditions("Likely Acute Bronchitis. See respiratory medicine.", "en") == ["acute_bronchitis"]
    assert mentioned_departments("See urological surgery, not neurology.", "en") == ["urology", "neurology"]


def test_longest_name_wins_when_names_overlap():
    names = NameSet.of({n: n for n in ["鼻炎", "过敏性鼻炎", "urology", "neurology"]})
    assert find_spans(names, "过敏性鼻炎不是普通鼻炎") == [(0, "过敏性鼻炎"), (9, "鼻炎")]
    assert find_spans(names, "See Neurology or urology") == [(4, "neurology"), (17, "urology")]
    assert find_spans(names, "neurologyurology") == []          # English names are whole words


def test_no_name_inside_any_phrase():
    names = {lang: [c.name[lang].lower() for c in CONDITIONS] + [d.name[lang].lower() for d in DEPARTMENTS.values()]
             for lang in ("zh", "en")}
    for cond in CONDITIONS:
        for field in ("symptoms", "onset", "advice", "red_flags", "follow_up_questions"):
            for lang in ("zh", "en"):
                for phrase in getattr(cond, field)[lang]:
                    assert not [n for n in names[lang] if n in phrase.lower()], (cond.key, phrase)


def test_tables_are_data_files_checked_against_a_schema(tmp_path):
    """A broken data file fails on load with file, line and field; world_problems names lines."""
    import shutil

    import pytest

    from data_recipes.synthetic.tables import DATA_DIR, condition_location, load_world
    from medalign.config import ConfigError

    for f in DATA_DIR.glob("*.yaml"):
        shutil.copy(f, tmp_path / f.name)
    departments, conditions = load_world(tmp_path)
    assert conditions == CONDITIONS and departments == DEPARTMENTS
    path = tmp_path / "conditions_medicine.yaml"
    lines = path.read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == "name: {zh: 偏头痛, en: migraine}")
    lines[at] = "    name: {zh: 偏头痛, english: migraine}"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_world(tmp_path)
    assert f"{path}:{at + 1}: conditions.0.name.english: Extra inputs are not permitted" in e.value.problems
    assert f"{path}:{at + 1}: conditions.0.name.en: Field required" in e.value.problems
    where = condition_location("tension_headache", "advice", "en", 1)
    assert where.startswith("data_recipes/synthetic/data/conditions_medicine.yaml:")
    line = int(where.split(":")[1])
    source = (DATA_DIR / "conditions_medicine.yaml").read_text(encoding="utf-8").splitlines()[line - 1]
    assert source.strip() == "- " + CONDITIONS_BY_KEY["tension_headache"].advice["en"][1]


def test_world_problems_name_the_data_file_line(monkeypatch):
    migraine = CONDITIONS_BY_KEY["migraine"]
    broken = dataclasses.replace(migraine, department="astrology")
    monkeypatch.setattr(world, "CONDITIONS", (broken, *CONDITIONS[1:]))
    problems = world_problems()
    assert any(p.startswith("data_recipes/synthetic/data/conditions_medicine.yaml:")
               and p.endswith("condition 'migraine': unknown department 'astrology'") for p in problems), problems
