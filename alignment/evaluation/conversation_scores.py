"""Ground-truth scores of played conversations (no LLM): did the doctor ask for what was missing
before diagnosing, was the diagnosis at the end right, how many turns did it take.

    rows = conversation_scores(conversations, cases)          # one row per conversation
    metrics = summarise(rows, n_bootstrap=1000, seed=0)       # rates with 95% bootstrap intervals
    diffs = paired(rows_a, rows_b)                            # model A minus model B, same cases

Per conversation of a case whose ground truth names a condition and that ended on its own
(``diagnosed``, ``ended_by_patient``, ``max_turns``; a failed patient call or a case without a
card is counted, never scored), with the project's rules
(``data_recipes.synthetic.clinical_rules``, the same as the single-turn metrics of clinical.py):

* ``diagnosed``: a doctor turn committed to a condition (it ended the conversation);
* ``outcome`` of that last turn against the case's condition (``right`` / ``hedged`` / ``wrong``
  / ``none``: several conditions, or a hedging phrase, is ``hedged``, never right); ``correct``
  is ``right``; ``department_correct``: that turn names the case's department and no other;
* ``asked``: a doctor turn before the diagnosing one (every turn when there was none) asks the
  patient something (``clinical_rules.asks_question``: the rule the local patient listens by);
* ``elicited``: a patient turn before the diagnosis tells one of the key facts the opening left
  out (``CaseCard.missing_items``, found as text: exact with the local patient, a paraphrasing
  LLM patient may be missed);
* ``turns``: doctor turns used.

Metrics (:data:`METRICS`): diagnosis accuracy, hedged, diagnosed, department accuracy over the
scored conversations; ``asked_when_missing`` and ``elicited_when_missing`` over cases marked
``missing_info``; ``needless_asking`` over complete cases; mean turns. Each ``{value, ci_low,
ci_high, n}`` with a 95% percentile bootstrap interval over conversations; paired differences
between two models over the cases scored for both (``alignment.metrics.stats``).
"""

from __future__ import annotations

from collections import Counter

from alignment.evaluation.cases import Case
from alignment.evaluation.patient import ENDED, Conversation
from alignment.metrics.stats import metric_table, paired_metric_table
from data_recipes.synthetic.clinical_rules import asks_question, department_outcome, diagnosis_outcome


def score_conversation(conv: Conversation, case: Case) -> dict:
    """The ground-truth row of one conversation (``scored`` False: counted, not scored)."""
    truth, card = case.truth, case.case_card
    row = {"case_id": conv.case_id, "eval_set": conv.eval_set, "language": conv.language,
           "status": conv.status, "turns": conv.doctor_turns,
           "scored": bool(truth and truth.condition) and conv.status in ENDED and card is not None}
    if not row["scored"]:
        return row
    turns = conv.turns
    doctor_at = [i for i, t in enumerate(turns) if t["role"] == "assistant"]
    diagnosed = conv.status == "diagnosed"
    before = turns[:doctor_at[-1]] if diagnosed else turns
    final = turns[doctor_at[-1]]["content"] if diagnosed else ""
    outcome = diagnosis_outcome(final, truth.condition, truth.condition_names) if diagnosed else "none"
    missing = [m.lower() for m in card.missing_items()]
    told = " ".join(t["content"].lower() for t in before if t["role"] == "user")
    row.update(
        missing_info=truth.missing_info, diagnosed=diagnosed, outcome=outcome,
        correct=outcome == "right", hedged=outcome == "hedged",
        department_correct=diagnosed and bool(truth.department)
        and department_outcome(final, truth.department, truth.department_names) == "right",
        asked=any(asks_question(t["content"]) for t in before if t["role"] == "assistant"),
        elicited=any(m in told for m in missing),
        patient_named_condition="patient_named_condition" in conv.flags)
    return row


def conversation_scores(conversations: list[Conversation], cases: list[Case]) -> list[dict]:
    """One row per conversation (see the module docstring), in order."""
    by_key = {c.key: c for c in cases}
    return [score_conversation(conv, by_key[conv.key]) for conv in conversations]


# metric -> (applies to the row, value of the row)
METRICS = {
    "diagnosis_accuracy": (lambda r: r["scored"], lambda r: float(r["correct"])),
    "diagnosis_hedged": (lambda r: r["scored"], lambda r: float(r["hedged"])),
    "diagnosed_rate": (lambda r: r["scored"], lambda r: float(r["diagnosed"])),
    "department_accuracy": (lambda r: r["scored"], lambda r: float(r["department_correct"])),
    "asked_when_missing": (lambda r: r["scored"] and r["missing_info"], lambda r: float(r["asked"])),
    "elicited_when_missing": (lambda r: r["scored"] and r["missing_info"], lambda r: float(r["elicited"])),
    "needless_asking": (lambda r: r["scored"] and not r["missing_info"], lambda r: float(r["asked"])),
    "mean_turns": (lambda r: r["scored"], lambda r: float(r["turns"])),
}


def summarise(rows: list[dict], n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """Every metric over the conversations where it applies, and the counts of what was not
    scored (statuses, patient failures)."""
    out = metric_table(rows, METRICS, n_bootstrap, seed)
    scored = [r for r in rows if r["scored"]]
    out.update(conversations=len(rows), scored=len(scored),
               status_counts=dict(Counter(r["status"] for r in rows)),
               patient_failures=sum(r["status"].startswith("patient_") for r in rows),
               patient_named_condition=sum(r["patient_named_condition"] for r in scored),
               diagnosis_outcomes=dict(Counter(r["outcome"] for r in scored)))
    return out


def paired(rows_a: list[dict], rows_b: list[dict], n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """Per metric, model A minus model B over the cases where it applies to both (rows in the
    same case order): ``{metric: {diff, ci_low, ci_high, n}}``."""
    if [r["case_id"] for r in rows_a] != [r["case_id"] for r in rows_b]:
        raise ValueError("paired conversation scores need the same cases in the same order")
    return paired_metric_table(rows_a, rows_b, METRICS, n_bootstrap, seed)


def conversation_metrics(conversations: list[Conversation], cases: list[Case], *,
                         n_resamples: int = 1000, seed: int = 0) -> dict:
    """:func:`summarise` of :func:`conversation_scores`."""
    return summarise(conversation_scores(conversations, cases), n_resamples, seed)
