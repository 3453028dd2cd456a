"""The local judge's rubric: the HuatuoGPT thesis holds, and each criterion does what it says."""

from __future__ import annotations

import random
import statistics

from data_recipes.synthetic.answers import STYLES, compose_answer
from data_recipes.synthetic.lexicon import world_lexicon
from data_recipes.synthetic.world import CONDITIONS
from judges.server.rubric import conciseness, features, rate


def test_huatuo_thesis_hybrid_beats_both_styles_and_weak_is_worst():
    totals = {s: [] for s in STYLES}
    for cond in CONDITIONS:
        for lang in ("zh", "en"):
            for ask in (False, True):
                rng = random.Random(f"{cond.key}-{lang}-{ask}")
                reference = compose_answer(cond, lang, "doctor", rng, ask)
                for style in STYLES:
                    answer = compose_answer(cond, lang, style, rng, ask)
                    totals[style].append(rate(answer, reference, lang).total)
    mean = {s: statistics.mean(v) for s, v in totals.items()}
    assert mean["hybrid"] > mean["doctor"] and mean["hybrid"] > mean["distilled"], mean
    assert mean["weak"] < min(mean["doctor"], mean["distilled"]), mean
    # per case, too: hybrid wins on the same case far more often than not
    wins = sum(h > max(d, t) for h, d, t in zip(totals["hybrid"], totals["doctor"], totals["distilled"]))
    assert wins / len(totals["hybrid"]) > 0.9


def test_lexicon_matches_longest_names_first():
    lex = world_lexicon()
    assert lex.find_conditions("考虑紧张型头痛") == ["tension_headache"]
    assert lex.find_departments("请到消化科看看") == lex.find_departments("请到消化内科看看")
    assert lex.find_departments("the patient says") == []          # "ent" is not inside a word


def test_accuracy_commit_beats_hedge_beats_wrong():
    ref = "Most likely migraine; see neurology."
    commit = rate("This is migraine. See neurology.", ref, "en").accuracy
    hedge = rate("It could be migraine, tension-type headache or chronic sinusitis.", ref, "en").accuracy
    wrong = rate("This is urticaria. See dermatology.", ref, "en").accuracy
    none = rate("Drink water and rest.", ref, "en").accuracy
    assert commit > hedge > none >= wrong


def test_doctor_likeness_needs_a_relevant_question_when_the_doctor_asked():
    ref = "Is the pain on one side or both sides? How long does each attack last?"
    relevant = rate("Likely migraine. How long does each attack last?", ref, "en").doctor
    unrelated = rate("Likely migraine. Anything else bothering you?", ref, "en").doctor
    silent = rate("Likely migraine.", ref, "en").doctor
    assert relevant == 1.0 and unrelated == 0.5 and silent == 0.0
    # when the doctor asked nothing, asking is neither rewarded nor punished
    ref2 = "Migraine; see neurology."
    assert rate("Migraine?", ref2, "en").doctor == rate("Migraine.", ref2, "en").doctor


def test_helpfulness_and_conciseness():
    f = features("建议规律作息。避免熬夜。如果出现突然出现的剧烈头痛，请立即就医。", "zh")
    assert f.advice_items >= 2 and f.red_flag
    assert conciseness(80, "zh") == 1.0
    assert conciseness(10, "zh") < 0.5 and conciseness(600, "zh") < 0.5
    assert rate("", "偏头痛", "zh").total < 3.5
