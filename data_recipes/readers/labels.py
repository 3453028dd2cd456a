"""Labelled fields of MedDialog descriptions and diagnoses.

A MedDialog-CN description is a list of labels each followed by its value on the next line(s)::

    疾病：
    偏头痛
    病情描述（发病时间、主要症状、就诊医院等）：
    ...

(the value may also follow the label on the same line). The English corpus uses free text or our
English labels (``Condition:``, ``Description:``, ...). A diagnosis section reads
``病情摘要及初步印象：`` / ``疾病诊断：`` / ``Summary and initial impression:`` followed by the
diagnosis.
"""

from __future__ import annotations

import re

EN_LABELS = ("Condition", "Description", "Help wanted", "Duration", "Medication", "Allergies",
             "Past history", "Pregnancy", "Summary and initial impression", "Suggestions", "Diagnosis")
# A label line: 2-12 Han characters with an optional parenthesised note, or a known English
# label; then a colon and maybe the value. Matched against one stripped line at a time.
_LABEL = re.compile(
    r"(?:([\u4e00-\u9fff]{2,12})(?:（[^）]*）|\([^)]*\))?|(" + "|".join(EN_LABELS) + r"))[ \t]*[:：][ \t]*(.*)",
    re.IGNORECASE,
)
DIAGNOSIS_LABELS = ("病情摘要及初步印象", "疾病诊断", "初步诊断", "初步判断", "诊断",
                    "summary and initial impression", "diagnosis")


_AROUND_NEWLINES = re.compile(r"[ \t\r]*\n[ \t\r\n]*")


def clean_lines(text: str) -> str:
    """Strip every line and drop blank ones (one regex pass; one-line text costs one strip)."""
    text = text.strip()
    if "\n" not in text:
        return text
    messy = "\n\n" in text or " \n" in text or "\n " in text or "\t" in text or "\r" in text
    return _AROUND_NEWLINES.sub("\n", text) if messy else text


def parse_labelled(text: str) -> dict[str, str]:
    """Label -> value (its lines stripped, blank ones dropped); English labels lower-cased; the
    first occurrence of a label wins."""
    fields: dict[str, str] = {}
    current, value = None, []
    for line in text.split("\n"):
        line = line.strip()
        match = _LABEL.match(line) if ("：" in line or ":" in line) else None
        if match:
            if current is not None:
                fields[current] = "\n".join(value)
            label = match.group(1) or match.group(2).lower()
            current = None if label in fields else label
            value = [match.group(3)] if match.group(3) else []
        elif current is not None and line:
            value.append(line)
    if current is not None:
        fields[current] = "\n".join(value)
    return fields


def diagnosis_from(fields: dict[str, str]) -> str | None:
    """The diagnosis named in parsed diagnosis fields (its first line), if any."""
    for label in DIAGNOSIS_LABELS:
        value = fields.get(label, "")
        if value:
            return value.split("\n", 1)[0]
    return None
