"""Patients' messages and answers in four styles, for one condition of the world.

The HuatuoGPT thesis, made testable:

* ``doctor`` (real doctor): terse, informal. With ``ask=True`` it only asks 1-2 of the
  condition's follow-up questions; otherwise it names the diagnosis and the department and adds
  at most one short advice item ("考虑偏头痛，建议神经内科就诊。").
* ``distilled`` (ChatGPT-like): long and structured (greeting, restated symptoms, numbered advice,
  red-flag warning, closing) but hedges: it lists the true condition among 2-3 differentials or
  says it cannot be determined without a visit; it never commits to one condition. With
  ``ask=True`` it adds a polite question (the generator does that for ~10% of answers).
* ``hybrid``: commits like the doctor (diagnosis + department), asks a relevant question when
  ``ask=True``, and gives the distilled style's numbered advice and red flags at moderate length.
* ``weak`` (a weak model): vague, or names a wrong condition and department.

    rng = random.Random(0)
    compose_answer("migraine", "zh", "hybrid", rng, ask=True)

Everything is drawn from ``rng``: same seed, same text.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from data_recipes.synthetic.phrasing import COMMA, OR, T, join_phrases, second_person, sentence
from data_recipes.synthetic.schema import Condition
from data_recipes.synthetic.world import CONDITIONS, CONDITIONS_BY_KEY, department_of

STYLES = ("doctor", "distilled", "hybrid", "weak")
_FEMALE_ONLY = {"gynecology", "obstetrics"}          # departments
_MALE_ONLY = {"chronic_prostatitis"}                 # conditions
_MALE_DEPARTMENTS = {"andrology"}
_ADULT_AGES = {"obstetrics": (20, 42)}               # department -> age range (default 18-70)


@dataclass(frozen=True)
class PatientCase:
    """What one patient reports: the first message may leave out the onset and a key symptom."""

    condition: Condition
    lang: str
    shown: tuple[str, ...]        # symptoms in the first message
    withheld: str                 # a further symptom, told when the doctor asks
    onset: str                    # onset/duration cue (in the first message only if complete)
    complete: bool                # does the first message carry the onset and enough symptoms?
    intro: str                    # "我35岁，女。" / "I am 35, female. " / "My daughter is 4. "
    subject: str                  # en only: "I have" / "She has"
    greeting: str
    question: str                 # the patient's closing question


def as_condition(condition: Condition | str) -> Condition:
    return CONDITIONS_BY_KEY[condition] if isinstance(condition, str) else condition


def draw_case(
    condition: Condition | str, lang: str, rng: random.Random, complete: bool = True,
) -> PatientCase:
    """Draw a patient for ``condition``; ``complete=False`` leaves out the onset and a symptom."""
    cond = as_condition(condition)
    symptoms = list(cond.symptoms[lang])
    rng.shuffle(symptoms)
    n_shown = rng.choice((2, 3)) if complete else 1
    intro, subject = _intro(cond, lang, rng)
    return PatientCase(
        condition=cond, lang=lang, shown=tuple(symptoms[:n_shown]), withheld=symptoms[n_shown],
        onset=rng.choice(cond.onset[lang]), complete=complete, intro=intro, subject=subject,
        greeting=rng.choice(T[lang]["greet"]), question=rng.choice(T[lang]["ask_patient"]),
    )


def _intro(cond: Condition, lang: str, rng: random.Random) -> tuple[str, str]:
    male_only = cond.key in _MALE_ONLY or cond.department in _MALE_DEPARTMENTS
    female = cond.department in _FEMALE_ONLY or (not male_only and rng.random() < 0.5)
    if cond.department == "pediatrics":
        age = rng.randint(1, 8)
        if lang == "zh":
            return f"孩子{age}岁，{'女孩' if female else '男孩'}。", ""
        return f"My {'daughter' if female else 'son'} is {age}. ", "She has" if female else "He has"
    age = rng.randint(*_ADULT_AGES.get(cond.department, (18, 70)))
    if lang == "zh":
        sex = "女" if female else "男"
        return rng.choice((f"我{age}岁，{sex}。", f"本人{sex}，{age}岁。", "")), ""
    sex, person = ("female", "woman") if female else ("male", "man")
    return rng.choice((f"I am {age}, {sex}. ", f"I'm a {age}-year-old {person}. ", "")), "I have"


def patient_body(case: PatientCase) -> str:
    """The first message without greeting and question (MedDialog's 病情描述 / Description)."""
    if case.lang == "zh":
        onset = f"{case.onset}，" if case.complete else ""
        return f"{case.intro}{onset}{COMMA['zh'].join(case.shown)}。"
    onset = f" {sentence(case.onset, 'en')}." if case.complete else ""
    return f"{case.intro}{case.subject} {join_phrases(list(case.shown), 'en')}.{onset}"


def patient_message(case: PatientCase) -> str:
    """The patient's first message: greeting, body, question."""
    sep = "" if case.lang == "zh" else " "
    return f"{case.greeting}{patient_body(case)}{sep}{case.question}"


def patient_reply(case: PatientCase, rng: random.Random) -> str:
    """The patient's answer to the doctor's follow-up questions: the onset and one more symptom."""
    template = rng.choice(T[case.lang]["answer_patient"])
    return template.format(onset=case.onset, Onset=sentence(case.onset, case.lang), sym=case.withheld)


def compose_patient_message(
    condition: Condition | str, lang: str, rng: random.Random, complete: bool = True,
) -> str:
    """A patient's first message about ``condition`` (see :func:`draw_case`)."""
    return patient_message(draw_case(condition, lang, rng, complete))


def compose_answer(
    condition: Condition | str, lang: str, style: str, rng: random.Random, ask: bool = False,
    symptoms: tuple[str, ...] | None = None,
) -> str:
    """One answer to a patient with ``condition`` in ``style`` (see the module docstring).

    ``ask``: the answer should ask the patient something (information is missing).
    ``symptoms``: what the patient reported (the distilled style restates them); drawn if None.
    """
    cond = as_condition(condition)
    if style == "doctor":
        return _join(doctor_parts(cond, lang, rng, ask), lang)
    if style == "distilled":
        shown = symptoms or tuple(rng.sample(cond.symptoms[lang], 2))
        return _distilled(cond, lang, rng, ask, shown)
    if style == "hybrid":
        return _hybrid(cond, lang, rng, ask)
    if style == "weak":
        return _weak(cond, lang, rng, ask)
    raise ValueError(f"unknown answer style {style!r}; known: {', '.join(STYLES)}")


def doctor_parts(cond: Condition, lang: str, rng: random.Random, ask: bool) -> list[str]:
    """A real doctor's reply as separate messages: questions only, or diagnosis [+ one advice]."""
    t = T[lang]
    if ask:
        questions = rng.sample(cond.follow_up_questions[lang], rng.choice((1, 2)))
        return [rng.choice(t["doc_ask_prefix"]) + ("" if lang == "zh" else " ").join(questions)]
    parts = [rng.choice(t["doc_diagnosis"]).format(cond=cond.name[lang], dept=department_of(cond, lang))]
    if rng.random() < 0.6:
        advice = rng.choice(cond.advice[lang])
        parts.append(rng.choice(t["doc_advice"]).format(advice=advice, Advice=sentence(advice, lang)))
    return parts


def _join(parts: list[str], lang: str) -> str:
    return ("" if lang == "zh" else " ").join(parts)


def numbered(items: list[str], lang: str) -> str:
    end = "。" if lang == "zh" else "."
    return "\n".join(f"{i}. {sentence(item, lang)}{end}" for i, item in enumerate(items, 1))


def _distilled(cond: Condition, lang: str, rng: random.Random, ask: bool, shown: tuple[str, ...]) -> str:
    t = T[lang]
    symptoms = second_person(join_phrases(list(shown), lang), lang)
    paragraphs = [rng.choice(t["dis_greet"]) + " " * (lang == "en") + rng.choice(t["dis_restate"]).format(syms=symptoms)]
    if rng.random() < 0.7:
        n_alike = min(len(cond.differentials), rng.choice((1, 2)))
        listed = [cond] + [CONDITIONS_BY_KEY[k] for k in rng.sample(cond.differentials, n_alike)]
        rng.shuffle(listed)
        names = join_phrases([c.name[lang] for c in listed], lang)
        paragraphs.append(rng.choice(t["dis_hedge_list"]).format(list=names))
        depts = list(dict.fromkeys(department_of(c, lang) for c in listed))
        visit = rng.choice(t["dis_visit_depts"]).format(depts=join_phrases(depts, lang, OR))
    else:
        paragraphs.append(rng.choice(t["dis_hedge_none"]))
        visit = rng.choice(t["dis_visit"])
    advice = rng.sample(cond.advice[lang], rng.choice((2, 3))) + rng.sample(t["dis_generic_advice"], 1)
    paragraphs.append(rng.choice(t["dis_advice_intro"]) + "\n" + numbered(advice, lang))
    paragraphs.append(visit)
    flags = rng.sample(cond.red_flags[lang], 2)
    paragraphs.append(rng.choice(t["dis_red_flag"]).format(rf=join_phrases(flags, lang, OR)))
    if ask:
        paragraphs.append(rng.choice(t["dis_ask"]).format(q=rng.choice(cond.follow_up_questions[lang])))
    paragraphs.append(rng.choice(t["dis_close"]))
    return "\n\n".join(paragraphs)


def _hybrid(cond: Condition, lang: str, rng: random.Random, ask: bool) -> str:
    t = T[lang]
    lines = [rng.choice(t["hyb_diagnosis"]).format(cond=cond.name[lang], dept=department_of(cond, lang))]
    if ask:
        lines.append(rng.choice(t["hyb_ask"]).format(q=rng.choice(cond.follow_up_questions[lang])))
    lines.append(rng.choice(t["hyb_advice_intro"]))
    lines.append(numbered(rng.sample(cond.advice[lang], rng.choice((2, 3))), lang))
    flags = rng.sample(cond.red_flags[lang], rng.choice((1, 2)))
    lines.append(rng.choice(t["hyb_red_flag"]).format(rf=join_phrases(flags, lang, OR)))
    return "\n".join(lines)


def _weak(cond: Condition, lang: str, rng: random.Random, ask: bool) -> str:
    t = T[lang]
    if rng.random() < 0.5:
        text = rng.choice(t["weak_vague"])
    else:
        wrong = wrong_condition(cond, rng)
        text = rng.choice(t["weak_wrong"]).format(cond=wrong.name[lang], dept=department_of(wrong, lang))
    if ask:
        text += ("" if lang == "zh" else " ") + rng.choice(t["weak_ask"])
    return text


def wrong_condition(cond: Condition, rng: random.Random) -> Condition:
    """A condition of another department that is not among ``cond``'s differentials."""
    return rng.choice([c for c in CONDITIONS if c.department != cond.department and c.key not in cond.differentials])


def compose_brief_distilled(cond: Condition, lang: str, rng: random.Random) -> str:
    """A shorter, blander distilled answer (the "gpt-3.5" rung of the 4-way ranking)."""
    t = T[lang]
    advice = rng.sample(cond.advice[lang], 1) + rng.sample(t["dis_generic_advice"], 1)
    return "\n\n".join([rng.choice(t["dis_greet"]), rng.choice(t["dis_hedge_none"]),
                        rng.choice(t["dis_advice_intro"]) + "\n" + numbered(advice, lang),
                        rng.choice(t["dis_visit"])])


def compose_explainer(cond: Condition, lang: str, rng: random.Random) -> str:
    """A distilled, encyclopedia-like explanation of a named condition (a knowledge instruction)."""
    zh = lang == "zh"
    name, dept = cond.name[lang], department_of(cond, lang)
    head = f"{name}是{dept}的常见问题。" if zh else f"{sentence(name, lang)} is a common problem seen in {dept}."
    symptoms = [second_person(s, lang) for s in cond.symptoms[lang][:4]]
    signs = ("常见表现包括：" if zh else "Common signs include:") + "\n" + numbered(symptoms, lang)
    onset = sentence(rng.choice(cond.onset[lang]), lang)
    course = f"典型的起病情况：{onset}。" if zh else f"A typical course: {onset}."
    advice = ("日常建议：" if zh else "Day-to-day advice:") + "\n" + numbered(rng.sample(cond.advice[lang], 3), lang)
    flags = rng.choice(T[lang]["dis_red_flag"]).format(rf=join_phrases(list(cond.red_flags[lang][:2]), lang, OR))
    greeting = rng.choice(T[lang]["dis_greet"]) + " " * (not zh)
    return "\n\n".join([greeting + head, signs, course, advice, flags, rng.choice(T[lang]["dis_close"])])


def compose_distilled_followup(cond: Condition, lang: str, rng: random.Random, topic: str) -> str:
    """A distilled answer to a follow-up question: ``topic`` "care" (advice) or "danger" (red flags)."""
    t = T[lang]
    if topic == "care":
        body = rng.choice(t["dis_care_intro"]) + "\n" + numbered(rng.sample(cond.advice[lang], 3), lang)
    elif topic == "danger":
        body = rng.choice(t["dis_danger_intro"]) + "\n" + numbered(list(cond.red_flags[lang]), lang)
    else:
        raise ValueError(f"unknown follow-up topic {topic!r}; known: care, danger")
    return "\n\n".join([body, rng.choice(t["dis_visit"]), rng.choice(t["dis_close"])])


__all__ = [
    "STYLES", "PatientCase", "draw_case", "patient_body", "patient_message", "patient_reply",
    "compose_patient_message", "compose_answer", "doctor_parts", "compose_brief_distilled",
    "compose_explainer", "compose_distilled_followup", "wrong_condition", "numbered",
]
