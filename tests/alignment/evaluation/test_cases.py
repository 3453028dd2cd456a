"""Reading eval sets: validation errors name the file, the row, the case and the field."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alignment.evaluation.cases import load_eval_sets, read_eval_set
from data_recipes.eval_cases import EVAL_SCHEMA
from medalign.config import ConfigError


def _write(path, rows):
    pq.write_table(pa.Table.from_pylist(rows, schema=EVAL_SCHEMA), path)


ROW = {"case_id": "c1", "eval_set": "mine", "language": "en", "messages": [{"role": "user", "content": "Headache?"}],
       "category": "diagnosis", "reference": None, "case_card": None, "rubric": None, "provenance": "{}",
       "truth": json.dumps({"condition": "migraine", "condition_names": ["migraine"], "expects": ["diagnosis"]})}


def test_a_valid_set_loads_with_its_truth(tmp_path):
    _write(tmp_path / "mine.parquet", [ROW, {**ROW, "case_id": "c2", "truth": None}])
    s = read_eval_set(tmp_path / "mine.parquet")
    assert (s.name, [c.key for c in s.cases], s.has_truth) == ("mine", ["mine/c1", "mine/c2"], True)
    assert s.cases[0].truth.expects == ["diagnosis"] and s.cases[1].truth is None


@pytest.mark.parametrize("change, message", [
    ({"truth": json.dumps({"expects": ["diagnosis"]})}, "row 1 (case 'c2'): truth: Value error, expects diagnosis but condition_names is empty"),
    ({"truth": json.dumps({"expects": ["cure"]})}, "row 1 (case 'c2'): truth.expects.0: Input should be"),
    ({"truth": "{not json"}, "row 1 (case 'c2'): truth: not JSON"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, "row 1 (case 'c2'): messages: must end with a user turn"),
    ({"case_id": "c1"}, "row 1: duplicate case_id 'c1'"),
    ({"case_card": json.dumps({"language": "en", "opening": "Headache?"})},
     "row 1 (case 'c2'): case_card.unknown_reply: Field required"),
    ({"case_card": json.dumps({"condition": "偏头痛", "opening_message": "Headache?"})},
     "row 1 (case 'c2'): case_card: the placeholder schema of an older medalign (opening_message): rebuild"),
    ({"rubric": json.dumps([{"criterion": "Names migraine.", "points": "five"}])},
     "row 1 (case 'c2'): rubric.points: Input should be a valid number"),
])
def test_a_bad_row_fails_with_one_line(tmp_path, change, message):
    _write(tmp_path / "mine.parquet", [ROW, {**ROW, "case_id": "c2", **change}])
    with pytest.raises(ConfigError) as err:
        read_eval_set(tmp_path / "mine.parquet")
    (problem,) = err.value.problems
    assert problem.startswith(f"{tmp_path / 'mine.parquet'}: ") and message in problem


def test_unknown_set_names_and_missing_directories(tmp_path):
    (tmp_path / "data" / "eval").mkdir(parents=True)
    _write(tmp_path / "data" / "eval" / "mine.parquet", [ROW])
    with pytest.raises(ConfigError, match=r"eval set\(s\) \['yours'\] not found; found: \['mine'\]"):
        load_eval_sets([str(tmp_path / "data")], names=["yours"])
    with pytest.raises(ConfigError, match="no such data directory"):
        load_eval_sets([str(tmp_path / "nowhere")])
    pq.write_table(pa.table({"x": [1]}), tmp_path / "other.parquet")
    with pytest.raises(ConfigError, match="not an eval set: missing column"):
        load_eval_sets(files=[str(tmp_path / "other.parquet")])
