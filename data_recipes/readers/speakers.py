"""Speaker tags and role names of the public formats, normalised to user/assistant/system.

* MedDialog: ``病人：``/``医生：`` (full-width or ASCII colon; ``患者``/``大夫`` accepted too),
  ``Patient:``/``Doctor:`` (any case).
* HuatuoGPT sft: ``问：``/``答：``; for English we accept ``Q:``/``A:``.
* ShareGPT ``from`` values and OpenAI ``role`` values.
"""

from __future__ import annotations

import re

from data_recipes.readers.fields import RecordError
from data_recipes.records import Turn

MEDDIALOG_ROLES = {"病人": "user", "患者": "user", "医生": "assistant", "大夫": "assistant",
                   "patient": "user", "doctor": "assistant"}
# A known tag at the start of a line, the rest of the line (possibly empty) in group 2.
MEDDIALOG_TAG = re.compile(r"^\s*(病人|患者|医生|大夫|patient|doctor)\s*[:：]\s*(.*)$",
                           re.IGNORECASE | re.DOTALL)
# Other participants' tags. A line holding only one of these and a colon is an unknown speaker tag.
# An explicit list, because short headings alone on a line ("建议：", "Investigations:") are
# common inside real doctors' utterances and must stay part of them.
OTHER_SPEAKERS = ("护士", "家属", "患者家属", "病人家属", "助理", "医助", "医生助理", "客服", "系统", "药师",
                  "助手", "机器人", "nurse", "assistant", "user", "system", "bot", "pharmacist", "relative",
                  "family", "guardian", "parent", "staff", "human")

HUATUO_TAG = re.compile(r"^\s*(问|答|Q|A)\s*[:：]\s*", re.DOTALL)
HUATUO_ROLES = {"问": "user", "Q": "user", "答": "assistant", "A": "assistant"}

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "bard": "assistant", "bing": "assistant", "model": "assistant",
                  "system": "system"}
OPENAI_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def tag_language(tag: str) -> str:
    """"zh" for a Chinese tag, "en" otherwise."""
    return "zh" if re.match(r"[\u4e00-\u9fff]", tag) else "en"


def split_meddialog_utterance(text: str, where: str) -> tuple[Turn, str]:
    """``"病人：头痛三天"`` -> (Turn("user", "头痛三天"), "zh"); errors name ``where``."""
    match = MEDDIALOG_TAG.match(text)
    if not match:
        head = text.strip()[:20]
        raise RecordError(f"unknown speaker tag in {where}: {head!r}")
    content = match.group(2).strip()
    if not content:
        raise RecordError(f"empty utterance in {where}")
    tag = match.group(1)
    return Turn(MEDDIALOG_ROLES[tag.lower()], content), tag_language(tag)


def split_huatuo_turn(text: str, where: str) -> Turn:
    """``"问：..."`` -> Turn("user", ...); a string without 问/答 (or Q/A) is an unknown tag."""
    match = HUATUO_TAG.match(text)
    if not match:
        head = text.strip()[:20]
        raise RecordError(f"unknown speaker tag in {where}: expected 问：/答： (or Q:/A:), got {head!r}")
    content = text[match.end():].strip()
    if not content:
        raise RecordError(f"empty utterance in {where}")
    return Turn(HUATUO_ROLES[match.group(1)], content)


def require_dialogue_roles(turns: list[Turn], what: str = "dialogue") -> None:
    """A usable dialogue has at least one patient (user) turn and one doctor (assistant) turn."""
    roles = {t.role for t in turns}
    if "assistant" not in roles:
        raise RecordError(f"{what} has no doctor/assistant turn")
    if "user" not in roles:
        raise RecordError(f"{what} has no patient/user turn")
