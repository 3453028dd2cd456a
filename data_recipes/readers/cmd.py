"""CMD (Chinese Medical Dialogue, as used by ChiMed-GPT / MedicalGPT) formats and our ranked layout.

* ``cmd_pretrain``: JSONL ``{"text"}`` -> ``kind`` "text".
* ``cmd_finetune``: JSONL ``{"instruction", "input", "output"}`` -> ``kind`` "qa"; the user turn is
  the instruction, followed by the input on a new line when there is one.
* ``cmd_reward``: JSONL ``{"question", "response_chosen", "response_rejected"}`` (optional
  ``history``: ``[[question, answer], ...]``) -> ``kind`` "preference", ``responses`` =
  [chosen, rejected], ``ranks`` = [0, 1].
* ``ranked_jsonl`` (our layout for ChiMed-GPT's 4-way ranking): JSONL ``{"question",
  "responses": [best, ..., worst], "ranks"?: [0, 1, ...], "sources"?: ["doctor", "gpt-4", ...],
  "history"?: [{"role", "content"}, ...], "id"?, "department"?, "diagnosis"?}`` -> ``kind``
  "ranked". ``ranks`` default to 0..k-1 (0 = best, equal ranks are ties).

Ids: the line's ``id`` when present, else ``<file stem>:<line>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data_recipes.readers.fields import (
    RecordError, Where, as_object, get_list, get_str, instruction_text, message_turns, own_id, pair_history,
    parsed_records, str_items,
)
from data_recipes.readers.speakers import OPENAI_ROLES
from data_recipes.readers.streams import iter_jsonl
from data_recipes.records import Quarantined, Record, Turn


def read_cmd_pretrain(path: str | Path, *, language: str | None = None) -> Iterator[Record | Quarantined]:
    """Stream a CMD pretraining jsonl file ({"text"})."""
    return parsed_records(iter_jsonl(path), path, _parse_pretrain, language)


def _parse_pretrain(value: Any, where: Where) -> Record:
    obj = as_object(value)
    return Record(id=own_id(obj, where), kind="text", text=get_str(obj, "text"))


def read_cmd_finetune(path: str | Path, *, language: str | None = None) -> Iterator[Record | Quarantined]:
    """Stream a CMD finetune jsonl file ({"instruction", "input", "output"})."""
    return parsed_records(iter_jsonl(path), path, _parse_finetune, language)


def _parse_finetune(value: Any, where: Where) -> Record:
    obj = as_object(value)
    answer = get_str(obj, "output").strip()
    turns = [Turn("user", instruction_text(obj)), Turn("assistant", answer)]
    return Record(id=own_id(obj, where), kind="qa", turns=turns)


def read_cmd_reward(path: str | Path, *, language: str | None = None) -> Iterator[Record | Quarantined]:
    """Stream a CMD reward jsonl file into preference records."""
    return parsed_records(iter_jsonl(path), path, _parse_reward, language)


def _parse_reward(value: Any, where: Where) -> Record:
    obj = as_object(value)
    question = get_str(obj, "question").strip()
    chosen, rejected = get_str(obj, "response_chosen"), get_str(obj, "response_rejected")
    turns = pair_history(obj) + [Turn("user", question)]
    return Record(id=own_id(obj, where), kind="preference", turns=turns,
                  responses=[chosen.strip(), rejected.strip()], ranks=[0, 1])


def read_ranked_jsonl(path: str | Path, *, language: str | None = None) -> Iterator[Record | Quarantined]:
    """Stream our k-way ranked jsonl layout into ranked records."""
    return parsed_records(iter_jsonl(path), path, _parse_ranked, language)


def _parse_ranked(value: Any, where: Where) -> Record:
    obj = as_object(value)
    question = get_str(obj, "question").strip()
    responses = [r.strip() for r in str_items(get_list(obj, "responses", min_len=2), "responses")]
    ranks = get_list(obj, "ranks", required=False)
    if ranks is None:
        ranks = list(range(len(responses)))
    elif len(ranks) != len(responses) or not all(type(r) is int and r >= 0 for r in ranks):
        raise RecordError(f"field 'ranks' must be {len(responses)} non-negative integers, one per response")
    sources = get_list(obj, "sources", required=False)
    if sources is not None and (len(sources) != len(responses) or not all(type(s) is str for s in sources)):
        raise RecordError(f"field 'sources' must be {len(responses)} strings, one per response")
    meta = {key: get_str(obj, key) for key in ("department", "diagnosis") if obj.get(key) is not None}
    messages = get_list(obj, "history", required=False) or []
    history = message_turns(messages, "history", "role", "content", OPENAI_ROLES)
    return Record(id=own_id(obj, where), kind="ranked", turns=history + [Turn("user", question)],
                  responses=responses, ranks=list(ranks), response_sources=sources, meta=meta)


# formats with one JSON record a line: a byte range of lines can be read on its own
# (readers/shards.py); format -> the function that parses one line's value
LINE_PARSERS = {"cmd_pretrain": _parse_pretrain, "cmd_finetune": _parse_finetune, "cmd_reward": _parse_reward,
                "ranked_jsonl": _parse_ranked}
