"""Ground-truth clinical metrics on hand-computed cases: synonyms (zh/en), hedging, departments,
asking when information is missing, needless asking, red flags, intervals, paired differences."""

from __future__ import annotations

import pytest

from alignment.evaluation.clinical import CaseCheck, check_response, paired, summarise
from alignment.metrics.stats import paired_difference
from data_recipes.eval_cases import Truth
from data_recipes.synthetic.eval_sets import department_names

MIGRAINE = dict(condition="migraine", condition_names=["偏头痛", "偏头疼", "migraine", "hemicrania"],
                department="neurology", department_names=list(department_names("neurology")),
                red_flags=["突然出现的剧烈头痛", "a sudden, explosive headache"],
                expects=["diagnosis", "department", "asking", "red_flags"])
COMPLETE = Truth(**MIGRAINE, missing_info=False)
MISSING = Truth(**{**MIGRAINE, "expects": ["asking"]}, missing_info=True, missing_items=["onset"])


@pytest.mark.parametrize("text, outcome", [
    ("考虑偏头痛，建议神经内科就诊。", "right"),
    ("考虑偏头疼，去神经内科看看。", "right"),                      # a zh synonym
    ("Most likely hemicrania; see neurology.", "right"),          # an en synonym
    ("This looks like MIGRAINE.", "right"),                       # case-insensitive
    ("偏头痛可能性大。", "right"),                                  # a commitment, not a hedge
    ("可能是偏头痛，也可能是紧张型头痛。", "hedged"),                 # several conditions
    ("考虑偏头痛或紧张型头痛。", "hedged"),
    ("可能是偏头痛，需要检查才能确定。", "hedged"),                   # one condition with hedging words
    ("It might be migraine, but I am not sure.", "hedged"),
    ("考虑紧张型头痛。", "wrong"),
    ("Probably tension-type headache.", "wrong"),
    ("多喝水，注意休息。", "none"),
])
def test_diagnosis_outcomes(text, outcome):
    assert check_response(text, COMPLETE).diagnosis == outcome


@pytest.mark.parametrize("text, outcome", [
    ("建议神经内科就诊。", "right"),
    ("See neurology.", "right"),
    ("去神经内科或者耳鼻喉科看看。", "hedged"),
    ("挂心内科。", "wrong"),                                        # a common alias of cardiology
    ("去医院看看。", "none"),
])
def test_department_outcomes(text, outcome):
    assert check_response(text, COMPLETE).department == outcome


@pytest.mark.parametrize("text, asked", [
    ("头痛是一侧还是两侧？", True), ("How long does each attack last?", True),
    ("请问发作时有没有恶心", True), ("头痛的时候恶心吗", True), ("Can you tell me when it started.", True),
    ("考虑偏头痛，建议神经内科就诊。", False), ("有问题再问。", False),
])
def test_asking(text, asked):
    check = check_response(text, MISSING)
    assert check.asked is asked and check.missing_info is True
    assert check.diagnosis is None and check.department is None and check.red_flag is None   # not expected


def test_red_flags_and_length():
    hit = check_response("考虑偏头痛。如果出现突然出现的 剧烈头痛，请立即就医。", COMPLETE)
    assert hit.red_flag is True and hit.length == 23                # characters, punctuation and spaces aside
    assert check_response("If you notice a sudden, explosive headache, go now.", COMPLETE).red_flag is True
    assert check_response("如果头痛很厉害请就医。", COMPLETE).red_flag is False    # a paraphrase is not found
    bare = check_response("Drink water and rest.", None)
    assert bare == CaseCheck(None, None, None, None, None, 4)


def _checks(diagnoses: list[str], asked_missing: list[bool], asked_complete: list[bool]) -> list[CaseCheck]:
    out = [CaseCheck(d, None, None, None, None, 10) for d in diagnoses]
    out += [CaseCheck(None, None, a, True, None, 4) for a in asked_missing]
    out += [CaseCheck(None, None, a, False, None, 4) for a in asked_complete]
    return out


def test_rates_are_over_the_cases_where_they_apply():
    s = summarise(_checks(["right", "hedged", "wrong", "none"], [True, True, False], [True, False]), n_bootstrap=200)
    assert s["diagnosis_accuracy"]["value"] == 0.25 and s["diagnosis_accuracy"]["n"] == 4
    assert s["diagnosis_hedged"]["value"] == 0.25                          # counted apart, never right
    assert s["asks_when_missing"]["value"] == pytest.approx(2 / 3) and s["asks_when_missing"]["n"] == 3
    assert s["needless_asking"]["value"] == 0.5 and s["needless_asking"]["n"] == 2
    assert s["department_accuracy"] == {"value": None, "ci_low": None, "ci_high": None, "n": 0}
    assert s["mean_response_length"]["value"] == pytest.approx((4 * 10 + 5 * 4) / 9)
    assert s["diagnosis_outcomes"] == {"right": 1, "hedged": 1, "wrong": 1, "none": 1}
    lo, hi = s["diagnosis_accuracy"]["ci_low"], s["diagnosis_accuracy"]["ci_high"]
    assert 0 <= lo <= 0.25 <= hi <= 1 and hi > lo


def test_paired_differences_are_over_the_same_cases():
    a = _checks(["right", "right", "wrong", "right"], [True, True], [False])
    b = _checks(["right", "wrong", "wrong", "none"], [False, True], [True])
    d = paired(a, b, n_bootstrap=500)
    assert d["diagnosis_accuracy"]["diff"] == pytest.approx(0.5) and d["diagnosis_accuracy"]["n"] == 4
    assert d["asks_when_missing"]["diff"] == pytest.approx(0.5) and d["needless_asking"]["diff"] == -1.0
    assert d["diagnosis_accuracy"]["ci_low"] <= 0.5 <= d["diagnosis_accuracy"]["ci_high"]


