"""``medalign_eval_cases``: eval cases with ground truth, one JSON object a line.

    {"case_id": "single-zh-007", "language": "zh", "messages": [{"role": "user", "content": "..."}],
     "category": "治疗方案", "reference": "...", "truth": {...}, "case_card": null, "rubric": null}

The schema is :class:`data_recipes.eval_cases.EvalCase` (unknown keys and ill-typed values
quarantine the line, naming the field). A record is prompt-only: ``kind`` "qa" for one user turn
("dialogue" for a longer history), its id the ``case_id``, and ``meta`` holds ``category``,
``reference``, ``truth``, ``case_card`` and ``rubric`` as parsed JSON. The synthetic world writes
its eval sets in this format (``data_recipes/synthetic/eval_sets.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from data_recipes.eval_cases import EvalCase
from data_recipes.readers.fields import RecordError, Where, as_object, parsed_records
from data_recipes.readers.streams import iter_jsonl
from data_recipes.records import Quarantined, Record, Turn


def read_medalign_eval_cases(path: str | Path, *, language: str | None = None) -> Iterator[Record | Quarantined]:
    """Stream an eval-case JSONL file."""
    return parsed_records(iter_jsonl(path), path, _parse_case, language)


def _parse_case(value: Any, where: Where) -> Record:
    try:
        case = EvalCase.model_validate(as_object(value))
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "record"
        raise RecordError(f"{loc}: {first['msg']}") from None
    turns = [Turn(m.role, m.content.strip()) for m in case.messages]
    meta = {"category": case.category, "reference": case.reference,
            "truth": case.truth.model_dump(mode="json") if case.truth else None,
            "case_card": case.case_card.model_dump(mode="json") if case.case_card else None,
            "rubric": [c.model_dump(mode="json") for c in case.rubric] if case.rubric is not None else None}
    kind = "qa" if len(turns) == 1 else "dialogue"
    return Record(id=case.case_id, kind=kind, turns=turns, meta=meta, language=case.language)


__all__ = ["read_medalign_eval_cases"]
