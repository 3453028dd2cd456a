"""Eval sets as the evaluation reads them: Parquet files of eval cases (data_recipes/eval_cases.py).

    sets = load_eval_sets(data_dirs=["runs/quickstart/data-1a2b3c"], files=[], names=None)
    sets[0].name, len(sets[0].cases), sets[0].cases[0].truth      # Truth or None

A data stage (or ``medalign data build``) writes a recipe's eval sets to ``<dir>/eval/<name>.parquet``;
any Parquet file with the same columns is an eval set too. Every row is validated: a bad one fails
the whole load with one line naming the file, the row, the case and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from data_recipes.eval_cases import EVAL_DIR, EVAL_SCHEMA, CaseCard, RubricCriterion, Truth
from medalign.config import ConfigError


@dataclass(frozen=True)
class Case:
    """One eval case (one row of an eval set)."""

    case_id: str
    eval_set: str
    language: str | None
    messages: list[dict]                  # history ending with the patient's turn
    category: str | None                  # intent (single-turn sets) or department (multi-turn)
    reference: str | None                 # a good doctor's answer, for reference-based judges
    truth: Truth | None                   # ground truth; None: the clinical checks do not apply
    case_card: CaseCard | None            # what a simulated patient may tell (multi-turn sets)
    rubric: list[RubricCriterion] | None  # HealthBench criteria

    @property
    def key(self) -> str:
        """``<eval set>/<case id>``: unique across the sets of one evaluation."""
        return f"{self.eval_set}/{self.case_id}"


@dataclass(frozen=True)
class EvalSet:
    name: str
    path: str
    cases: list[Case]

    @property
    def has_truth(self) -> bool:
        return any(c.truth is not None for c in self.cases)


def eval_set_files(data_dir: str | Path) -> list[Path]:
    """The eval sets a data-stage directory holds (``eval/*.parquet``), sorted."""
    return sorted((Path(data_dir) / EVAL_DIR).glob("*.parquet"))


def read_eval_set(path: str | Path, max_cases: int | None = None) -> EvalSet:
    """Read and validate one eval-set Parquet file (ConfigError naming file, row and field)."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"{path}: no such eval set file"])
    table = pq.read_table(path)
    missing = [n for n in EVAL_SCHEMA.names if n not in table.column_names and n != "provenance"]
    if missing:
        raise ConfigError([f"{path}: not an eval set: missing column(s) {missing} (see docs/CONTRACTS.md \"Eval sets\")"])
    rows = table.to_pylist()[:max_cases]
    cases, seen = [], set()
    for i, row in enumerate(rows):
        case = _case(path, i, row)
        if case.case_id in seen:
            raise ConfigError([f"{path}: row {i}: duplicate case_id {case.case_id!r}"])
        seen.add(case.case_id)
        cases.append(case)
    names = {c.eval_set for c in cases}
    return EvalSet(names.pop() if len(names) == 1 else path.stem, str(path), cases)


def _case(path: Path, i: int, row: dict) -> Case:
    return case_from_row(row, f"{path}: row {i} (case {row.get('case_id')!r})", path.stem)


def case_from_row(row: dict, where: str = "eval case", default_set: str = "cases") -> Case:
    """A :class:`Case` from one eval-set row (JSON columns as strings or parsed values);
    ConfigError ``<where>: <field>: <problem>`` on a bad row."""
    messages = row.get("messages") or []
    if not messages or messages[-1].get("role") != "user":
        raise ConfigError([f"{where}: messages: must end with a user turn"])
    parsed, column = {}, "truth"
    try:
        for column, model in (("truth", Truth), ("rubric", RubricCriterion), ("case_card", CaseCard)):
            value = row.get(column)
            value = json.loads(value) if isinstance(value, str) else value
            if value is None:
                parsed[column] = None
            elif column == "case_card" and isinstance(value, dict) and "opening_message" in value:
                raise ConfigError([f"{where}: case_card: the placeholder schema of an older medalign "
                                   "(opening_message): rebuild the eval sets (medalign run JOB --force data)"])
            elif column == "rubric":
                if not isinstance(value, list):
                    raise ConfigError([f"{where}: rubric: expected a list of {{criterion, points, tags}}"])
                parsed[column] = [model.model_validate(c) for c in value]
            else:
                parsed[column] = model.model_validate(value)
    except json.JSONDecodeError as e:
        raise ConfigError([f"{where}: {column}: not JSON: {e}"]) from None
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join([column, *(str(p) for p in err["loc"])])
        raise ConfigError([f"{where}: {field}: {err['msg']}"]) from None
    return Case(case_id=str(row["case_id"]), eval_set=str(row.get("eval_set") or default_set),
                language=row.get("language"), messages=[dict(m) for m in messages],
                category=row.get("category"), reference=row.get("reference"), truth=parsed["truth"],
                case_card=parsed["case_card"], rubric=parsed["rubric"])


def load_eval_sets(data_dirs: list[str] = (), files: list[str] = (), names: list[str] | None = None,
                   max_cases: int | None = None) -> list[EvalSet]:
    """The eval sets of data-stage directories and Parquet files, optionally only ``names``."""
    paths = [p for d in data_dirs for p in eval_set_files(d)] + [Path(f) for f in files]
    for d in data_dirs:
        if not Path(d).is_dir():
            raise ConfigError([f"{d}: no such data directory"])
    sets = [read_eval_set(p, max_cases) for p in paths]
    if names is not None:
        unknown = sorted(set(names) - {s.name for s in sets})
        if unknown:
            raise ConfigError([f"eval set(s) {unknown} not found; found: {sorted(s.name for s in sets) or 'none'}"])
        sets = [s for s in sets if s.name in names]
    dupes = sorted({s.name for s in sets if [t.name for t in sets].count(s.name) > 1})
    if dupes:
        raise ConfigError([f"eval set name(s) {dupes} found more than once: give each set once"])
    return sets
