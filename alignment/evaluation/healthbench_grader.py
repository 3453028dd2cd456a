"""The rubric-criterion grader's prompt and the rule that reads its reply (HealthBench's shape).

    messages = grader_messages(template, conversation, item, "en")   # one criterion of one answer
    parsed = parse_grader_reply(reply_text, finish_reason)           # judges.parsers.Parsed

The prompt (``prompts/healthbench_grader.yaml``, versioned, en/zh) shows the conversation as
``role: content`` blocks (the graded response is the last ``assistant`` block) and the item as
``[points] criterion``. Inserted texts are untrusted: a line in them that imitates a section
heading (``# Rubric item``) or a turn (``assistant: ...``) is neutralised with a full-width
``＃`` / ``：``, so a response cannot open a fake section or a fake last turn.

Reply rule (parser ``grader-1``), like the judges' rating parsers: the reply must *end* with one
JSON object, bare or in a markdown code fence, whose ``criteria_met`` is ``true`` or ``false``;
prose before it is allowed and ignored. Statuses: ``ok`` (``scores = {"A": 1.0 or 0.0}``, the
verdict on the response shown, as a single-answer judge row; ``details = {"criteria_met": ...}``;
``span`` where the object stands), ``parse_error`` (empty, cut by ``max_tokens``, no
closing JSON object, ``criteria_met`` missing or not a boolean), ``refused`` (no JSON object and
the reply reads as declining). Only ``ok`` replies are grades.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from alignment.evaluation.judge_calls import CallTemplate
from judges.parsers import Parsed, looks_like_refusal
from medalign.config import StrictModel, load_config

GRADER_TEMPLATE = Path(__file__).resolve().parent / "prompts" / "healthbench_grader.yaml"
PARSER_VERSION = "grader-1"              # bump when parse_grader_reply's rules change
_HEADING = re.compile(r"(?im)^(\s*)#(?=\s*(?:conversation|rubric item|instructions|final instruction"
                      r"|对话|评分条目|说明|最终要求)\s*$)")
_ROLE = re.compile(r"(?im)^(\s*(?:user|assistant|system|developer)\s*):")
_FENCE = re.compile(r"\s*```\s*$")


class GraderVariant(StrictModel):
    system: str = ""                      # system message ("" = none)
    user: str                             # with {conversation} and {rubric_item}


class GraderTemplate(CallTemplate):
    """``prompts/healthbench_grader.yaml`` (or a user's YAML of the same shape)."""

    variants: dict[str, GraderVariant]    # language -> prompt


@lru_cache(maxsize=8)
def load_grader_template(ref: str | None = None) -> GraderTemplate:
    """The built-in grader template, or a YAML file of the same shape (``ref`` ends in .yaml)."""
    path = Path(ref) if ref and ref.endswith((".yaml", ".yml")) else GRADER_TEMPLATE
    return load_config(path, GraderTemplate)


def neutralise(text: str) -> str:
    """``text`` with lines that imitate a section heading or a conversation turn defused."""
    return _ROLE.sub(r"\1：", _HEADING.sub(r"\1＃", text))


def format_points(points: float) -> str:
    """5.0 -> "5", 2.5 -> "2.5" (HealthBench writes the item as ``[5] criterion``)."""
    return str(int(points)) if float(points).is_integer() else f"{points:g}"


def grader_messages(template: GraderTemplate, conversation: list[dict], criterion: str,
                    points: float, language: str) -> list[dict]:
    """The grading request for one criterion (``conversation`` ends with the graded response)."""
    variant = template.variants.get(language) or next(iter(template.variants.values()))
    convo = "\n\n".join(f"{m['role']}: {neutralise(m['content'])}" for m in conversation)
    item = f"[{format_points(points)}] {neutralise(criterion)}"
    messages = [{"role": "system", "content": variant.system}] if variant.system else []
    return messages + [{"role": "user", "content": variant.user.format(conversation=convo,
                                                                          rubric_item=item)}]


def closing_json(text: str) -> tuple[dict, tuple[int, int]] | None:
    """The JSON object that ends ``text`` (a trailing code fence aside) and its span."""
    fence = _FENCE.search(text)
    end = fence.start() if fence else len(text.rstrip())
    body = text[:end]
    if not body.endswith("}"):
        return None
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", body):
        try:
            value, stop = decoder.raw_decode(body, m.start())
        except json.JSONDecodeError:
            continue
        if stop == len(body) and isinstance(value, dict):
            return value, (m.start(), stop)
    return None


def parse_grader_reply(text: str | None, finish_reason: str | None = None) -> Parsed:
    """Read a grader reply (rules in the module docstring)."""
    if text is None or not text.strip():
        return Parsed("parse_error", error="empty completion")
    if finish_reason == "length":
        return Parsed("parse_error", error="truncated: the reply hit max_tokens before it ended")
    found = closing_json(text)
    if found is None:
        if looks_like_refusal(text):
            return Parsed("refused", error="the grader declined: " + text.strip()[:160])
        tail = text.rstrip()[-80:]
        return Parsed("parse_error", error=f"the reply does not end with a JSON object; it ends {tail!r}")
    value, span = found
    met = value.get("criteria_met")
    if not isinstance(met, bool):
        return Parsed("parse_error", error=f"criteria_met must be true or false, got {met!r}")
    value = 1.0 if met else 0.0
    return Parsed("ok", scores={"A": value}, details={"criteria_met": value}, span=span,
                  statement=text[span[0]:span[1]])


def explanation_of(text: str | None) -> str | None:
    """The ``explanation`` of an ok reply (None when it gave none)."""
    found = closing_json(text or "")
    value = found[0].get("explanation") if found else None
    return value if isinstance(value, str) else None
