"""Multi-turn evaluation with the simulated patient (issue 10 §4): cards, conversations played
against the local server's patient by scripted doctors, ground-truth scores, failures as
statuses, transcripts."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from alignment.evaluation.cases import case_from_row
from alignment.evaluation.conversation_scores import conversation_metrics, conversation_scores
from alignment.evaluation.patient import (CONVERSATIONS, TRANSCRIPT, load_patient_template, patient_messages,
                                          read_conversations, run_conversations)
from data_recipes.synthetic.answers import draw_case, patient_message, wrong_condition
from data_recipes.synthetic.case_cards import CaseCard, case_card_for, patient_background
from data_recipes.synthetic.lexicon import world_lexicon
from data_recipes.synthetic.world import CONDITIONS_BY_KEY, department_of
from judges.audit import summarize
from judges.config import JudgeConfig, RetryConfig
from judges.server.patient import END
from judges.transcript_verify import verify_transcript

PATIENT = JudgeConfig(name="patient", model="medalign-patient")
# (condition, language, opening leaves out the onset and a key symptom)
PLAN = [("migraine", "en", True), ("chronic_gastritis", "zh", True), ("asthma", "en", False),
        ("acute_cystitis", "zh", False)]


def world_rows(plan=PLAN) -> list[dict]:
    """Eval-set rows (JSON columns as strings, as in the Parquet files)."""
    rows = []
    for i, (key, lang, missing) in enumerate(plan):
        pc = draw_case(key, lang, random.Random(i), complete=not missing)
        card = case_card_for(pc, seed=0)
        cond = CONDITIONS_BY_KEY[key]
        rows.append({"case_id": f"c{i}", "eval_set": "multiturn_demo", "language": lang,
                     "messages": [{"role": "user", "content": card.opening}], "category": cond.department,
                     "reference": None, "truth": json.dumps({"condition": key, "department": cond.department,
                                                             "missing_info": missing}),
                     "case_card": card.model_dump_json(), "rubric": None})
    return rows


def world_cases(plan=PLAN):
    return [case_from_row(r) for r in world_rows(plan)]


def _condition_of(cases):
    by_opening = {c.messages[0]["content"]: c.truth.condition for c in cases}
    return lambda messages: CONDITIONS_BY_KEY[by_opening[messages[0]["content"]]]


def _zh(messages) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in messages[0]["content"])


def asks_then_diagnoses(cases):
    """Turn 1: asks onset and other symptoms; turn 2: the right diagnosis and department."""
    condition = _condition_of(cases)

    def doctor(batch):
        out = []
        for messages in batch:
            cond, lang = condition(messages), "zh" if _zh(messages) else "en"
            if len(messages) == 1:
                out.append("多久了？还有其他症状吗？" if lang == "zh" else "How long has it been? Any other symptoms?")
            else:
                out.append(f"考虑{cond.name['zh']}，建议{department_of(cond, 'zh')}就诊。" if lang == "zh"
                           else f"Likely {cond.name['en']}. See {department_of(cond, 'en')}.")
        return out
    return doctor


def wrong_at_once(cases):
    condition = _condition_of(cases)

    def doctor(batch):
        out = []
        for messages in batch:
            wrong = wrong_condition(condition(messages), random.Random(0))
            lang = "zh" if _zh(messages) else "en"
            out.append(f"应该是{wrong.name['zh']}。" if lang == "zh" else f"It is {wrong.name['en']}.")
        return out
    return doctor


def test_case_cards_come_from_the_world_and_the_background_names_nothing():
    pc = draw_case("migraine", "en", random.Random(1), complete=False)
    card = case_card_for(pc, seed=0)
    assert card.opening == patient_message(pc) and card.condition == "migraine"
    assert card.withheld_symptoms[0] == pc.withheld and card.onset == pc.onset and not card.onset_told
    assert set(card.shown_symptoms) | set(card.withheld_symptoms) == set(pc.condition.symptoms["en"])
    assert card.missing_items() == [pc.withheld, pc.onset]
    assert "condition" not in card.patient_view()
    assert case_card_for(pc, seed=0) == card and CaseCard.model_validate_json(card.model_dump_json()) == card
    lexicon = world_lexicon()
    bg = patient_background()
    for field in ("medication", "allergies", "history", "unknown_reply"):
        for lang in ("en", "zh"):
            for phrase in getattr(getattr(bg, field), lang):
                assert not lexicon.find_conditions(phrase) and not lexicon.find_departments(phrase), phrase
    template = load_patient_template()
    assert template.end_marker == END                      # the local patient's end marker
    assert set(template.variants) == {"en", "zh"}
    messages = patient_messages(template, card, [{"role": "assistant", "content": "How long?"}])
    assert [m["role"] for m in messages] == ["system", "user"]   # the doctor speaks as "user"
    assert "[Case card]" in messages[0]["content"] and END in messages[0]["content"]
    assert '"condition"' not in messages[0]["content"] and "migraine" not in messages[0]["content"]


def test_a_doctor_who_asks_then_diagnoses_right(tmp_path):
    cases = world_cases()
    convs = run_conversations(cases, asks_then_diagnoses(cases), PATIENT, max_turns=4,
                              store_dir=tmp_path, seed=0)
    assert [c.status for c in convs] == ["diagnosed"] * 4
    assert [c.doctor_turns for c in convs] == [2] * 4
    for conv, case in zip(convs, cases):
        card = case.case_card
        answer = conv.turns[1]["content"]
        assert conv.turns[1]["role"] == "user" and card.withheld_symptoms[0] in answer
        assert card.onset in answer and not world_lexicon().find_conditions(answer)
    rows = conversation_scores(convs, cases)
    assert all(r["scored"] and r["correct"] and r["department_correct"] and r["asked"] for r in rows)
    assert [r["elicited"] for r in rows] == [True] * 4
    m = conversation_metrics(convs, cases, n_resamples=200)
    assert m["diagnosis_accuracy"]["value"] == 1.0 and m["diagnosis_accuracy"]["n"] == 4
    assert m["asked_when_missing"] == {"value": 1.0, "ci_low": 1.0, "ci_high": 1.0, "n": 2}
    assert m["needless_asking"]["value"] == 1.0 and m["needless_asking"]["n"] == 2
    assert m["mean_turns"]["value"] == 2.0 and m["diagnosis_hedged"]["value"] == 0.0
    assert m["diagnosis_outcomes"] == {"right": 4}
    # transcripts: one ok row per patient call, an intact chain; conversations on disk
    assert verify_transcript(tmp_path / TRANSCRIPT).ok
    rows = [json.loads(line) for line in (tmp_path / TRANSCRIPT).read_text().splitlines()]
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    assert {r["template_id"] for r in rows} == {"patient"} and rows[0]["model"] == "medalign-patient"
    assert summarize(tmp_path / TRANSCRIPT)["judges"]["patient"]["status_counts"] == {"ok": 4}
    assert [c.messages for c in read_conversations(tmp_path / CONVERSATIONS)] == [c.messages for c in convs]
    # a second run makes no patient call: every one is done in the transcript
    again = run_conversations(cases, asks_then_diagnoses(cases), PATIENT, max_turns=4,
                              store_dir=tmp_path, seed=0)
    assert [c.messages for c in again] == [c.messages for c in convs]
    calls = json.loads((tmp_path / "patient_calls.json").read_text())
    assert calls["api_calls"] == 0 and calls["already_done"] == 4


def test_a_doctor_who_diagnoses_wrong_at_once(tmp_path):
    cases = world_cases()
    convs = run_conversations(cases, wrong_at_once(cases), PATIENT, max_turns=4,
                              store_dir=tmp_path, seed=0)
    assert [(c.status, c.doctor_turns) for c in convs] == [("diagnosed", 1)] * 4
    assert not (tmp_path / TRANSCRIPT).read_text()              # the patient was never called
    m = conversation_metrics(convs, cases, n_resamples=200)
    assert m["diagnosis_accuracy"]["value"] == 0.0 and m["department_accuracy"]["value"] == 0.0
    assert m["asked_when_missing"]["value"] == 0.0 and m["elicited_when_missing"]["value"] == 0.0
    assert m["needless_asking"]["value"] == 0.0 and m["mean_turns"]["value"] == 1.0


def test_hedging_silence_and_endless_questions_end_as_they_should(tmp_path):
    cases = world_cases()
    cond = _condition_of(cases)

    def doctor(batch):
        out = []
        for i, messages in enumerate(batch):
            c = cond(messages)
            case_no = [k.messages[0]["content"] for k in cases].index(messages[0]["content"])
            if case_no == 0:                    # hedges between two conditions
                other = CONDITIONS_BY_KEY[c.differentials[0]]
                out.append(f"It could be {c.name['en']} or {other.name['en']}.")
            elif case_no == 1:                  # asks nothing, names nothing
                out.append("多喝水，注意休息。")
            else:                               # asks forever, a condition only inside a question
                out.append(f"Any allergies? Could it be {c.name['en']}?" if case_no == 2
                           else f"有过敏史吗？会是{c.name['zh']}吗？")
        return out
    convs = run_conversations(cases, doctor, PATIENT, max_turns=3, store_dir=tmp_path, seed=0)
    assert [c.status for c in convs] == ["diagnosed", "ended_by_patient", "max_turns", "max_turns"]
    assert len(convs[0].diagnosis) == 2 and [c.doctor_turns for c in convs] == [1, 1, 3, 3]
    card = cases[2].case_card
    assert convs[2].turns[1]["content"] in (f"{card.allergies} {card.unknown_reply}", card.allergies)
    rows = conversation_scores(convs, cases)
    assert rows[0]["hedged"] and not rows[0]["correct"]
    assert not rows[1]["diagnosed"] and not rows[1]["asked"]
    assert rows[2]["asked"] and not rows[2]["diagnosed"]


@pytest.mark.parametrize("fault,status", [("server_error", "patient_api_error"),
                                          ("refusal", "patient_refused")])
def test_a_failed_patient_call_is_a_status_never_an_answer(tmp_path, fault, status):
    cases = world_cases()
    failing = PATIENT.model_copy(update={
        "retry": RetryConfig(max_attempts=1),
        "local": PATIENT.local.model_copy(update={"faults": [fault], "fault_rate": 1.0})})
    convs = run_conversations(cases, asks_then_diagnoses(cases), failing, max_turns=4,
                              store_dir=tmp_path, seed=0)
    assert [c.status for c in convs] == [status] * 4
    assert all(len(c.turns) == 1 and c.turns[0]["role"] == "assistant" for c in convs)
    assert all(c.patient_error for c in convs)
    m = conversation_metrics(convs, cases, n_resamples=200)
    assert m["scored"] == 0 and m["patient_failures"] == 4
    assert m["diagnosis_accuracy"]["value"] is None
    rows = [json.loads(line) for line in (tmp_path / TRANSCRIPT).read_text().splitlines()]
    assert {r["status"] for r in rows} == {status.removeprefix("patient_")}


def test_real_cases_end_by_the_patient_and_no_secret_reaches_the_transcript(tmp_path, monkeypatch):
    key = "sk-patient-test-0123456789abcdef"
    monkeypatch.setenv("MEDALIGN_TEST_PATIENT_KEY", key)
    cfg = PATIENT.model_copy(update={"api_key_env": "MEDALIGN_TEST_PATIENT_KEY"})
    cases = world_cases()[:1]
    real = dataclasses.replace(cases[0], case_id="real", truth=None)   # no ground truth: no diagnosis ending
    nocard = dataclasses.replace(cases[0], case_id="nocard", case_card=None)

    def doctor(batch):
        return [f"Your key is {key}. How long has it been?" if len(m) == 1
                else "Likely migraine, see neurology." for m in batch]
    convs = run_conversations([real, nocard], doctor, cfg, max_turns=4, store_dir=tmp_path, seed=0)
    assert [c.status for c in convs] == ["ended_by_patient", "no_case_card"]
    assert convs[0].doctor_turns == 2 and convs[1].doctor_turns == 0
    assert key not in (tmp_path / TRANSCRIPT).read_text()
    rows = conversation_scores(convs, [real, nocard])
    assert not any(r["scored"] for r in rows)


@pytest.mark.slow
def test_a_tiny_checkpoint_plays_the_doctor(tmp_path, tiny_sft_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from alignment.generation import SamplingSpec, generate_responses

    tok = AutoTokenizer.from_pretrained(tiny_sft_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_sft_model_dir)
    spec = SamplingSpec(temperature=0.0, max_new_tokens=24, batch_size=4)

    def doctor(batch):
        return [g[0].text for g in generate_responses(model, tok, batch, spec, seed=0)]
    cases = world_cases()
    convs = run_conversations(cases, doctor, PATIENT, max_turns=3, store_dir=tmp_path, seed=0)
    assert all(c.status in ("diagnosed", "ended_by_patient", "max_turns") for c in convs)
    m = conversation_metrics(convs, cases, n_resamples=100)
    assert m["scored"] == 4 and 0.0 <= m["diagnosis_accuracy"]["value"] <= 1.0


def test_a_bad_case_card_is_one_line_naming_the_case_and_field():
    from medalign.config import ConfigError

    row = world_rows()[0]
    card = json.loads(row["case_card"])
    del card["opening"]
    with pytest.raises(ConfigError) as e:
        case_from_row({**row, "case_card": json.dumps(card)}, "eval case c0")
    assert e.value.problems == ["eval case c0: case_card.opening: Field required"]
    with pytest.raises(ConfigError, match="eval case c0: messages: must end with a user turn"):
        case_from_row({**row, "messages": []}, "eval case c0")
