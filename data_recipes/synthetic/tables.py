"""Load the synthetic world's data files (``data_recipes/synthetic/data/*.yaml``) against a schema.

    departments, conditions = load_world()          # what world.py exposes as DEPARTMENTS / CONDITIONS
    common = load_common_departments()              # extra department names for the lexicon

The tables are data, not Python: ``departments.yaml``, ``conditions_*.yaml`` (read in file-name
order; a new file of conditions needs no code), ``common_departments.yaml`` and ``outbreak.yaml``
(a family of new conditions outside the world: ``load_outbreak``, used by ``outbreak.py``). Each file is
validated by the pydantic models below; a problem raises :class:`medalign.config.ConfigError`
naming the file, the line and the field (``conditions_medicine.yaml:12: conditions.0.name.en:
Field required``). Content rules that span entries (sizes, languages, names inside phrases,
unknown departments or differentials) are :func:`data_recipes.synthetic.world.world_problems`.

Files are parsed with libyaml when it is there (~5x faster than the pure-Python parser the
line-numbered loader needs); the line-numbered parse runs only to locate a problem.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from data_recipes.eval_cases import Check
from data_recipes.synthetic.schema import Condition, Department
from medalign.config import ConfigError, StrictModel, line_of, load_yaml, validate_mapping

DATA_DIR = Path(__file__).resolve().parent / "data"
_REPO = DATA_DIR.parents[2]
DEPARTMENTS_FILE = "departments.yaml"
CONDITION_FILES = "conditions_*.yaml"
COMMON_DEPARTMENTS_FILE = "common_departments.yaml"
OUTBREAK_FILE = "outbreak.yaml"
INTENTS_FILE = "intents.yaml"
KEY_PATTERN = r"^[a-z][a-z0-9_]*$"
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Names(StrictModel):
    """One name per language."""

    zh: str = Field(min_length=1, description="Chinese name")
    en: str = Field(min_length=1, description="English name")


class Synonyms(StrictModel):
    """Other names of a condition per language (may be empty)."""

    zh: list[str] = Field(default_factory=list, description="Chinese synonyms")
    en: list[str] = Field(default_factory=list, description="English synonyms")


class Phrases(StrictModel):
    """Phrases per language (how many of each field: world.FIELD_SIZES)."""

    zh: list[str] = Field(min_length=1, description="Chinese phrases")
    en: list[str] = Field(min_length=1, description="English phrases")


class DepartmentEntry(StrictModel):
    """A department of the world."""

    key: str = Field(pattern=KEY_PATTERN, description="stable id, e.g. neurology")
    name: Names = Field(description="the department's name, as a patient or doctor writes it")


class ConditionEntry(StrictModel):
    """A condition of the world (field grammar: data/README.md)."""

    key: str = Field(pattern=KEY_PATTERN, description="stable id, e.g. migraine")
    department: str = Field(description="key of the department that treats it")
    name: Names = Field(description="the condition's name")
    synonyms: Synonyms = Field(default_factory=Synonyms, description="other names of the condition (ground truth accepts them)")
    symptoms: Phrases = Field(description="what a patient reports")
    onset: Phrases = Field(description="onset and duration cues")
    advice: Phrases = Field(description="what a good answer recommends")
    red_flags: Phrases = Field(description="signs that need urgent care")
    follow_up_questions: Phrases = Field(description="what a doctor asks when information is missing")
    differentials: list[str] = Field(min_length=1, description="keys of conditions that present alike")


class DepartmentsFile(StrictModel):
    departments: list[DepartmentEntry] = Field(min_length=1, description="the world's departments, in order")


class ConditionsFile(StrictModel):
    conditions: list[ConditionEntry] = Field(min_length=1, description="conditions, in order")


class Outbreak(StrictModel):
    """A family of new conditions outside the world (MedDialog's transfer target, like COVID-19
    was for CovidDialog): written only when asked, never part of ``CONDITIONS``."""

    name: Names = Field(description="the outbreak's name (the new pathogen)")
    description: str = Field(min_length=1, description="what the family is, for the reader")
    conditions: list[ConditionEntry] = Field(min_length=2, description="its conditions, in order")


class OutbreakFile(StrictModel):
    outbreak: Outbreak = Field(description="the new-outbreak family of conditions")


class CommonDepartment(StrictModel):
    """Names of a department beyond the world's own (aliases when a name matches a world department)."""

    key: str = Field(pattern=KEY_PATTERN, description="department key")
    zh: list[str] = Field(default_factory=list, description="Chinese names")
    en: list[str] = Field(default_factory=list, description="English names (matched as whole words)")


class CommonDepartmentsFile(StrictModel):
    common_departments: list[CommonDepartment] = Field(min_length=1, description="extra department names")


