"""The eval-case schema: one row of an eval set (a recipe's ``outputs.eval``), and its file format.

An eval set is one Parquet file, ``<data dir>/eval/<set name>.parquet``, one row per case
(docs/CONTRACTS.md "Eval sets"):

=================  ==========================================================================
``case_id``        str, unique within the set
``eval_set``       str, the set's name in the recipe
``language``       "zh" | "en"
``messages``       history ending with a user turn (``[{role, content}]``)
``category``       str or null: the intent (single-turn sets) or the department (multi-turn sets)
``reference``      str or null: a good doctor's answer, for reference-based judges
``truth``          JSON string or null: :class:`Truth` (ground truth; null for real sets without it)
``case_card``      JSON string or null: :class:`~data_recipes.synthetic.case_cards.CaseCard` (multi-turn sets)
``rubric``         JSON string or null: HealthBench criteria ``[{criterion, points, tags}]``
``provenance``     JSON string: file, sha256, recipe, line, record id (as the training outputs)
=================  ==========================================================================

The synthetic world writes its sets as JSON lines of :class:`EvalCase` (format
``medalign_eval_cases``, ``readers/eval_cases.py``); the real KUAKE-QIC and Med-dialog cases load
with their own readers, ``truth`` null. Ground-truth checks (``Truth.expects``) are computed by
``alignment/evaluation/clinical.py`` without any LLM.
"""

from __future__ import annotations

import json
from typing import Literal

import pyarrow as pa
from pydantic import Field, model_validator

from data_recipes.synthetic.case_cards import CaseCard
from medalign.config import StrictModel

EVAL_DIR = "eval"                      # <data dir>/eval/<set name>.parquet
CHECKS = ("diagnosis", "department", "asking", "red_flags")
Check = Literal["diagnosis", "department", "asking", "red_flags"]


class Truth(StrictModel):
    """Ground truth of a case: what a good answer names, whether it should ask, what it warns of."""

    condition: str | None = None                  # the condition's key (world key or a name)
    condition_names: list[str] = Field(default_factory=list)   # every zh/en name and synonym
    department: str | None = None                 # the department's key
    department_names: list[str] = Field(default_factory=list)  # every name of the department
    missing_info: bool = False                    # the patient has not yet given key information
    missing_items: list[str] = Field(default_factory=list)     # what is missing (case-card fields)
    red_flags: list[str] = Field(default_factory=list)         # signs that need urgent care
    follow_up_questions: list[str] = Field(default_factory=list)  # what a doctor would ask
    expects: list[Check] = Field(default_factory=list)         # the checks that apply to this case

    @model_validator(mode="after")
    def _checks_have_their_facts(self) -> "Truth":
        needs = {"diagnosis": ("condition_names", self.condition_names),
                 "department": ("department_names", self.department_names), "red_flags": ("red_flags", self.red_flags)}
        missing = [f"expects {check} but {field} is empty" for check, (field, facts) in needs.items()
                   if check in self.expects and not facts]
        if missing:
            raise ValueError("; ".join(missing))
        return self


class RubricCriterion(StrictModel):
    """One HealthBench rubric criterion."""

    criterion: str = Field(min_length=1)          # what the grader checks
    points: float                                 # negative: a criterion a response must not meet
    tags: list[str] = Field(default_factory=list)  # "axis:accuracy", "level:example", ...


class Message(StrictModel):
    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1)


class EvalCase(StrictModel):
    """One line of a ``medalign_eval_cases`` file."""

    case_id: str = Field(min_length=1)
    language: Literal["zh", "en"] | None = None
    messages: list[Message] = Field(min_length=1)
    category: str | None = None
    reference: str | None = None
    truth: Truth | None = None
    case_card: CaseCard | None = None
    rubric: list[RubricCriterion] | None = None

    @model_validator(mode="after")
    def _ends_with_the_patient(self) -> "EvalCase":
        if self.messages[-1].role != "user":
            raise ValueError("messages must end with a user turn (the question the model answers)")
        return self


_MESSAGES = pa.list_(pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())]))
EVAL_SCHEMA = pa.schema([("case_id", pa.string()), ("eval_set", pa.string()), ("language", pa.string()),
                         ("messages", _MESSAGES), ("category", pa.string()), ("reference", pa.string()),
                         ("truth", pa.string()), ("case_card", pa.string()), ("rubric", pa.string()),
                         ("provenance", pa.string())])


def json_or_none(value) -> str | None:
    """A JSON column's value: compact JSON, or null."""
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


__all__ = ["EVAL_DIR", "CHECKS", "Truth", "RubricCriterion", "CaseCard", "EvalCase", "EVAL_SCHEMA", "json_or_none"]
