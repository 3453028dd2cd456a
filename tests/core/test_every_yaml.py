"""Every YAML in the repository validates against its schema; none is left unclaimed.

Also checks that environment.yml and pyproject.toml pin the same dependencies.
"""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _tracked_yaml() -> list[Path]:
    """YAML files git knows about (tracked or new, not ignored): what a fresh clone holds."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard",
                          "*.yaml", "*.yml"], cwd=REPO, capture_output=True, text=True, check=True)
    return [REPO / line for line in out.stdout.splitlines() if line and (REPO / line).exists()]


def _validate_job(path: Path) -> None:
    from jobs.plan import load_plan

    load_plan(path)


def _validate_recipe(path: Path) -> None:
    from data_recipes.recipe_load import load_recipe

    load_recipe(path, check_files=False)   # sources name ${corpus}, generated at run time


def _validate_template(path: Path) -> None:
    from judges.templates import TemplateSpec
    from medalign.config import load_config

    load_config(path, TemplateSpec)


def _validate_capacity_table(path: Path) -> None:
    from alignment.capacity.shapes import TABLE_SCHEMAS
    from medalign.config import load_config

    load_config(path, TABLE_SCHEMAS[path.name])


def _validate_world_table(path: Path) -> None:
    from data_recipes.synthetic import case_cards, clinical_rules, doctors, rubrics, tables

    model = {tables.DEPARTMENTS_FILE: tables.DepartmentsFile,
             tables.COMMON_DEPARTMENTS_FILE: tables.CommonDepartmentsFile,
             tables.OUTBREAK_FILE: tables.OutbreakFile,
             doctors.DOCTORS_FILE: doctors.DoctorsFile,
             tables.INTENTS_FILE: tables.IntentsFile,
             clinical_rules.PHRASES_FILE.name: clinical_rules.ClinicalPhrases,
             case_cards.BACKGROUND_FILE.name: case_cards.PatientBackground,
             rubrics.CRITERIA_FILE.name: rubrics.DemoCriteria}.get(path.name)
    if model is None:
        assert path.match(tables.CONDITION_FILES), f"{path}: not a table tables.py loads"
        model = tables.ConditionsFile
    tables.load_table(path, model)


def _validate_pii_places(path: Path) -> None:
    from data_recipes.synthetic.tables import load_table
    from data_recipes.transforms.pii_places import PlaceWords

    load_table(path, PlaceWords)


def _validate_injection_patterns(path: Path) -> None:
    from judges.flags import InjectionPatterns
    from medalign.config import load_config

    load_config(path, InjectionPatterns)


def _validate_server_table(path: Path) -> None:
    from judges.server.patient import PatientTopics
    from medalign.config import load_config

    schemas = {"patient_topics.yaml": PatientTopics}
    assert path.name in schemas, f"{path}: not a table judges/server loads"
    load_config(path, schemas[path.name])


def _validate_evaluation_file(path: Path) -> None:
    from alignment.evaluation.healthbench_grader import GraderTemplate
    from alignment.evaluation.patient import PatientTemplate
    from medalign.config import load_config

    schemas = {"patient.yaml": PatientTemplate, "healthbench_grader.yaml": GraderTemplate}
    assert path.name in schemas, f"{path}: not a file alignment/evaluation loads"
    load_config(path, schemas[path.name])


def _validate_scale(path: Path) -> None:
    from alignment.bias.scale import load_scale

    load_scale(path)


def _validate_answer_cues(path: Path) -> None:
    from alignment.bias.answers import AnswerCues
    from medalign.config import load_config

    load_config(path, AnswerCues)


def _validate_eval_config(path: Path) -> None:
    from alignment.evaluation.config import EvalRunConfig
    from medalign.config import load_config

    load_config(path, EvalRunConfig)


VALIDATORS = {
    "jobs": _validate_job,
    "data_recipes/synthetic/data": _validate_world_table,
    "judges": _validate_injection_patterns,     # judges/injection_patterns.yaml
    "data_recipes/recipes": _validate_recipe,
    "judges/prompts": _validate_template,
    "alignment/capacity": _validate_capacity_table,
    "judges/server": _validate_server_table,
    "alignment/evaluation/prompts": _validate_evaluation_file,
    "alignment/bias/scales": _validate_scale,
    "alignment/bias": _validate_answer_cues,          # alignment/bias/answer_cues.yaml
    "data_recipes/transforms": _validate_pii_places,     # pii_places.yaml
    "alignment/evaluation/examples": _validate_eval_config,
}
NOT_CONFIG = {"environment.yml"}      # conda's file, checked against pyproject below


def _validator_for(path: Path):
    rel = path.relative_to(REPO)
    if str(rel) in NOT_CONFIG or rel.parts[0] == "tests":
        return None
    for folder, fn in VALIDATORS.items():
        if rel.parent.as_posix() == folder:
            return fn
    raise AssertionError(f"{rel}: no schema claims this YAML; add it to VALIDATORS in {__file__}")


@pytest.mark.parametrize("path", _tracked_yaml(), ids=lambda p: str(p.relative_to(REPO)))
def test_yaml_validates(path):
    fn = _validator_for(path)
    if fn is not None:
        fn(path)


def test_there_is_a_job_a_recipe_and_a_template():
    rels = {p.relative_to(REPO).parent.as_posix() for p in _tracked_yaml()}
    assert {"jobs", "data_recipes/recipes", "judges/prompts"} <= rels


def _normalise(req: str) -> str:
    return req.split("#")[0].strip().replace(" ", "").lower()


def test_environment_yml_pins_what_pyproject_pins():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    wanted = {_normalise(r) for r in pyproject["project"]["dependencies"]}
    wanted |= {_normalise(r) for r in pyproject["project"]["optional-dependencies"]["dev"]}
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    have = {_normalise(r) for r in pip if not r.startswith(("-", "--"))}
    assert have == wanted, f"only in pyproject: {wanted - have}; only in environment.yml: {have - wanted}"
