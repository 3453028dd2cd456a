"""Ground-truth scores of played conversations (no LLM): did the doctor find out what was
missing before diagnosing, was the diagnosis at the end right, how many turns did it take.

    rows = conversation_scores(conversations, cases)        # one row per conversation
    metrics = conversation_metrics(conversations, cases)    # rates with 95% bootstrap intervals

Per conversation of a case whose ground truth names a condition and that ended on its own
(``diagnosed``, ``ended_by_patient``, ``max_turns``; a failed patient call or a case without a
card is counted, never scored):

* ``diagnosed``: a doctor turn named a condition; ``correct``: it named exactly the case's
  condition (``hedged``: it named several: never correct); ``department_correct``: that turn
  names the case's department and no other;
* ``asked``: a doctor turn before the diagnosing one (every turn when there was none) asks the
  patient something (``judges.server.patient.asks_question``: the same rule as the local patient);
* ``elicited``: a patient turn before the diagnosis tells one of the key facts the opening left
  out (:meth:`CaseCard.missing_items`, found as text: exact with the local patient, a
  paraphrasing LLM patient may be missed);
* ``turns``: doctor turns used.

Rates: diagnosis accuracy, hedged, diagnosed, department accuracy over scored conversations;
``asked_when_missing`` and ``elicited_when_missing`` over cases marked ``missing_info``;
``needless_asking`` over complete cases; mean turns. Each with a 95% percentile bootstrap
interval over conversations (``alignment.metrics.stats.bootstrap_ci``).
"""

from __future__ import annotations

import json
from collections import Counter

from alignment.evaluation.patient import CaseCard, Conversation
from alignment.metrics.stats import bootstrap_ci
from data_recipes.synthetic.lexicon import world_lexicon
from judges.server.patient import asks_question

ENDED = ("diagnosed", "ended_by_patient", "max_turns")


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


def score_conversation(conv: Conversation, case: dict) -> dict:
    """The ground-truth row of one conversation (``scored`` False: counted, not scored)."""
    truth, card = _json(case.get("truth")), _json(case.get("case_card"))
    row = {"case_id": conv.case_id, "eval_set": conv.eval_set, "language": conv.language,
           "status": conv.status, "turns": conv.doctor_turns,
           "scored": bool(truth and truth.get("condition")) and conv.status in ENDED and card is not None}
    if not row["scored"]:
        return row
    card = CaseCard.model_validate(card)
    turns = conv.turns
    doctor_at = [i for i, t in enumerate(turns) if t["role"] == "assistant"]
    cut = doctor_at[-1] if conv.status == "diagnosed" else len(turns)
    before = turns[:cut]
    final = turns[doctor_at[-1]]["content"] if doctor_at else ""
    depts = world_lexicon().find_departments(final) if conv.status == "diagnosed" else []
    missing = [m.lower() for m in card.missing_items()]
    told = " ".join(t["content"].lower() for t in before if t["role"] == "user")
    row.update(
        missing_info=bool(truth.get("missing_info", not card.onset_told)),
        diagnosed=conv.status == "diagnosed",
        correct=conv.diagnosis == [truth["condition"]],
        hedged=len(conv.diagnosis) > 1,
        department_correct=bool(truth.get("department")) and depts == [truth["department"]],
        asked=any(asks_question(t["content"], card.language) for t in before if t["role"] == "assistant"),
        elicited=any(m in told for m in missing),
        patient_named_condition="patient_named_condition" in conv.flags)
    return row


def conversation_scores(conversations: list[Conversation], cases: list[dict]) -> list[dict]:
    """One row per conversation (see the module docstring), in order."""
    by_id = {c["case_id"]: c for c in cases}
    return [score_conversation(conv, by_id[conv.case_id]) for conv in conversations]


def _rate(values: list[float], n_resamples: int, seed: int) -> dict:
    ci = bootstrap_ci(values, n_resamples=n_resamples, seed=seed)
    return {"value": sum(values) / len(values) if values else None,
            "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None, "n": len(values)}


def conversation_metrics(conversations: list[Conversation], cases: list[dict], *,
                         n_resamples: int = 2000, seed: int = 0) -> dict:
    """Rates over the scored conversations with 95% bootstrap intervals, and the counts of
    what was not scored (statuses)."""
    rows = conversation_scores(conversations, cases)
    scored = [r for r in rows if r["scored"]]
    missing = [r for r in scored if r["missing_info"]]
    complete = [r for r in scored if not r["missing_info"]]

    def rate(rs: list[dict], key: str) -> dict:
        return _rate([float(r[key]) for r in rs], n_resamples, seed)
    turns = _rate([float(r["turns"]) for r in scored], n_resamples, seed)
    return {
        "conversations": len(rows), "scored": len(scored),
        "status_counts": dict(Counter(r["status"] for r in rows)),
        "patient_failures": sum(r["status"].startswith("patient_") for r in rows),
        "patient_named_condition": sum(r["patient_named_condition"] for r in scored),
        "diagnosis_accuracy": rate(scored, "correct"), "hedged_rate": rate(scored, "hedged"),
        "diagnosed_rate": rate(scored, "diagnosed"),
        "department_accuracy": rate(scored, "department_correct"),
        "asked_when_missing": rate(missing, "asked"),
        "elicited_when_missing": rate(missing, "elicited"),
        "needless_asking": rate(complete, "asked"),
        "mean_turns": turns,
    }
