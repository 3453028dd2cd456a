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
# The same, found anywhere in a text: after a newline and blanks, the value part up to the end of
# that line (the parenthesised note cannot span lines). Matched in "\n" + text: a literal first
# character lets the regex engine skip to candidates ("^" with MULTILINE tries every position).
_LABEL_LINE = re.compile(
    r"\n[^\S\n]*(?:([\u4e00-\u9fff]{2,12})(?:（[^）\n]*）|\([^)\n]*\))?|(" + "|".join(EN_LABELS)
    + r"))[ \t]*[:：][ \t]*(.*)",
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
    first occurrence of a label wins. Text before the first label is ignored."""
    fields: dict[str, str] = {}
    current, first, start = None, "", 0
    text = "\n" + text
    for match in _LABEL_LINE.finditer(text):
        if current is not None:
            fields[current] = _value(first, text[start:match.start()])
        label = match.group(1) or match.group(2).lower()
        current = None if label in fields else label
        first, start = match.group(3).rstrip(), match.end()
    if current is not None:
        fields[current] = _value(first, text[start:])
    return fields


def _value(first: str, rest: str) -> str:
    """A label's value: the text after its colon, then the following lines, stripped, blank ones dropped."""
    rest = rest.strip()
    if "\n" not in rest:                      # the common case: one line of value, or none
        return first + "\n" + rest if first and rest else first or rest
    lines = [first] if first else []
    lines += [line.strip() for line in rest.split("\n") if line and not line.isspace()]
    return "\n".join(lines)


_FIRST_DIAGNOSIS_LINE = DIAGNOSIS_LABELS[0] + "：\n"


def diagnosis_of(text: str) -> str | None:
    """``diagnosis_from(parse_labelled(text))``, without parsing every label in the common
    MedDialog-CN layout: the first (preferred) diagnosis label alone on the first line, the
    diagnosis on the next line (a plain line, not itself a label)."""
    if text.startswith(_FIRST_DIAGNOSIS_LINE):
        begin = len(_FIRST_DIAGNOSIS_LINE)
        end = text.find("\n", begin)
        line = text[begin:] if end < 0 else text[begin:end]
        # a label line has a colon: most lines are told apart without the regex
        if line and line == line.strip() and not (("：" in line or ":" in line) and _LABEL_LINE.match("\n" + line)):
            return line
    return diagnosis_from(parse_labelled(text))


def diagnosis_from(fields: dict[str, str]) -> str | None:
    """The diagnosis named in parsed diagnosis fields (its first line), if any."""
    for label in DIAGNOSIS_LABELS:
        value = fields.get(label, "")
        if value:
            return value.split("\n", 1)[0]
    return None
