"""Inputs of judging, read into :class:`ResponseTuple` (one prompt, its k responses).

Three input kinds, each a ``.parquet`` or ``.jsonl`` file:

* ``samples``: the sample stage's ``samples.parquet``: ``prompt_id``, ``messages``, ``reference``,
  ``language``, ``responses``, ``response_ids`` (and ``policy``).
* ``tuples``: ranked reward tuples (the data stage's ``ranked/``, CMD-style): ``prompt_id``,
  ``messages``, ``responses``, optional ``ranks`` (0 = best), ``response_sources``, ``reference``.
  Without ``ranks``, the reference ranking comes from the sources and a ``source_order``
  (ChiMed-GPT: doctor > gpt-4 > gpt-3.5 > weak model).
* ``pairs``: preference pairs: ``prompt_id``, ``messages``, ``chosen``, ``rejected`` (the data
  stage's ``preferences/``), or ``response_a``/``response_b``; optional ``reference``. Each row is
  a tuple of two (chosen first, with reference ranks [0, 1]).

A row that cannot be used (no final user turn, no responses, mismatched lengths, ...) is
quarantined with the file, row number and reason, never dropped silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from judges.ranking import source_ranks

InputKind = Literal["samples", "tuples", "pairs"]


@dataclass
class ResponseTuple:
    prompt_id: str
    messages: list[dict]                  # the prompt: history ending with the user turn
    reference: str | None
    language: str | None
    response_ids: list[str]
    responses: list[str]
    reference_ranks: list[int] | None = None   # known ranking (tuples / pairs input)


@dataclass
class Quarantined:
    file: str
    row: int                              # 1-based row (line) number
    reason: str


def read_rows(path: str | Path) -> list[dict]:
    """Rows of a parquet or JSONL file as dicts (JSONL: 1-based line numbers are row numbers)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: input file not found")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq
        return pq.read_table(path).to_pylist()
    if path.suffix in (".jsonl", ".json"):
        rows = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        return rows
    raise ValueError(f"{path}: expected a .parquet or .jsonl file")


def _check_messages(messages) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "field 'messages': expected a non-empty list of {role, content}"
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") \
                or not isinstance(m.get("content"), str):
            return "field 'messages': every turn needs a role (system/user/assistant) and text content"
    if messages[-1]["role"] != "user":
        return "field 'messages': the prompt must end with a user turn"
    return None


def _one(kind: InputKind, row: dict, n: int, source_order: list[str] | None) -> ResponseTuple | str:
    """A tuple from one row, or the reason it cannot be used."""
    if problem := _check_messages(row.get("messages")):
        return problem
    pid = row.get("prompt_id")
    if not isinstance(pid, str) or not pid:
        return "field 'prompt_id': missing or not a string"
    ranks = None
    if kind == "pairs":
        a = row.get("chosen", row.get("response_a"))
        b = row.get("rejected", row.get("response_b"))
        if not isinstance(a, str) or not isinstance(b, str) or not a.strip() or not b.strip():
            return "fields 'chosen'/'rejected' (or 'response_a'/'response_b'): two non-empty texts needed"
        responses, ids = [a, b], [f"{pid}#0", f"{pid}#1"]
        ranks = [0, 1] if "chosen" in row else None
    else:
        responses = row.get("responses")
        if not isinstance(responses, list) or len(responses) < 2 or \
                not all(isinstance(r, str) for r in responses):
            return "field 'responses': a list of at least two texts is needed"
        ids = row.get("response_ids") or [f"{pid}#{i}" for i in range(len(responses))]
        if len(ids) != len(responses) or len(set(ids)) != len(ids):
            return "field 'response_ids': must be unique and as many as 'responses'"
        if kind == "tuples":
            ranks = row.get("ranks")
            if ranks is None and row.get("response_sources") and source_order:
                try:
                    ranks = source_ranks(list(row["response_sources"]), source_order)
                except ValueError as e:
                    return f"field 'response_sources': {e}"
            if ranks is not None and len(ranks) != len(responses):
                return "field 'ranks': must be as many as 'responses'"
    reference = row.get("reference")
    if reference is not None and not isinstance(reference, str):
        return "field 'reference': expected text or null"
    return ResponseTuple(pid, list(row["messages"]), reference or None, row.get("language"),
                         list(ids), list(responses), list(ranks) if ranks is not None else None)


def load_tuples(path: str | Path, kind: InputKind, source_order: list[str] | None = None
                ) -> tuple[list[ResponseTuple], list[Quarantined]]:
    """Read an input file; returns (usable tuples, quarantined rows)."""
    tuples, bad, seen = [], [], set()
    for n, row in enumerate(read_rows(path), start=1):
        got = _one(kind, row, n, source_order) if isinstance(row, dict) else "row is not an object"
        if isinstance(got, str):
            bad.append(Quarantined(str(path), n, got))
            continue
        if got.prompt_id in seen:
            if kind != "pairs":
                bad.append(Quarantined(str(path), n, f"duplicate prompt_id {got.prompt_id!r}"))
                continue
            got.prompt_id = f"{got.prompt_id}@{n}"           # several pairs for one prompt
            got.response_ids = [f"{got.prompt_id}#0", f"{got.prompt_id}#1"]
        seen.add(got.prompt_id)
        tuples.append(got)
    return tuples, bad
