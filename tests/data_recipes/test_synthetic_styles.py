"""The HuatuoGPT thesis, made testable: doctor, distilled, hybrid and weak answers differ the way
the paper says (names checked with the world's lexicon)."""

from __future__ import annotations

import random
from statistics import mean

import pytest

from data_recipes.synthetic.answers import STYLES, compose_answer
from data_recipes.synthetic.consultations import iter_consultations
from data_recipes.synthetic.lexicon import find_mentions, mentioned_conditions, mentioned_departments
from data_recipes.synthetic.phrasing import T
from data_recipes.synthetic.world import CONDITIONS

LANGS = ("zh", "en")


def _asks(text, cond, lang):
    return any(q in text for q in cond.follow_up_questions[lang])


def _answers(style, lang, ask, seed=0):
    rng = random.Random(f"{style}-{lang}-{ask}-{seed}")
    return [(c, compose_answer(c, lang, style, rng, ask=ask)) for c in CONDITIONS for _ in range(3)]


@pytest.mark.parametrize("lang", LANGS)
def test_doctor_commits_to_diagnosis_and_department(lang):
    for cond, text in _answers("doctor", lang, ask=False):
        assert mentioned_conditions(text, lang) == [cond.key], text
        assert mentioned_departments(text, lang) == [cond.department], text
        assert not _asks(text, cond, lang)


@pytest.mark.parametrize("lang", LANGS)
def test_doctor_asks_first_when_information_is_missing(lang):
    for cond, text in _answers("doctor", lang, ask=True):
        assert _asks(text, cond, lang), text
        assert find_mentions(text, lang) == [], text


@pytest.mark.parametrize("lang", LANGS)
def test_distilled_hedges_is_structured_and_rarely_asks(lang):
    for ask in (False, True):
        for cond, text in _answers("distilled", lang, ask=ask):
            named = mentioned_conditions(text, lang)
            assert named == [] or (len(named) >= 2 and cond.key in named), text   # never commits to one
            assert "1. " in text and "2. " in text
            assert any(flag in text for flag in cond.red_flags[lang])
            assert _asks(text, cond, lang) == ask


@pytest.mark.parametrize("lang", LANGS)
def test_hybrid_commits_asks_and_gives_structured_advice(lang):
    for ask in (False, True):
        for cond, text in _answers("hybrid", lang, ask=ask):
            assert mentioned_conditions(text, lang) == [cond.key], text
            assert cond.department in mentioned_departments(text, lang)
            assert "1. " in text and any(flag in text for flag in cond.red_flags[lang])
            assert _asks(text, cond, lang) == ask


@pytest.mark.parametrize("lang", LANGS)
def test_weak_is_vague_or_wrong(lang):
    wrong = 0
    for cond, text in _answers("weak", lang, ask=False):
        named = mentioned_conditions(text, lang)
        assert cond.key not in named
        if named:
            wrong += 1
            assert cond.department not in mentioned_departments(text, lang)
    assert 0 < wrong < len(CONDITIONS) * 3


@pytest.mark.parametrize("lang", LANGS)
def test_lengths_doctor_lt_hybrid_lt_distilled(lang):
    length = {style: mean(len(t) for _, t in _answers(style, lang, ask=False)) for style in STYLES}
    assert length["weak"] < length["doctor"] < length["hybrid"] < length["distilled"]
    assert length["distilled"] > 2 * length["hybrid"] > 4 * length["doctor"] / 2


def test_unknown_style_is_an_error():
    with pytest.raises(ValueError, match="unknown answer style 'nurse'; known: doctor, distilled, hybrid, weak"):
        compose_answer("migraine", "zh", "nurse", random.Random(0))


def test_templates_name_no_condition_or_department():
    for lang in LANGS:
        for slot, templates in T[lang].items():
            for template in templates:
                assert find_mentions(template, lang) == [], (lang, slot, template)


@pytest.mark.parametrize("lang", LANGS)
def test_consultations_ask_before_diagnosing_when_information_is_missing(lang):
    consultations = list(iter_consultations(400, seed=5, lang=lang))
    incomplete = [c for c in consultations if not c.case.complete]
    assert 0.5 < len(incomplete) / len(consultations) < 0.7
    for c in consultations:
        cond = c.case.condition
        doctor = [text for speaker, text in c.turns if speaker == "doctor"]
        if not c.case.complete:
            assert _asks(doctor[0], cond, lang) and find_mentions(doctor[0], lang) == []
            answer = c.turns[[s for s, _ in c.turns].index("doctor") + 1][1]
            assert c.case.onset.lower() in answer.lower() and c.case.withheld in answer
            diagnosis = doctor[1]
        else:
            diagnosis = doctor[0]
        assert mentioned_conditions(diagnosis, lang) == [cond.key]
        assert mentioned_departments(diagnosis, lang) == [cond.department]
        assert all(find_mentions(text, lang) == [] for speaker, text in c.turns if speaker == "patient")


@pytest.mark.parametrize("lang", LANGS)
def test_distilled_and_hybrid_answers_are_organised_doctor_answers_are_terse(lang):
    """The ablation's "organised" and "terse" features on the styles (clinical_rules.is_organised)."""
    from alignment.metrics.text import text_tokens
    from data_recipes.synthetic.clinical_rules import is_organised

    share = {s: mean(is_organised(a) for _, a in _answers(s, lang, False)) for s in ("doctor", "distilled", "hybrid")}
    assert share == {"doctor": 0, "distilled": 1, "hybrid": 1}
    length = {s: mean(len(text_tokens(a)) for _, a in _answers(s, lang, False)) for s in ("doctor", "distilled")}
    assert length["doctor"] * 3 < length["distilled"]