def test_paired_difference_interval_resamples_pairs():
    # every case: A right and B wrong -> the difference is 1 in every resample: a zero-width interval
    d = paired_difference([1.0] * 20, [0.0] * 20, n_resamples=300)
    assert (d["diff"], d["ci_low"], d["ci_high"], d["n"]) == (1.0, 1.0, 1.0, 20)
    # unpaired noise that cancels per case: the paired interval stays at 0
    assert paired_difference([0.0, 1.0] * 10, [0.0, 1.0] * 10)["ci_high"] == 0.0
    with pytest.raises(ValueError, match="unequal length"):
        paired_difference([1.0], [])


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_sets_references_pass_every_check_and_distilled_answers_never_commit(lang):
    """Truth and metrics agree: a good doctor's reference is right on every check that applies to
    its case (asking exactly when information is missing); the distilled style, which hedges, is
    never right on a diagnosis."""
    import random

    from data_recipes.synthetic.answers import compose_answer
    from data_recipes.synthetic.eval_sets import build_eval_multi_turn, build_eval_single_turn

    rows = build_eval_single_turn(100, random.Random(0), lang) + build_eval_multi_turn(100, random.Random(1), lang)
    s = summarise([check_response(r["reference"], Truth(**r["truth"])) for r in rows], n_bootstrap=100)
    for metric in ("diagnosis_accuracy", "department_accuracy", "asks_when_missing", "red_flag_coverage"):
        assert s[metric]["value"] == 1.0 and s[metric]["n"] >= 40, metric
    assert s["needless_asking"]["value"] == 0.0 and s["diagnosis_hedged"]["value"] == 0.0
    rng = random.Random(2)
    expecting = [r for r in rows if "diagnosis" in r["truth"]["expects"]]
    distilled = [check_response(compose_answer(r["truth"]["condition"], lang, "distilled", rng), Truth(**r["truth"]))
                 for r in expecting]
    assert {c.diagnosis for c in distilled} <= {"hedged", "none"} and any(c.diagnosis == "hedged" for c in distilled)


DOCTOR_TEXTS = ["头痛是一侧还是两侧？", "头痛的时候恶心吗", "请问发作时有没有恶心", "Can you tell me when it started.",
                "考虑偏头痛，建议神经内科就诊。", "可能是偏头痛，也可能是紧张型头痛。会吐吗？", "Likely migraine; see neurology.",
                "It might be migraine or tension-type headache.", "会是偏头痛吗？", "多喝水，注意休息。"]


@pytest.mark.parametrize("text", DOCTOR_TEXTS)
def test_every_caller_applies_the_same_rules(text):
    """One rule per idea: the clinical metrics, the local patient, the rubric grader, the rubric
    judge, the asks_question reward, the transfer job's diagnosis and the policy's routing agree
    with data_recipes.synthetic.clinical_rules on the same text."""
    import random

    from alignment.evaluation.patient import load_patient_template, patient_messages
    from alignment.metrics.diagnosis import ConditionMatcher
    from alignment.rl.reward_fn import asks_a_question
    from alignment.routing.policy import routed_department
    from data_recipes.synthetic.answers import draw_case
    from data_recipes.synthetic.case_cards import case_card_for
    from data_recipes.synthetic.clinical_rules import asks_question, department_outcome, diagnosis_outcome
    from data_recipes.synthetic.lexicon import world_lexicon
    from data_recipes.synthetic.rubrics import demo_rubric
    from judges.server import criteria, patient
    from judges.server.rubric import features

    asks = asks_question(text)
    check = check_response(text, COMPLETE)
    assert check.asked is asks and check.diagnosis == diagnosis_outcome(text, "migraine", MIGRAINE["condition_names"])
    assert check.department == department_outcome(text, "neurology")
    card = case_card_for(draw_case("migraine", "zh", random.Random(0)), seed=0)
    reply = patient.answer(patient_messages(load_patient_template(), card, [{"role": "assistant", "content": text}]), 0)
    assert (reply != patient.END) is asks
    assert bool(asks_a_question([[]], [text])[0]) is asks
    lang = "en" if text.isascii() else "zh"
    assert features(text, lang).asks is asks
    graded = {}
    for item in demo_rubric({"condition": "migraine", "missing_info": True}, lang):
        spec, language, values = criteria.read_criterion(item["criterion"])
        graded[spec.id] = criteria.check(spec, language, values, text)[0]
    assert graded["asks_missing_information"] is asks
    assert graded["right_diagnosis"] is (diagnosis_outcome(text, "migraine") == "right")
    assert graded["wrong_diagnosis"] is (diagnosis_outcome(text, "migraine") == "wrong")
    matcher = ConditionMatcher(world_lexicon().conditions, frozenset({"migraine"}))
    assert matcher.outcome(text, "migraine") == diagnosis_outcome(text, "migraine")
    assert routed_department(text, "神经内科")["correct"] is (department_outcome(text, "neurology") == "right")


def test_structure_rate_counts_organised_responses_over_every_case():
    checks = [check_response("建议：\n1. 多喝水。\n2. 注意休息。", COMPLETE),   # organised
              check_response("考虑偏头痛，建议神经内科就诊。", COMPLETE),         # terse, no list
              check_response("- rest\n- water", None)]                         # no truth: still counted
    assert [c.organised for c in checks] == [True, False, True]
    s = summarise(checks, n_bootstrap=200)
    assert s["structure_rate"]["value"] == pytest.approx(2 / 3) and s["structure_rate"]["n"] == 3
