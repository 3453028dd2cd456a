"""The synthetic medical world: departments and conditions, in Chinese and English.

The tables are data files (``data_recipes/synthetic/data/``: ``departments.yaml``,
``conditions_*.yaml``; schema in ``tables.py``, field grammar in ``data/README.md``), loaded once
at import. The demo corpus generator (``generate.py``) writes consultations from them, and the
local judge's rubric uses the names as a lexicon. Usage::

    from data_recipes.synthetic.world import CONDITIONS, CONDITIONS_BY_KEY, DEPARTMENTS
    migraine = CONDITIONS_BY_KEY["migraine"]
    DEPARTMENTS[migraine.department].name["zh"]        # "神经内科"

Names are unambiguous as substrings: no condition or department name contains another name of
the same language, and no phrase in the table contains any name (``validate_world`` checks both),
so a judge may search a response for names in any order. ``lexicon.find_mentions`` still matches
longest first, so the rule holds even for extra names a caller adds.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from data_recipes.synthetic.schema import Condition, Department
from data_recipes.synthetic.tables import condition_location, load_world

LANGUAGES = ("zh", "en")

DEPARTMENTS: dict[str, Department]
CONDITIONS: tuple[Condition, ...]
DEPARTMENTS, CONDITIONS = load_world()          # data_recipes/synthetic/data/*.yaml
CONDITIONS_BY_KEY: dict[str, Condition] = {c.key: c for c in CONDITIONS}

MIN_CONDITIONS = 40
MIN_DEPARTMENTS = 12
# (field name, minimum items, maximum items) per language.
FIELD_SIZES = (
    ("symptoms", 3, 6),
    ("onset", 2, 4),
    ("advice", 3, 5),
    ("red_flags", 2, 4),
    ("follow_up_questions", 2, 4),
)
_CJK = re.compile(r"[\u4e00-\u9fff]")


def condition_names(lang: str) -> dict[str, str]:
    """Condition name (and synonym) -> condition key, for one language."""
    return {name: c.key for c in CONDITIONS for name in c.names(lang)}


def department_names(lang: str) -> dict[str, str]:
    """Department name -> department key, for one language."""
    return {d.name[lang]: d.key for d in DEPARTMENTS.values()}


def department_of(condition: Condition, lang: str) -> str:
    """The name of the condition's department in ``lang``."""
    return DEPARTMENTS[condition.department].name[lang]


def world_problems() -> list[str]:
    """Every inconsistency in the table, one message each (empty when the world is valid)."""
    problems: list[str] = []
    if len(CONDITIONS) < MIN_CONDITIONS:
        problems.append(f"only {len(CONDITIONS)} conditions, need >= {MIN_CONDITIONS}")
    if len(DEPARTMENTS) < MIN_DEPARTMENTS:
        problems.append(f"only {len(DEPARTMENTS)} departments, need >= {MIN_DEPARTMENTS}")
    if len(CONDITIONS_BY_KEY) != len(CONDITIONS):
        problems.append("condition keys are not unique")
    used = {c.department for c in CONDITIONS}
    problems += [f"department {k!r} has no condition" for k in DEPARTMENTS if k not in used]
    for cond in CONDITIONS:
        problems += _condition_problems(cond)
    problems += _name_problems()
    return problems


def validate_world() -> None:
    """Raise ``ValueError`` listing every problem found by :func:`world_problems`."""
    problems = world_problems()
    if problems:
        raise ValueError("invalid synthetic world:\n  " + "\n  ".join(problems))


def _condition_problems(cond: Condition, known: dict[str, Condition] | None = None,
                        locate: Callable[..., str] = condition_location) -> list[str]:
    """Problems of one condition; ``known``: the conditions its differentials may name (default:
    the world's), ``locate``: ``file:line: `` of one of its fields."""
    known = CONDITIONS_BY_KEY if known is None else known

    def where(*field: str) -> str:        # "data/conditions_x.yaml:LINE: condition 'key'"
        return f"{locate(cond.key, *field)}condition {cond.key!r}"

    problems = []
    if cond.department not in DEPARTMENTS:
        problems.append(f"{where('department')}: unknown department {cond.department!r}")
    if not cond.differentials:
        problems.append(f"{where('differentials')}: no differentials")
    for other in cond.differentials:
        if other == cond.key or other not in known:
            problems.append(f"{where('differentials')}: differential {other!r} is not another condition")
    for lang in LANGUAGES:
        if not cond.name.get(lang, "").strip():
            problems.append(f"{where('name', lang)}: empty {lang} name")
        for i, synonym in enumerate(cond.synonyms.get(lang, ())):
            if not synonym.strip() or (lang == "zh") != bool(_CJK.search(synonym)):
                problems.append(f"{where('synonyms', lang, i)}: {lang} synonym empty or in the wrong language: {synonym!r}")
        for field, low, high in FIELD_SIZES:
            phrases = getattr(cond, field).get(lang, ())
            if not low <= len(phrases) <= high:
                problems.append(f"{where(field, lang)}: {field}[{lang}] has {len(phrases)} items, want {low}-{high}")
            for i, phrase in enumerate(phrases):
                if not phrase.strip():
                    problems.append(f"{where(field, lang, i)}: empty phrase in {field}[{lang}]")
                elif (lang == "zh") != bool(_CJK.search(phrase)):
                    problems.append(f"{where(field, lang, i)}: {field}[{lang}] phrase in the wrong language: {phrase!r}")
        for i, question in enumerate(cond.follow_up_questions.get(lang, ())):
            if not question.endswith(("？", "?")):
                problems.append(f"{where('follow_up_questions', lang, i)}: follow-up question without a "
                                f"question mark: {question!r}")
    return problems


def _name_problems(conditions: tuple[Condition, ...] | None = None,
                   locate: Callable[..., str] = condition_location) -> list[str]:
    """Names that are not unique or contain another name, and phrases that contain a name, over
    ``conditions`` (default: the world's) and the departments."""
    conditions = CONDITIONS if conditions is None else conditions
    problems = []
    for lang in LANGUAGES:
        names = [n for c in conditions for n in c.names(lang)] + [d.name[lang] for d in DEPARTMENTS.values()]
        lowered = [n.lower() for n in names]
        if len(set(lowered)) != len(lowered):
            problems.append(f"{lang} names are not unique")
        for a in lowered:
            problems += [f"{lang} name {b!r} contains name {a!r}" for b in lowered if a != b and a in b]
        for cond in conditions:
            for field, _, _ in FIELD_SIZES:
                for i, phrase in enumerate(getattr(cond, field)[lang]):
                    low = phrase.lower()
                    problems += [
                        f"{locate(cond.key, field, lang, i)}condition {cond.key!r}: "
                        f"{field}[{lang}] phrase {phrase!r} contains name {n!r}"
                        for n in lowered if n in low
                    ]
    return problems
