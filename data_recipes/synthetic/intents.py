"""The ten KUAKE-QIC intents as the synthetic world asks and answers them.

    from data_recipes.synthetic.intents import INTENTS, draw_intent_case
    case = draw_intent_case(INTENTS_BY_KEY["treatment"], CONDITIONS_BY_KEY["migraine"], "zh", rng)
    case.question    # "偏头痛怎么治疗比较好？"
    case.answer      # "偏头痛的处理：规律作息，避免熬夜；少喝咖啡和酒。如果出现……，请立即就医。"

The templates and the checks that apply to each intent (``expects``) are data:
``data_recipes/synthetic/data/intents.yaml``. The corpus generator writes training QA with
:func:`draw_intent_case` (``corpus_records.build_real_qa``) and the eval-set generator writes
held-out cases with it (``eval_sets.py``) from another random stream, so both share one
distribution. The ``diagnosis`` intent asks with a whole consultation message (the patient may
leave out key information); its answer is the doctor's style when drawn for training and, as an
eval case's reference, the hybrid style (a diagnosis, the department, advice and a red flag) or
the doctor's questions when information is missing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from data_recipes.synthetic.answers import PatientCase, compose_answer, draw_case, patient_message
from data_recipes.synthetic.phrasing import COMMA, OR, join_phrases, second_person, sentence
from data_recipes.synthetic.schema import Condition
from data_recipes.synthetic.tables import IntentEntry, load_intents
from data_recipes.synthetic.world import department_of

INTENTS: tuple[IntentEntry, ...] = load_intents()
INTENTS_BY_KEY: dict[str, IntentEntry] = {i.key: i for i in INTENTS}
DIAGNOSIS = "diagnosis"


@dataclass(frozen=True)
class IntentCase:
    """One question of an intent about one condition, with a good doctor's answer."""

    intent: IntentEntry
    condition: Condition
    lang: str
    question: str
    answer: str
    patient: PatientCase          # the drawn patient (intro, symptoms, onset, what is withheld)

    @property
    def complete(self) -> bool:
        """The question carries the key information (only a diagnosis question may not)."""
        return self.intent.key != DIAGNOSIS or self.patient.complete

    @property
    def expects(self) -> list[str]:
        """The ground-truth checks that apply: a diagnosis question missing information expects
        only that the doctor asks for it."""
        return list(self.intent.expects) if self.complete else ["asking"]


def _slots(cond: Condition, lang: str, patient: PatientCase, rng: random.Random) -> dict[str, str]:
    """Values of the template placeholders (see intents.yaml) for one question and its answer."""
    advices = rng.sample(cond.advice[lang], 2)
    flags = rng.sample(cond.red_flags[lang], rng.choice((1, 2)))
    syms3 = [second_person(s, lang) for s in rng.sample(cond.symptoms[lang], 3)]
    sep = COMMA[lang] if lang == "zh" else None
    slots = {
        "intro": patient.intro, "subject": patient.subject,
        "syms": sep.join(patient.shown[:2]) if sep else join_phrases(list(patient.shown[:2]), lang),
        "syms3": join_phrases(syms3, lang), "cond": cond.name[lang], "dept": department_of(cond, lang),
        "advice": advices[0], "advices": ("；" if lang == "zh" else "; ").join(advices),
        "rf": join_phrases(flags, lang, OR)}
    slots.update({k.capitalize(): sentence(v, lang) for k, v in list(slots.items())})
    return slots


def draw_intent_case(intent: IntentEntry, cond: Condition, lang: str, rng: random.Random,
                     complete: bool = True, reference: bool = False) -> IntentCase:
    """A question of ``intent`` about ``cond`` and a good answer; ``complete`` only matters for the
    diagnosis intent (False: the first message lacks the onset and a symptom). ``reference``: the
    answer is an eval case's reference (the hybrid style for a diagnosis) instead of training text."""
    patient = draw_case(cond, lang, rng, complete=complete or intent.key != DIAGNOSIS)
    if intent.key == DIAGNOSIS:
        style = "hybrid" if reference and patient.complete else "doctor"
        answer = compose_answer(cond, lang, style, rng, ask=not patient.complete)
        if reference and not patient.complete:        # the doctor's questions alone, no guess yet
            answer = compose_answer(cond, lang, "doctor", rng, ask=True)
        return IntentCase(intent, cond, lang, patient_message(patient), answer, patient)
    slots = _slots(cond, lang, patient, rng)
    question = rng.choice(getattr(intent.questions, lang)).format(**slots).strip()
    answer = rng.choice(getattr(intent.answers, lang)).format(**slots)
    return IntentCase(intent, cond, lang, sentence(question, lang), answer, patient)


__all__ = ["INTENTS", "INTENTS_BY_KEY", "IntentCase", "draw_intent_case", "DIAGNOSIS"]
