"""Synthetic real-doctor consultations, rendered in MedDialog's raw text format.

One consultation block (Chinese; English uses ``Patient:``/``Doctor:`` and English field names)::

    id=7
    https://synthetic.medalign.example/zh/consultation/7

    Doctor faculty
    神经内科

    Description
    疾病：
    一侧头部搏动样疼痛
    病情描述：
    ...
    希望获得的帮助：
    ...

    Dialogue
    病人：
    医生您好，……
    医生：
    先问一下，每次发作持续多久？
    ...

    Diagnosis and suggestions
    病情摘要及初步印象：
    偏头痛
    总结建议：
    ...

For ~60% of consultations the patient's first message lacks the onset and a key symptom; the
doctor then first asks 1-2 of the condition's follow-up questions, the patient answers, and only
then does the doctor name the diagnosis and department. Seeded quirks of the real data: a ping
message before the question and a diagnosis split over two messages (consecutive utterances of
one speaker), a repeated Description/Dialogue block, a multi-line utterance, and fake personal
details (names, phone numbers, e-mail, resident ID numbers) for PII scrubbing to find.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from data_recipes.synthetic.answers import (
    PatientCase, doctor_parts, draw_case, patient_body, patient_message, patient_reply,
)
from data_recipes.synthetic.phrasing import T, sentence
from data_recipes.synthetic.world import CONDITIONS, department_of

P_INCOMPLETE = 0.6        # first message lacks key information -> the doctor asks first
P_PING = 0.06             # patient sends "医生在吗？" first (consecutive patient utterances)
P_SPLIT_DOCTOR = 0.10     # diagnosis and advice sent as two doctor utterances
P_REPEAT_BLOCK = 0.08     # a second Description/Dialogue block in the same consultation
P_MULTILINE = 0.10        # the first message spans two lines
P_PII = 0.06              # the first message carries a fake name / phone / e-mail / ID number
P_THANKS = 0.30           # closing thanks and reply
P_DIAGNOSIS = 0.70        # a "Diagnosis and suggestions" section

_TAGS = {"zh": ("病人：", "医生："), "en": ("Patient:", "Doctor:")}
DESCRIPTION_FIELDS = {
    "zh": ("疾病：", "病情描述：", "希望获得的帮助：", "患病多久：", "用药情况：", "过敏史：", "既往病史："),
    "en": ("Condition:", "Description:", "Help wanted:", "Duration:", "Medication:", "Allergies:", "Past history:"),
}
UNKNOWN_DURATION = {"zh": "不清楚", "en": "not sure"}
MEDICATION = {"zh": ("无", "未用药", "自己吃过一些药，具体记不清"), "en": ("none", "no medicine yet", "some over-the-counter medicine, not sure which")}
ALLERGY = {"zh": ("无", "无", "青霉素过敏"), "en": ("none", "none", "penicillin")}
HISTORY = {"zh": ("无", "无", "体健"), "en": ("none", "none", "generally healthy")}
_DIAGNOSIS_LABELS = {"zh": ("病情摘要及初步印象：", "总结建议："), "en": ("Summary and initial impression:", "Suggestions:")}
_NAMES = {"zh": ("张三", "李四", "王芳", "刘洋", "陈静", "赵磊"), "en": ("John Smith", "Mary Jones", "David Brown", "Emma Wilson")}


@dataclass
class Consultation:
    """One generated consultation: the case, its dialogue turns and the rendered extras."""

    id: int
    case: PatientCase
    turns: list[tuple[str, str]]                        # ("patient" | "doctor", text), quirks included
    extra_turns: list[tuple[str, str]] = field(default_factory=list)  # the repeated block's dialogue
    diagnosis: str | None = None                        # the "Diagnosis and suggestions" text
    description: list[str] = field(default_factory=list)  # Description lines


def iter_consultations(n: int, seed: int, lang: str, start_id: int = 0) -> Iterator[Consultation]:
    """``n`` consultations in ``lang``; the same (seed, lang) always gives the same sequence."""
    rng = random.Random(f"medalign-synth:{seed}:{lang}:meddialog_raw")
    for i in range(start_id, start_id + n):
        yield make_consultation(i, rng.choice(CONDITIONS), lang, rng)


def iter_meddialog_raw_blocks(n: int, seed: int, lang: str, start_id: int = 0) -> Iterator[str]:
    """The MedDialog raw text of ``n`` consultations, one block (ending in a blank line) at a time.

    ``"".join(blocks)`` is a valid raw file; a benchmark can stream millions to disk this way.
    """
    for consultation in iter_consultations(n, seed, lang, start_id):
        yield render_block(consultation, lang)


def make_consultation(cid: int, cond, lang: str, rng: random.Random) -> Consultation:
    """Draw one consultation about ``cond`` (see the module docstring for the dialogue shape)."""
    case = draw_case(cond, lang, rng, complete=rng.random() >= P_INCOMPLETE)
    first = patient_message(case)
    if rng.random() < P_PII:
        first = _with_pii(first, lang, rng)
    if rng.random() < P_MULTILINE:
        first = _two_lines(first, lang)
    turns = [("patient", rng.choice(T[lang]["ping_patient"]))] if rng.random() < P_PING else []
    turns.append(("patient", first))
    if not case.complete:
        turns.append(("doctor", doctor_parts(cond, lang, rng, ask=True)[0]))
        turns.append(("patient", patient_reply(case, rng)))
    parts = doctor_parts(cond, lang, rng, ask=False)
    if len(parts) > 1 and rng.random() < P_SPLIT_DOCTOR:
        turns += [("doctor", part) for part in parts]
    else:
        turns.append(("doctor", ("" if lang == "zh" else " ").join(parts)))
    if rng.random() < P_THANKS:
        turns += [("patient", rng.choice(T[lang]["thanks_patient"])),
                  ("doctor", rng.choice(T[lang]["doc_welcome"]))]
    consultation = Consultation(cid, case, turns, description=_description(case, rng))
    if rng.random() < P_REPEAT_BLOCK:
        advice = rng.choice(cond.advice[lang])
        consultation.extra_turns = [("patient", rng.choice(T[lang]["followup_patient"])),
                                    ("doctor", sentence(advice, lang) + ("。" if lang == "zh" else "."))]
    if rng.random() < P_DIAGNOSIS:
        name_label, advice_label = _DIAGNOSIS_LABELS[lang]
        advice = sentence(rng.choice(cond.advice[lang]), lang) + ("。" if lang == "zh" else ".")
        consultation.diagnosis = f"{name_label}\n{cond.name[lang]}\n{advice_label}\n{advice}"
    return consultation


def _description(case: PatientCase, rng: random.Random) -> list[str]:
    lang = case.lang
    values = (
        case.shown[0],
        patient_body(case),
        case.question,
        case.onset if case.complete else UNKNOWN_DURATION[lang],
        rng.choice(MEDICATION[lang]),
        rng.choice(ALLERGY[lang]),
        rng.choice(HISTORY[lang]),
    )
    lines = []
    for label, value in zip(DESCRIPTION_FIELDS[lang], values):
        lines += [label, value]
    return lines


def render_block(c: Consultation, lang: str) -> str:
    """The consultation as MedDialog raw text, ending with a blank line."""
    lines = [f"id={c.id}", f"https://synthetic.medalign.example/{lang}/consultation/{c.id}", "",
             "Doctor faculty", department_of(c.case.condition, lang), "",
             "Description", *c.description, "", "Dialogue", *_dialogue_lines(c.turns, lang), ""]
    if c.extra_turns:
        lines += ["Description", *c.description, "", "Dialogue", *_dialogue_lines(c.extra_turns, lang), ""]
    if c.diagnosis:
        lines += ["Diagnosis and suggestions", c.diagnosis, ""]
    return "\n".join(lines) + "\n"


def _dialogue_lines(turns: list[tuple[str, str]], lang: str) -> list[str]:
    patient_tag, doctor_tag = _TAGS[lang]
    lines = []
    for speaker, text in turns:
        lines += [patient_tag if speaker == "patient" else doctor_tag, text]
    return lines


def _two_lines(text: str, lang: str) -> str:
    """Break a message after its first sentence (real utterances often span lines)."""
    stop = "。" if lang == "zh" else ". "
    at = text.find(stop)
    if at < 0 or at + len(stop) >= len(text):
        return text
    return text[: at + len(stop)].rstrip() + "\n" + text[at + len(stop):].lstrip()


def _with_pii(text: str, lang: str, rng: random.Random) -> str:
    name = rng.choice(_NAMES[lang])
    if lang == "zh":
        phone = f"1{rng.choice('3589')}{rng.randrange(10**9):09d}"
    else:
        phone = f"+1 415 555 {rng.randrange(10**4):04d}"
    email = f"patient{rng.randrange(1000)}@example.com"
    zh_extra = (f"我叫{name}，", f"我的电话是{phone}，", f"邮箱{email}，", f"身份证号{resident_id(rng)}，")
    en_extra = (f"My name is {name}. ", f"My phone is {phone}. ", f"Email me at {email}. ")
    return rng.choice(zh_extra if lang == "zh" else en_extra) + text


def resident_id(rng: random.Random) -> str:
    """A fake 18-digit PRC resident ID number with a valid ISO 7064 MOD 11-2 check digit."""
    region = rng.choice(("110101", "310104", "440305"))
    birth = f"{rng.randint(1950, 2005)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    body = f"{region}{birth}{rng.randrange(1000):03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    check = "10X98765432"[sum(int(d) * w for d, w in zip(body, weights)) % 11]
    return body + check
