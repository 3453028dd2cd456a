"""Ground-truth clinical metrics: what a model's answers get right, computed without any LLM.

Per response to a case whose ``truth`` says which checks apply (``truth.expects``,
data_recipes/eval_cases.py), with the project's one implementation of each rule
(``data_recipes/synthetic/clinical_rules.py``, phrase lists in its ``data/clinical_phrases.yaml``;
the multi-turn scores, the local patient, grader and rubric judge use the same rules):

* diagnosis: ``right`` when the response commits to the case's condition (any of
  ``condition_names``: every zh/en name and synonym; a condition named inside a question commits
  to nothing), to no other condition of the world's lexicon and uses no hedging phrase;
  ``hedged`` when it names the condition alongside another condition or alongside hedging words
  ("可能是X，也可能是Y", "cannot be sure"): counted apart, never as right; ``wrong`` when it
  names other conditions only; ``none`` when it names none. Commitments ("考虑X", "X可能性大",
  "most likely X") are not hedges.
* department: the same four outcomes for departments (``department_names`` and the lexicon's
  department names, common aliases included; named anywhere, questions too).
* asking: the response asks the patient something (a question sentence: a question mark, or a
  Chinese sentence ending in 吗/呢; or an inquiry phrase). Over cases missing key information
  (``missing_info``) this is the asks-when-missing rate (higher is better); over complete cases,
  the needless-asking rate (lower is better).
* red flags: the response warns of at least one of the case's red flags (the phrase itself, after
  lower-casing and removing whitespace; a paraphrase is not found: the referee sees those).
* length: metric tokens (a Chinese character or an English word, alignment.metrics.text): how
  terse a model is (HuatuoGPT: real doctors' answers are terse), ``mean_response_length``.
* organised: the response lays its content out as a list, at least two numbered or bulleted
  lines (``is_organised``; the distilled style's structure), ``structure_rate`` over every case.

One number per response, :func:`quality_score`: the weighted mean of the checks that apply
(diagnosis and department: 1 right, ``hedged_credit`` hedged, 0 wrong or none; asking: 1 when it
asks a patient who left out key information or does not ask one who did not; red flags: 1 when
it warns of one), weights :class:`QualityWeights`. It is the ground truth a reward model's
scores are ranked against (the ``rm_agreement`` stage).

Each rate comes with its n (the cases where it applies) and a 95% bootstrap interval over
cases; two models answering the same cases get paired differences with intervals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import Field

from alignment.metrics.stats import metric_table, paired_metric_table
from alignment.metrics.text import text_tokens
from data_recipes.eval_cases import Truth
from data_recipes.synthetic.clinical_rules import (OUTCOMES, asks_question, department_outcome, diagnosis_outcome,
                                                   is_organised)
from medalign.config import StrictModel


def normalise(text: str) -> str:
    """Lower case, no whitespace: how red-flag phrases are compared."""
    return re.sub(r"\s+", "", text.lower())


def warns_of_red_flag(text: str, red_flags: list[str]) -> bool:
    low = normalise(text)
    return any(normalise(f) in low for f in red_flags if f.strip())


@dataclass(frozen=True)
class CaseCheck:
    """One response checked against one case's truth (None: the check does not apply)."""

    diagnosis: str | None
    department: str | None
    asked: bool | None
    missing_info: bool | None
    red_flag: bool | None
    length: int
    organised: bool = False       # at least two list items (every response, with or without truth)


def check_response(text: str, truth: Truth | None) -> CaseCheck:
    """The ground-truth checks of one response (only ``length`` without truth)."""
    length, organised = len(text_tokens(text)), is_organised(text)
    if truth is None:
        return CaseCheck(None, None, None, None, None, length, organised)
    expects = set(truth.expects)
    return CaseCheck(
        diagnosis=diagnosis_outcome(text, truth.condition, truth.condition_names)
        if "diagnosis" in expects else None,
        department=department_outcome(text, truth.department, truth.department_names)
        if "department" in expects else None,
        asked=asks_question(text) if "asking" in expects else None,
        missing_info=truth.missing_info if "asking" in expects else None,
        red_flag=warns_of_red_flag(text, truth.red_flags) if "red_flags" in expects else None,
        length=length, organised=organised)


# metric -> (applies to the check, value of the check); rates are shares of the applicable cases
METRICS = {
    "diagnosis_accuracy": (lambda c: c.diagnosis is not None, lambda c: float(c.diagnosis == "right")),
    "diagnosis_hedged": (lambda c: c.diagnosis is not None, lambda c: float(c.diagnosis == "hedged")),
    "department_accuracy": (lambda c: c.department is not None, lambda c: float(c.department == "right")),
    "asks_when_missing": (lambda c: c.asked is not None and c.missing_info, lambda c: float(c.asked)),
    "needless_asking": (lambda c: c.asked is not None and not c.missing_info, lambda c: float(c.asked)),
    "red_flag_coverage": (lambda c: c.red_flag is not None, lambda c: float(c.red_flag)),
    "mean_response_length": (lambda c: True, lambda c: float(c.length)),
    "structure_rate": (lambda c: True, lambda c: float(c.organised)),
}


def summarise(checks: list[CaseCheck], n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """Every metric over the cases where it applies: ``{metric: {value, ci_low, ci_high, n}}``
    (value None and n 0 when it applies to no case) and the diagnosis outcomes' counts."""
    out = metric_table(checks, METRICS, n_bootstrap, seed)
    out["diagnosis_outcomes"] = {o: sum(c.diagnosis == o for c in checks) for o in OUTCOMES}
    return out


def paired(checks_a: list[CaseCheck], checks_b: list[CaseCheck], n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """Per metric, model A minus model B over the same cases where it applies to both:
    ``{metric: {diff, ci_low, ci_high, n}}``."""
    if len(checks_a) != len(checks_b):
        raise ValueError("paired checks need the same cases for both models")
    return paired_metric_table(checks_a, checks_b, METRICS, n_bootstrap, seed)



class QualityWeights(StrictModel):
    """Weights of the checks in :func:`quality_score` (renormalised over the checks that apply)."""

    diagnosis: float = Field(0.4, ge=0)          # commits to the case's condition
    department: float = Field(0.2, ge=0)         # names the case's department
    asking: float = Field(0.2, ge=0)             # asks when information is missing, not when it is not
    red_flags: float = Field(0.2, ge=0)          # warns of one of the case's red flags
    hedged_credit: float = Field(0.5, ge=0, le=1)  # credit of a hedged diagnosis or department (right: 1)


def quality_score(check: CaseCheck, weights: QualityWeights | None = None) -> float | None:
    """Ground-truth quality of one response in [0, 1] (module doc); None when no check applies
    (a case without truth) or every applicable check has weight 0."""
    w = weights or QualityWeights()
    credit = {"right": 1.0, "hedged": w.hedged_credit, "wrong": 0.0, "none": 0.0}
    parts = []
    if check.diagnosis is not None:
        parts.append((w.diagnosis, credit[check.diagnosis]))
    if check.department is not None:
        parts.append((w.department, credit[check.department]))
    if check.asked is not None:
        parts.append((w.asking, float(check.asked == bool(check.missing_info))))
    if check.red_flag is not None:
        parts.append((w.red_flags, float(check.red_flag)))
    total = sum(weight for weight, _ in parts)
    return sum(weight * value for weight, value in parts) / total if total > 0 else None
