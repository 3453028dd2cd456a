"""The synthetic world's eval sets, in the seeds' shapes, with ground truth for every case.

* single-turn (KUAKE-QIC's shape): the ten intents x ``n / 10`` questions, each about a random
  condition (``intents.py``); a diagnosis question leaves out key information with probability
  ``P_INCOMPLETE``.
* multi-turn (Med-dialog's shape): the world's departments (20) x ``n / 20`` patients, each with a
  case card for a simulated patient: the opening message, what the patient has not said yet
  (``missing_info`` true for a share of them), and the facts the patient may tell when asked.

Records are JSON lines of the ``medalign_eval_cases`` format (``data_recipes/readers/eval_cases.py``,
columns in docs/CONTRACTS.md)::

    {"case_id": "single-zh-007", "language": "zh", "messages": [{"role": "user", "content": "..."}],
     "category": "治疗方案", "reference": "...", "truth": {...}, "case_card": null, "rubric": [...]}

``truth``: ``condition`` and ``department`` (world keys), ``condition_names`` (every zh/en name and
synonym), ``department_names`` (every name the lexicon maps to the department), ``missing_info``,
``missing_items`` (case-card fields the first message lacks), ``red_flags`` and
``follow_up_questions`` (in the case's language), ``expects`` (the checks that apply, see
``intents.yaml``). ``case_card`` (multi-turn): a :class:`~data_recipes.synthetic.case_cards.CaseCard`
(``case_card_for``: the opening, the symptoms told and withheld, onset, medicines, allergies,
history, the "don't know" reply; its ``condition`` is the world key). ``rubric`` (every case): the
demo world's HealthBench criteria for the case (:func:`data_recipes.synthetic.rubrics.demo_rubric`:
the criteria of the checks the case expects).

The generator (``generate.write_corpus``) draws these with their own random stream
(``medalign-eval:<seed>:<lang>:<set>``), apart from every training file's stream.
"""

from __future__ import annotations

import random
from functools import lru_cache

from data_recipes.synthetic.case_cards import case_card_for
from data_recipes.synthetic.consultations import P_INCOMPLETE
from data_recipes.synthetic.intents import DIAGNOSIS, INTENTS, INTENTS_BY_KEY, IntentCase, draw_intent_case
from data_recipes.synthetic.rubrics import demo_rubric
from data_recipes.synthetic.schema import Condition
from data_recipes.synthetic.world import CONDITIONS, DEPARTMENTS, department_of

MISSING_ITEMS = ["onset", "withheld_symptoms"]     # what an incomplete first message leaves out


@lru_cache(maxsize=64)
def department_names(key: str) -> tuple[str, ...]:
    """Every name (world and common, zh and en) the lexicon maps to department ``key``."""
    from data_recipes.synthetic.lexicon import world_lexicon

    return tuple(sorted(n for n, k in world_lexicon().department_names.items() if k == key))


def case_truth(case: IntentCase) -> dict:
    """The ground truth of one case (see the module docstring)."""
    cond, lang = case.condition, case.lang
    return {"condition": cond.key, "condition_names": sorted({n for lg in cond.name for n in cond.names(lg)}),
            "department": cond.department, "department_names": list(department_names(cond.department)),
            "missing_info": not case.complete, "missing_items": [] if case.complete else list(MISSING_ITEMS),
            "red_flags": list(cond.red_flags[lang]), "follow_up_questions": list(cond.follow_up_questions[lang]),
            "expects": case.expects}


def case_card(case: IntentCase, rng: random.Random) -> dict:
    """What a simulated patient may tell (it answers only from this card): a CaseCard as a dict.
    Its background (medicines, allergies, history, "don't know") is seeded by three draws of 0-2
    from the set's stream: the draws the set has always made for a card, so the cases after this
    one stay what they were (and so does every training row decontaminated against them)."""
    seed = sum(rng.randrange(3) * 3 ** k for k in range(3))
    return case_card_for(case.patient, seed=seed, opening=case.question).model_dump(mode="json")


def _row(case_id: str, case: IntentCase, category: str, card: dict | None) -> dict:
    truth = case_truth(case)
    return {"case_id": case_id, "language": case.lang,
            "messages": [{"role": "user", "content": case.question}], "category": category,
            "reference": case.answer, "truth": truth, "case_card": card,
            "rubric": demo_rubric(truth, case.lang)}


def build_eval_single_turn(n: int, rng: random.Random, lang: str) -> list[dict]:
    """KUAKE-QIC-shaped cases: the ten intents in turn, each about a random condition."""
    rows = []
    for i in range(n):
        intent = INTENTS[i % len(INTENTS)]
        cond = rng.choice(CONDITIONS)
        complete = intent.key != DIAGNOSIS or rng.random() >= P_INCOMPLETE
        case = draw_intent_case(intent, cond, lang, rng, complete=complete, reference=True)
        rows.append(_row(f"single-{lang}-{i:03d}", case, intent.label.zh if lang == "zh" else intent.label.en, None))
    return rows


def build_eval_multi_turn(n: int, rng: random.Random, lang: str) -> list[dict]:
    """Med-dialog-shaped cases: the departments in turn, a patient with a case card each."""
    by_department: list[list[Condition]] = [[c for c in CONDITIONS if c.department == d] for d in DEPARTMENTS]
    rows = []
    for i in range(n):
        cond = rng.choice(by_department[i % len(by_department)])
        case = draw_intent_case(INTENTS_BY_KEY[DIAGNOSIS], cond, lang, rng,
                                complete=rng.random() >= P_INCOMPLETE, reference=True)
        rows.append(_row(f"multi-{lang}-{i:03d}", case, department_of(cond, lang), case_card(case, rng)))
    return rows


__all__ = ["build_eval_single_turn", "build_eval_multi_turn", "case_truth", "case_card", "department_names"]
