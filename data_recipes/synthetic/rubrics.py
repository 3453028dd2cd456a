"""The demo world's rubrics in HealthBench's format (issue 10 §5): the criteria table and the
rubric of one eval case.

    demo_rubric(truth, "en")
    # [{"criterion": 'Names "migraine" as the most likely diagnosis, without listing other
    #   conditions as alternatives.', "points": 5, "tags": ["level:example", "axis:accuracy"]}, ...]

One criterion per entry of ``data/demo_criteria.yaml`` (schema :class:`DemoCriteria`) whose
``when`` holds for the case (``missing_info`` cases get "asks for the missing key information",
complete ones "asks needlessly" instead) and whose ``expects`` is among the case's ground-truth
checks (``truth["expects"]``; a truth without ``expects`` gets every check): the right diagnosis
(+5), the right department (+3), asking for what is missing (+4), red flags (+2), a wrong
diagnosis (-5), a wrong department (-3), hedging between several conditions (-2), asking
needlessly (-1). The texts follow the table's fixed patterns (names and phrases quoted), so the
local judge server's grader (``judges/server/criteria.py``, model ``medalign-grader``) reads each
back and checks it with the project's rules, and a real grader LLM reads them as ordinary
HealthBench criteria. The eval-set generator writes these rubrics (``eval_sets.py``).

``truth`` is an eval case's ground truth (``data_recipes.eval_cases.Truth`` as a dict):
``condition`` (a world condition key), ``department`` (optional: the condition's),
``missing_info``, ``expects``, ``red_flags`` and ``follow_up_questions`` (optional: the
world's, in ``language``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field

from data_recipes.synthetic.lexicon import world_conditions
from medalign.config import StrictModel

CRITERIA_FILE = Path(__file__).resolve().parent / "data" / "demo_criteria.yaml"
Check = Literal["names_only_condition", "names_department", "asks_question", "mentions_any_phrase",
                "names_only_other_conditions", "names_other_department", "names_several_conditions"]
TruthCheck = Literal["diagnosis", "department", "asking", "red_flags"]
ALL_CHECKS = ("diagnosis", "department", "asking", "red_flags")


class DemoCriterion(StrictModel):
    """One kind of demo criterion: its check, points, tags and text pattern per language."""

    id: str                                            # stable name
    check: Check                                       # what the grader tests on the response
    points: float                                      # HealthBench points (negative: undesirable)
    when: Literal["always", "missing_info", "complete"] = "always"  # which cases get it
    expects: TruthCheck                                # the ground-truth check it belongs to
    tags: list[str] = Field(default_factory=list)      # HealthBench tags (level:..., axis:...)
    en: str                                            # English pattern with {placeholders}
    zh: str                                            # Chinese pattern


class DemoCriteria(StrictModel):
    """``data/demo_criteria.yaml``."""

    version: int
    quotes: dict[str, tuple[str, str]]                 # language -> (open, close) quote marks
    joiners: dict[str, str]                            # language -> joins quoted phrases
    criteria: list[DemoCriterion]


@lru_cache(maxsize=1)
def demo_criteria() -> DemoCriteria:
    from data_recipes.synthetic.tables import load_table

    return load_table(CRITERIA_FILE, DemoCriteria)


def _quoted(items: list[str], language: str) -> str:
    spec = demo_criteria()
    open_q, close_q = spec.quotes[language]
    return spec.joiners[language].join(f"{open_q}{item}{close_q}" for item in items)


def _applies(spec: DemoCriterion, missing: bool, expects: set[str]) -> bool:
    if (spec.when == "missing_info" and not missing) or (spec.when == "complete" and missing):
        return False
    return spec.expects in expects


def demo_rubric(truth: dict, language: str) -> list[dict]:
    """HealthBench rubric items ``{criterion, points, tags}`` for a demo-world case."""
    from data_recipes.synthetic.world import DEPARTMENTS

    if language not in ("zh", "en"):
        raise ValueError(f"demo_rubric: language must be 'zh' or 'en', got {language!r}")
    key = (truth or {}).get("condition")
    condition = world_conditions().get(key) if key else None
    if condition is None:
        raise ValueError(f"demo_rubric: truth.condition {key!r} is not a condition of the "
                         "synthetic world (real cases have no demo rubric)")
    dept_key = truth.get("department") or condition.department
    if dept_key not in DEPARTMENTS:
        raise ValueError(f"demo_rubric: truth.department {dept_key!r} is not a world department")
    values = {
        "condition": _quoted([condition.name[language]], language),
        "department": _quoted([DEPARTMENTS[dept_key].name[language]], language),
        "red_flags": _quoted(list(truth.get("red_flags") or condition.red_flags[language])[:2], language),
        "questions": _quoted(list(truth.get("follow_up_questions")
                                  or condition.follow_up_questions[language])[:2], language),
    }
    missing = bool(truth.get("missing_info"))
    expects = set(truth.get("expects") or ALL_CHECKS)
    items = [{"criterion": getattr(spec, language).format(**values), "points": spec.points,
              "tags": list(spec.tags)}
             for spec in demo_criteria().criteria if _applies(spec, missing, expects)]
    if not any(i["points"] > 0 for i in items):
        raise ValueError(f"demo_rubric: no criterion with positive points applies to expects "
                         f"{sorted(expects)} (missing_info {missing})")
    return items


__all__ = ["DemoCriterion", "DemoCriteria", "demo_criteria", "demo_rubric", "CRITERIA_FILE"]
