"""The demo world's rubric for an eval case, in HealthBench's format (issue 10 §5).

    demo_rubric(truth, "en")
    # [{"criterion": 'Names "migraine" as the most likely diagnosis, without listing other
    #   conditions as alternatives.', "points": 5, "tags": ["level:example", "axis:accuracy"]}, ...]

One criterion per entry of ``judges/server/demo_criteria.yaml`` whose ``when`` holds for the
case (``missing_info`` cases get "asks for the missing key information", complete ones get
"asks needlessly" instead): the right diagnosis (+5), the right department (+3), red flags
(+2), a wrong diagnosis (-5), a wrong department (-3), hedging between several conditions (-2).
The texts follow that file's fixed patterns (names and phrases quoted), so the local judge
server's grader (``medalign-grader``) reads each back and checks it with the lexicon, and a
real grader LLM reads them as ordinary HealthBench criteria.

``truth`` is an eval case's ground truth: ``condition`` (a world condition key), ``department``
(optional: the condition's), ``missing_info``, ``red_flags`` and ``follow_up_questions``
(optional: the world's, in ``language``).
"""

from __future__ import annotations

from data_recipes.synthetic.lexicon import world_conditions
from data_recipes.synthetic.world import DEPARTMENTS
from judges.server.criteria import demo_criteria


def _quoted(items: list[str], language: str) -> str:
    spec = demo_criteria()
    open_q, close_q = spec.quotes[language]
    return spec.joiners[language].join(f"{open_q}{item}{close_q}" for item in items)


def demo_rubric(truth: dict, language: str) -> list[dict]:
    """HealthBench rubric items ``{criterion, points, tags}`` for a demo-world case."""
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
    items = []
    for spec in demo_criteria().criteria:
        if (spec.when == "missing_info" and not missing) or (spec.when == "complete" and missing):
            continue
        items.append({"criterion": getattr(spec, language).format(**values),
                      "points": spec.points, "tags": list(spec.tags)})
    return items
