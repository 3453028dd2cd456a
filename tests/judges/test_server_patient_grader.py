"""The local server's simulated patient and rubric-criterion grader (issue 10 §4, §5).

The patient answers only from the case card in its prompt and never names a condition; the
grader reads the demo rubric's criteria back and checks them with the lexicon, refusing what it
cannot read. Both are pure functions of the request, served over HTTP like the rubric.
"""

from __future__ import annotations

import json

import openai
import pytest

from data_recipes.synthetic.lexicon import world_lexicon
from data_recipes.synthetic.world import CONDITIONS
from judges.server import criteria, patient, running_server
from judges.server.prompt_parse import PromptNotUnderstood

CARD = {
    "language": "en", "intro": "I am 35, female.",
    "opening": "Hello doctor. I am 35, female. I have throbbing pain on one side of the head.",
    "shown_symptoms": ["throbbing pain on one side of the head"],
    "withheld_symptoms": ["sensitivity to light and noise"],
    "onset": "it has happened three or four times this month", "onset_told": False,
    "medication": "No regular medicine.", "allergies": "No known allergies.",
    "history": "Healthy otherwise, no operations.", "unknown_reply": "I'm not sure about that.",
}


def _ask(card: dict, *doctor_turns: str, seed: int = 0) -> str:
    system = "You play a patient.\n\n[Case card]\n" + json.dumps(card, ensure_ascii=False)
    messages = [{"role": "system", "content": system}]
    for i, turn in enumerate(doctor_turns):
        if i:
            messages.append({"role": "assistant", "content": "(earlier answer)"})
        messages.append({"role": "user", "content": turn})
    return patient.answer(messages, seed)


def test_the_patient_answers_each_topic_from_its_card():
    assert _ask(CARD, "How long has this been going on?").lower().endswith(
        "it has happened three or four times this month.")
    assert "sensitivity to light and noise" in _ask(CARD, "Any other symptoms?")
    assert "sensitivity to light and noise" in _ask(CARD, "Does light bother you?")
    assert _ask(CARD, "Are you taking any medication?") == "No regular medicine."
    assert _ask(CARD, "Any allergies?") == "No known allergies."
    assert _ask(CARD, "Any chronic illness in the past?") == "Healthy otherwise, no operations."
    assert _ask(CARD, "How old are you?") == "I am 35, female."
    both = _ask(CARD, "When did it start, and do you have any allergies?")
    assert "three or four times" in both and "No known allergies." in both
    # the same request gets the same answer
    assert _ask(CARD, "Any other symptoms?", seed=3) == _ask(CARD, "Any other symptoms?", seed=3)


def test_the_patient_says_it_does_not_know_what_is_not_on_its_card():
    bare = {**CARD, "withheld_symptoms": [], "onset": None, "medication": "", "allergies": "",
            "history": "", "intro": ""}
    for question in ("How long has this been going on?", "Any other symptoms?",
                     "Are you taking any medication?", "Any allergies?", "How old are you?",
                     "What is your blood type?", "Is it migraine?"):
        assert _ask(bare, question) == "I'm not sure about that.", question
    # the world's other migraine symptoms are not on the card: never told
    told = _ask(CARD, "Any other symptoms? Flashing lights? Nausea? Worse on stairs?")
    for absent in ("flashing lights", "nausea", "climbing stairs"):
        assert absent not in told.lower()


def test_the_patient_ends_when_the_doctor_asks_nothing_and_never_names_a_condition():
    assert _ask(CARD, "Likely migraine. See neurology.") == patient.END
    assert _ask(CARD, "Drink water and rest.") == patient.END
    assert _ask(CARD, "Do you have migraine?") == "I'm not sure about that."
    lexicon = world_lexicon()
    for cond in CONDITIONS:
        for lang in ("en", "zh"):
            symptoms = list(cond.symptoms[lang])
            card = {**CARD, "language": lang, "shown_symptoms": symptoms[:1],
                    "withheld_symptoms": symptoms[1:], "onset": cond.onset[lang][0],
                    "unknown_reply": "不知道。" if lang == "zh" else "I don't know."}
            for other in CONDITIONS[:12]:
                for question in other.follow_up_questions[lang]:
                    reply = _ask(card, question)
                    assert lexicon.find_conditions(reply) == [], (cond.key, question, reply)


def test_the_patient_cannot_read_a_prompt_without_a_card():
    with pytest.raises(PromptNotUnderstood, match="case card"):
        patient.answer([{"role": "system", "content": "no card"},
                        {"role": "user", "content": "How long?"}], 0)
    with pytest.raises(PromptNotUnderstood, match="lacks"):
        _ask({"language": "en"}, "How long?")


def _grading_prompt(response: str, item: str) -> list[dict]:
    return [{"role": "user", "content": f"Grade it.\n\n# Conversation\nuser: I have a headache.\n\n"
             f"assistant: {response}\n\n# Rubric item\n{item}\n\n# Instructions\nAnswer in JSON."}]


def test_the_grader_checks_demo_criteria_and_refuses_others():
    right = 'Names "migraine" as the most likely diagnosis, without listing other conditions as alternatives.'
    reply = criteria.answer(_grading_prompt("Likely migraine; see neurology.", f"[5] {right}"), 0)
    assert json.loads(reply.strip("`").removeprefix("json"))["criteria_met"] is True
    reply = criteria.answer(_grading_prompt("Maybe migraine or tension-type headache.", f"[5] {right}"), 0)
    assert json.loads(reply.strip("`").removeprefix("json"))["criteria_met"] is False
    unknown = criteria.answer(_grading_prompt("Likely migraine.", "[5] Is kind to the user."), 0)
    assert unknown.startswith("I'm sorry, I can't grade")
    bad_name = criteria.answer(_grading_prompt("x", '[5] Recommends seeing "astrology".'), 0)
    assert bad_name.startswith("I'm sorry, I can't grade")
    with pytest.raises(PromptNotUnderstood):
        criteria.answer([{"role": "user", "content": "no sections"}], 0)


def test_patient_and_grader_are_served_over_http():
    with running_server() as url:
        client = openai.OpenAI(base_url=url, api_key="EMPTY", max_retries=0)
        system = "[Case card]\n" + json.dumps(CARD)
        reply = client.chat.completions.create(model=patient.MODEL, seed=1, messages=[
            {"role": "system", "content": system}, {"role": "user", "content": "Any allergies?"}])
        assert reply.choices[0].message.content == "No known allergies."
        with pytest.raises(openai.BadRequestError, match="medalign-patient cannot read"):
            client.chat.completions.create(model=patient.MODEL, messages=[
                {"role": "user", "content": "How long?"}])
        with pytest.raises(openai.NotFoundError, match="medalign-grader"):
            client.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "?"}])
