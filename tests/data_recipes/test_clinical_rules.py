"""The project's one implementation of each clinical rule (data_recipes/synthetic/clinical_rules.py)
on hand-written zh/en texts: asking, hedging, the condition a reply commits to, and the naming
outcome of a diagnosis or a department."""

from __future__ import annotations

import pytest

from data_recipes.synthetic.clinical_rules import (asks_question, committed_conditions, department_outcome,
                                                   diagnosis_outcome, hedges, is_organised, list_items, sentences,
                                                   split_questions)
from data_recipes.synthetic.lexicon import NameSet


@pytest.mark.parametrize("text, asked", [
    ("头痛是一侧还是两侧？", True),
    ("How long does each attack last?", True),
    ("头痛的时候恶心吗", True),                              # a Chinese question without a question mark
    ("发作时会呕吐吗。", True),                              # 吗 before the full stop
    ("请问发作时有没有恶心", True),                          # an inquiry phrase
    ("Can you tell me when it started.", True),
    ("考虑偏头痛，建议神经内科就诊。", False),
    ("Likely migraine; see neurology.", False),
    ("有问题再问。", False),
    ("", False),
])
def test_asks_question(text, asked):
    assert asks_question(text) is asked


@pytest.mark.parametrize("text, hedged", [
    ("可能是偏头痛，也可能是紧张型头痛。", True), ("不排除偏头痛。", True),
    ("It might be migraine, but I am not sure.", True),
    ("偏头痛可能性大。", False), ("考虑偏头痛。", False), ("Most likely migraine.", False),
])
def test_hedges(text, hedged):
    assert hedges(text) is hedged


def test_sentences_keep_decimals_and_questions_are_whole_sentences():
    assert sentences("体温38.5度。会是偏头痛吗？") == ["体温38.5度。", "会是偏头痛吗？"]
    statements, questions = split_questions("Is it 38.5? Likely migraine. Could it be asthma?")
    assert questions == ["Is it 38.5?", " Could it be asthma?"] and statements == [" Likely migraine."]


@pytest.mark.parametrize("text, committed", [
    ("考虑偏头痛，建议神经内科就诊。请问多久了？", ["migraine"]),
    ("会是偏头痛还是紧张型头痛？", []),                        # a question commits to nothing
    ("Could it be migraine?", []),
    ("考虑偏头痛。会不会是紧张型头痛？", ["migraine"]),
    ("可能是偏头痛，也可能是紧张型头痛。", ["migraine", "tension_headache"]),
    ("多喝水，注意休息。", []),
])
def test_committed_conditions(text, committed):
    assert committed_conditions(text) == committed


@pytest.mark.parametrize("text, outcome", [
    ("考虑偏头痛，建议神经内科就诊。", "right"),
    ("考虑偏头疼。", "right"),                                # a zh synonym
    ("Most likely hemicrania.", "right"),                     # an en synonym
    ("偏头痛可能性大。会不会是紧张型头痛？", "right"),           # the other one only in a question
    ("可能是偏头痛，需要检查才能确定。", "hedged"),               # one condition with hedging words
    ("考虑偏头痛或紧张型头痛。", "hedged"),                     # several conditions
    ("Probably tension-type headache.", "wrong"),
    ("Is it migraine?", "none"),
    ("多喝水。", "none"),
])
def test_diagnosis_outcome(text, outcome):
    assert diagnosis_outcome(text, "migraine") == outcome


def test_own_names_count_as_the_truth_and_another_name_set_can_be_given():
    assert diagnosis_outcome("考虑小偏头痛症。", None, ["小偏头痛症"]) == "right"
    names = NameSet.of({"灰翼病毒肺炎": "greywing", "偏头痛": "migraine"})
    assert diagnosis_outcome("像是灰翼病毒肺炎。", "greywing", names=names) == "right"
    assert diagnosis_outcome("灰翼病毒肺炎或偏头痛。", "greywing", names=names) == "hedged"
    assert committed_conditions("考虑灰翼病毒肺炎。", names) == ["greywing"]


@pytest.mark.parametrize("text, outcome", [
    ("建议神经内科就诊。", "right"),
    ("See neurology.", "right"),
    ("要不要去神经内科看看？", "right"),                       # a referral as a question is still one
    ("去神经内科或者耳鼻喉科看看。", "hedged"),
    ("挂心内科。", "wrong"),                                   # a common alias of cardiology
    ("去医院看看。", "none"),
])
def test_department_outcome(text, outcome):
    assert department_outcome(text, "neurology") == outcome


def test_a_department_the_lexicon_does_not_know_is_found_by_its_own_name():
    assert department_outcome("建议去康复医学部看看。", None, ["康复医学部"]) == "right"
    assert department_outcome("先去神经内科，再去康复医学部。", None, ["康复医学部"]) == "hedged"


@pytest.mark.parametrize("text, items", [
    ("建议：\n1. 多喝水。\n2. 注意休息。", 2),                 # the hybrid / distilled layout
    ("建议：\n1、多喝水\n2、休息\n3、清淡饮食", 3),
    ("(1) rest\n（2）多喝水\n  - keep notes\n• sleep", 4),       # brackets, indented bullet
    ("考虑偏头痛，建议神经内科就诊。1. 多喝水 2. 休息", 0),       # numbers inside a line are not items
    ("38.5度发烧两天\n12.5 kg", 0),                            # a decimal number opens no item
    ("-3度的天气出门\n2026年复查", 0),                          # a negative number, a year
    ("", 0),
])
def test_list_items(text, items):
    assert list_items(text) == items


@pytest.mark.parametrize("text, organised", [
    ("以下建议供您参考：\n1. 多喝水。\n2. 注意休息。\n3. 保持心情舒畅。", True),
    ("What to do:\n- rest\n- drink water", True),
    ("建议：\n1. 多喝水。", False),                              # one item is not a list
    ("考虑偏头痛，建议神经内科就诊。先多休息。", False),            # the real doctor's terse reply
])
def test_is_organised(text, organised):
    assert is_organised(text) is organised