class IntentEntry(StrictModel):
    """One KUAKE-QIC intent: its label, the checks that apply, question and answer templates."""

    key: str = Field(pattern=KEY_PATTERN, description="stable id, e.g. treatment")
    label: Names = Field(description="the KUAKE-QIC label (zh) and our English label")
    expects: list[Check] = Field(min_length=1, description="ground-truth checks of a case of this intent")
    questions: Phrases | None = Field(None, description="templates of the patient's question (none: a consultation message)")
    answers: Phrases | None = Field(None, description="templates of a good doctor's answer (none: answers.py's styles)")


class IntentsFile(StrictModel):
    intents: list[IntentEntry] = Field(min_length=1, description="the intents, in order")


def load_table(path: Path, model: type[StrictModel]) -> Any:
    """Parse and validate one data file; ConfigError naming file, line and field on a problem."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_FAST_LOADER)  # noqa: S506 - safe loader
        return model.model_validate(data)
    except (yaml.YAMLError, ValidationError, UnicodeDecodeError):
        pass
    return validate_mapping(load_yaml(path), model, source=path)    # the slow parse names the lines


def _phrases(p: Phrases) -> dict[str, tuple[str, ...]]:
    return {"zh": tuple(p.zh), "en": tuple(p.en)}


def _condition(e: ConditionEntry) -> Condition:
    return Condition(key=e.key, department=e.department, name={"zh": e.name.zh, "en": e.name.en},
                     symptoms=_phrases(e.symptoms), onset=_phrases(e.onset), advice=_phrases(e.advice),
                     red_flags=_phrases(e.red_flags), follow_up_questions=_phrases(e.follow_up_questions),
                     differentials=tuple(e.differentials),
                     synonyms={"zh": tuple(e.synonyms.zh), "en": tuple(e.synonyms.en)})


def condition_files(data_dir: Path = DATA_DIR) -> list[Path]:
    """The condition files, in the order their conditions are listed (file name order)."""
    files = sorted(data_dir.glob(CONDITION_FILES))
    if not files:
        raise ConfigError([f"{data_dir}: no {CONDITION_FILES} file"])
    return files


def load_world(data_dir: Path = DATA_DIR) -> tuple[dict[str, Department], tuple[Condition, ...]]:
    """The world's departments (key -> Department, in file order) and conditions (in order)."""
    departments = load_table(data_dir / DEPARTMENTS_FILE, DepartmentsFile).departments
    conditions = [c for path in condition_files(data_dir) for c in load_table(path, ConditionsFile).conditions]
    return ({d.key: Department(key=d.key, name={"zh": d.name.zh, "en": d.name.en}) for d in departments},
            tuple(_condition(c) for c in conditions))


def load_outbreak(data_dir: Path = DATA_DIR) -> tuple[Outbreak, tuple[Condition, ...]]:
    """The new-outbreak family (``outbreak.yaml``) and its conditions, in file order."""
    outbreak = load_table(data_dir / OUTBREAK_FILE, OutbreakFile).outbreak
    return outbreak, tuple(_condition(c) for c in outbreak.conditions)


def load_common_departments(data_dir: Path = DATA_DIR) -> list[CommonDepartment]:
    """Department names beyond the world's own (common_departments.yaml), for the lexicon."""
    return load_table(data_dir / COMMON_DEPARTMENTS_FILE, CommonDepartmentsFile).common_departments


@lru_cache(maxsize=1)
def load_intents(data_dir: Path = DATA_DIR) -> tuple[IntentEntry, ...]:
    """The KUAKE-QIC intents of intents.yaml, in file order."""
    return tuple(load_table(data_dir / INTENTS_FILE, IntentsFile).intents)


@lru_cache(maxsize=1)
def _lined_conditions(data_dir: Path) -> dict[str, tuple[Path, Any, int]]:
    """Condition key -> (file, parsed file with lines, index): only built to locate a problem."""
    out = {}
    for path in condition_files(data_dir):
        data = load_yaml(path)
        for i, entry in enumerate(data.get("conditions") or []):
            if isinstance(entry, dict) and isinstance(entry.get("key"), str):
                out.setdefault(entry["key"], (path, data, i))
    return out


def condition_location(key: str, *field: str | int, data_dir: Path = DATA_DIR) -> str:
    """``file:line: `` of a condition's entry (or of one of its fields), '' for an unknown key."""
    found = _lined_conditions(data_dir).get(key)
    if found is None:
        return ""
    path, data, index = found
    return f"{_shown(path)}:{line_of(data, ('conditions', index, *field))}: "


def _shown(path: Path) -> Path:
    return path.relative_to(_REPO) if path.is_relative_to(_REPO) else path


def outbreak_location(key: str, *field: str | int, data_dir: Path = DATA_DIR) -> str:
    """``file:line: `` of an outbreak condition's entry (or field) in outbreak.yaml, '' if unknown."""
    path = data_dir / OUTBREAK_FILE
    data = load_yaml(path)
    entries = (data.get("outbreak") or {}).get("conditions") or []
    index = next((i for i, e in enumerate(entries) if isinstance(e, dict) and e.get("key") == key), None)
    if index is None:
        return ""
    return f"{_shown(path)}:{line_of(data, ('outbreak', 'conditions', index, *field))}: "
