"""The synthetic world: a valid, bilingual, unambiguous knowledge table."""

from __future__ import annotations

import dataclasses

from data_recipes.synthetic import world
from data_recipes.synthetic.lexicon import find_mentions, longest_first_pattern, mentioned_conditions, mentioned_departments
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
    pattern = longest_first_pattern(["鼻炎", "过敏性鼻炎", "urology", "neurology"])
    assert pattern.findall("过敏性鼻炎不是普通鼻炎") == ["过敏性鼻炎", "鼻炎"]
    assert pattern.findall("See Neurology or urology") == ["Neurology", "urology"]


def test_no_name_inside_any_phrase():
    names = {lang: [c.name[lang].lower() for c in CONDITIONS] + [d.name[lang].lower() for d in DEPARTMENTS.values()]
             for lang in ("zh", "en")}
    for cond in CONDITIONS:
        for field in ("symptoms", "onset", "advice", "red_flags", "follow_up_questions"):
            for lang in ("zh", "en"):
                for phrase in getattr(cond, field)[lang]:
                    assert not [n for n in names[lang] if n in phrase.lower()], (cond.key, phrase)
