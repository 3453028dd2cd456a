"""Find the world's condition and department names in a text.

Used by tests of the generator and available to judges::

    find_mentions("考虑偏头痛，建议神经内科就诊。", "zh")
    # [Mention("condition", "migraine", "偏头痛", 2), Mention("department", "neurology", "神经内科", 8)]

Names are matched longest first at each position (one regex alternation sorted by length), so
even if a caller's extra names overlap ("鼻炎" inside "过敏性鼻炎") the longer name wins. English
matching ignores case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from data_recipes.synthetic.world import condition_names, department_names


@dataclass(frozen=True)
class Mention:
    kind: str          # "condition" | "department"
    key: str           # condition or department key
    name: str          # the name as written in the lexicon
    start: int         # character offset in the text


def longest_first_pattern(names) -> re.Pattern:
    """One case-insensitive regex matching any of ``names``, preferring the longest at a position."""
    return re.compile("|".join(re.escape(n) for n in sorted(set(names), key=len, reverse=True)), re.IGNORECASE)


@lru_cache(maxsize=8)
def _matcher(lang: str) -> tuple[re.Pattern, dict[str, tuple[str, str, str]]]:
    table: dict[str, tuple[str, str, str]] = {}
    for name, key in condition_names(lang).items():
        table[name.lower()] = ("condition", key, name)
    for name, key in department_names(lang).items():
        table[name.lower()] = ("department", key, name)
    return longest_first_pattern(table), table


def find_mentions(text: str, lang: str) -> list[Mention]:
    """Every condition/department name in ``text`` (``lang`` "zh" or "en"), in text order."""
    pattern, table = _matcher(lang)
    found = []
    for match in pattern.finditer(text):
        kind, key, name = table[match.group(0).lower()]
        found.append(Mention(kind, key, name, match.start()))
    return found


def mentioned_conditions(text: str, lang: str) -> list[str]:
    """Keys of the conditions named in ``text``, first mention order, without repeats."""
    return list(dict.fromkeys(m.key for m in find_mentions(text, lang) if m.kind == "condition"))


def mentioned_departments(text: str, lang: str) -> list[str]:
    """Keys of the departments named in ``text``, first mention order, without repeats."""
    return list(dict.fromkeys(m.key for m in find_mentions(text, lang) if m.kind == "department"))
