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
quarantined with the file, row number and reason, never dropped silently; so is a JSONL line that
is not valid JSON (a truncated line) or not UTF-8, and a response longer than
``max_response_chars`` (the others of its tuple are still judged). Optional ``department`` and
``intent`` columns are kept as the tuple's ``tags`` (they reach the transcript, for audits).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from judges.errors import JudgeSetupError
from judges.ranking import source_ranks

InputKind = Literal["samples", "tuples", "pairs"]
MAX_RESPONSE_CHARS = 20_000               # default cap: a longer response is quarantined
TAG_COLUMNS = ("department", "intent")     # prompt metadata kept for audits


@dataclass
class ResponseTuple:
    prompt_id: str
    messages: list[dict]                  # the prompt: history ending with the user turn
    reference: str | None
    language: str | None
    response_ids: list[str]
    responses: list[str]
    reference_ranks: list[int] | None = None   # known ranking (tuples / pairs input)
    tags: dict[str, str] | None = None         # department / intent, when the input has them


@dataclass
class Quarantined:
    file: str
    row: int                              # 1-based row (line) number
    reason: str


def read_rows(path: str | Path, bad: list[Quarantined] | None = None) -> list[tuple[int, dict]]:
    """(row number, row) of a parquet or JSONL file. JSONL row numbers are 1-based line numbers;
    a line that is not UTF-8 or not JSON is appended to ``bad`` (an error when ``bad`` is None)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: input file not found")
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq
        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as e:
            raise JudgeSetupError(f"{path}: not a readable parquet file ({e})") from None
        return list(enumerate(table.to_pylist(), start=1))
    if path.suffix not in (".jsonl", ".json"):
        raise JudgeSetupError(f"{path}: expected a .parquet or .jsonl file")
    rows = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            problem, row = _json_line(raw)
            if problem is None and row is not None:
                rows.append((n, row))
            elif problem is not None:
                if bad is None:
                    raise JudgeSetupError(f"{path}:{n}: {problem}")
                bad.append(Quarantined(str(path), n, problem))
    return rows


def _json_line(raw: bytes) -> tuple[str | None, object]:
    """(problem, value) of one JSONL line; (None, None) for a blank line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"not valid UTF-8 (byte {e.start} of the line): re-encode the file as UTF-8", None
    if not text.strip():
        return None, None
    try:
        return None, json.loads(text)
    except json.JSONDecodeError as e:
        return f"not valid JSON ({e.msg}, column {e.colno}): a truncated or broken line", None


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
    tags = {k: str(row[k]) for k in TAG_COLUMNS if row.get(k) not in (None, "")}
    return ResponseTuple(pid, list(row["messages"]), reference or None, row.get("language"),
                         list(ids), list(responses), list(ranks) if ranks is not None else None,
                         tags or None)


def _drop_long(t: ResponseTuple, limit: int, path: str, n: int,
               bad: list[Quarantined]) -> ResponseTuple | None:
    """``t`` without its responses longer than ``limit`` (each quarantined); None when fewer
    than two are left (the row is then quarantined too)."""
    keep = [i for i, r in enumerate(t.responses) if len(r) <= limit]
    if len(keep) == len(t.responses):
        return t
    for i, r in enumerate(t.responses):
        if len(r) > limit:
            bad.append(Quarantined(path, n, f"response {i} ({t.response_ids[i]}): {len(r):,} "
                                            f"characters > max_response_chars {limit:,}; not judged"))
    if len(keep) < 2:
        bad.append(Quarantined(path, n, "fewer than two responses left to judge"))
        return None
    ranks = [t.reference_ranks[i] for i in keep] if t.reference_ranks is not None else None
    return ResponseTuple(t.prompt_id, t.messages, t.reference, t.language,
                         [t.response_ids[i] for i in keep], [t.responses[i] for i in keep],
                         ranks, t.tags)


def load_tuples(path: str | Path, kind: InputKind, source_order: list[str] | None = None,
                max_response_chars: int = MAX_RESPONSE_CHARS
                ) -> tuple[list[ResponseTuple], list[Quarantined]]:
    """Read an input file; returns (usable tuples, quarantined rows and responses)."""
    tuples, bad, seen = [], [], set()
    for n, row in read_rows(path, bad):
        got = _one(kind, row, n, source_order) if isinstance(row, dict) else "row is not an object"
        if isinstance(got, str):
            bad.append(Quarantined(str(path), n, got))
            continue
        got = _drop_long(got, max_response_chars, str(path), n, bad)
        if got is None:
            continue
        if got.prompt_id in seen:
            if kind != "pairs":
                bad.append(Quarantined(str(path), n, f"duplicate prompt_id {got.prompt_id!r}"))
                continue
            got.prompt_id = f"{got.prompt_id}@{n}"           # several pairs for one prompt
            got.response_ids = [f"{got.prompt_id}#0", f"{got.prompt_id}#1"]
        seen.add(got.prompt_id)
        tuples.append(got)
    bad.sort(key=lambda q: q.row)
    return tuples, bad
