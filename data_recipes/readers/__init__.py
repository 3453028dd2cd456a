"""Readers for the public medical data formats: a closed registry of streaming parsers.

    from data_recipes.readers import FORMATS, read_source
    for item in read_source("meddialog_zh.txt", "meddialog_raw"):
        ...   # a Record, or a Quarantined (file, line, reason, raw) for a malformed record

Every reader takes ``(path, *, language=None)`` and streams: JSONL and raw text line by line,
JSON lists element by element; nothing loads a 1 GB file (Safety-Prompts, one JSON object by
nature, is parsed whole). Bad input never raises: each malformed record becomes one
:class:`~data_recipes.records.Quarantined` and reading goes on. ``language`` forces
``Record.language``; otherwise the format's tags or :func:`data_recipes.lang.detect_language`
decide it.

Formats (details in each module's docstring):

================================  =================================================================
``meddialog_raw``                 MedDialog raw text, CN and EN (``meddialog_raw.py``)
``meddialog_json``                MedDialog processed JSON list (``meddialog_json.py``)
``huatuo_sft``                    HuatuoGPT sft jsonl ``{"data": ["问：", "答：", ...]}``
``kuake_qic``                     KUAKE-QIC ``[{id, label, query}]`` -> prompt-only "qa" records
``huatuo_meddialog_cases``        HuatuoGPT Med-dialog eval cases -> prompt-only "qa" + reference
``cmd_pretrain``                  CMD ``{"text"}``
``cmd_finetune``                  CMD ``{"instruction", "input", "output"}``
``cmd_reward``                    CMD ``{"question", "response_chosen", "response_rejected"}``
``ranked_jsonl``                  our k-way ranking ``{"question", "responses", "ranks"?, "sources"?}``
``sharegpt``                      ``{"conversations": [{"from", "value"}]}``
``openai_messages``               ``{"messages": [{"role", "content"}]}``
``alpaca``                        ``{"instruction", "input", "output"}``
``safety_prompts``                Safety-Prompts ``{scenario: [{"prompt", "response", "type"}]}``
``realmeddial``                   RealMedDial dialogues with department, disease, doctor, symptoms
                                  (written from the paper's description, ``realmeddial.py``)
``medalign_eval_cases``           eval cases with ground truth (``eval_cases.py``) -> prompt-only
================================  =================================================================

"Prompt-only" records (the two evaluation sets) are ``kind`` "qa" with a single user turn and
no answer; a reference answer, when the format has one, is in ``meta["reference"]``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from pathlib import Path

from data_recipes.readers.chat import read_alpaca, read_openai_messages, read_sharegpt
from data_recipes.readers.eval_cases import read_medalign_eval_cases
from data_recipes.readers.cmd import read_cmd_finetune, read_cmd_pretrain, read_cmd_reward, read_ranked_jsonl
from data_recipes.readers.huatuo import read_huatuo_meddialog_cases, read_huatuo_sft, read_kuake_qic
from data_recipes.readers.meddialog_json import read_meddialog_json
from data_recipes.readers.meddialog_raw import read_meddialog_raw
from data_recipes.readers.realmeddial import read_realmeddial
from data_recipes.readers.safety import read_safety_prompts
from data_recipes.records import Quarantined, Record

Reader = Callable[..., Iterator[Record | Quarantined]]

FORMATS: dict[str, Reader] = {
    "meddialog_raw": read_meddialog_raw,
    "meddialog_json": read_meddialog_json,
    "huatuo_sft": read_huatuo_sft,
    "cmd_pretrain": read_cmd_pretrain,
    "cmd_finetune": read_cmd_finetune,
    "cmd_reward": read_cmd_reward,
    "ranked_jsonl": read_ranked_jsonl,
    "sharegpt": read_sharegpt,
    "openai_messages": read_openai_messages,
    "alpaca": read_alpaca,
    "kuake_qic": read_kuake_qic,
    "huatuo_meddialog_cases": read_huatuo_meddialog_cases,
    "safety_prompts": read_safety_prompts,
    "realmeddial": read_realmeddial,
    "medalign_eval_cases": read_medalign_eval_cases,
}

LANGUAGE_VALUES = ("zh", "en", "other")


def reader_options(fmt: str) -> list[str]:
    """The keyword options a format's reader accepts."""
    params = inspect.signature(FORMATS[fmt]).parameters.values()
    return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]


def read_source(path: str | Path, fmt: str, **options) -> Iterator[Record | Quarantined]:
    """Stream the records of ``path`` read as format ``fmt``.

    Raises (before reading anything) ``ValueError`` for an unknown format or option, and
    ``FileNotFoundError`` for a missing file; malformed records are yielded as Quarantined.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known formats: {', '.join(sorted(FORMATS))}")
    known = reader_options(fmt)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"format {fmt!r} does not take option(s) {unknown}; it accepts: {known}")
    if options.get("language") not in (None, *LANGUAGE_VALUES):
        raise ValueError(f"language must be one of {LANGUAGE_VALUES} or None, got {options['language']!r}")
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such file (source for format {fmt!r})")
    return FORMATS[fmt](path, **options)


__all__ = ["FORMATS", "Reader", "read_source", "reader_options"]
