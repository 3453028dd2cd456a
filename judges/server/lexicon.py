"""The rubric's lexicon: condition and department names, matched longest first.

Names come from the synthetic medical world (``data_recipes.synthetic.world``: every condition's
and department's zh and en name) plus a built-in list of common department names, so that a
reference written outside the world ("请去消化内科看看") is still understood. English names match
case-insensitively on word boundaries; Chinese names match as substrings. Matching is
longest-first and non-overlapping: "紧张型头痛" is found as itself, not as "头痛".

The world is the only thing the judges package imports from data_recipes (see CONTRACTS.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_LETTER = re.compile(r"[a-z]")       # texts and names are lower-cased before a search

# Common departments beyond the world's own: (key, zh names, en names). The emergency
# department is left out on purpose: "go to the emergency department" is a red-flag warning,
# not a claim about which department the condition belongs to.
COMMON_DEPARTMENTS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("internal_medicine", ("内科", "普通内科"), ("internal medicine", "general medicine")),
    ("surgery", ("外科", "普通外科", "普外科"), ("general surgery", "surgery")),
    ("pediatrics", ("儿科", "小儿科"), ("pediatrics", "paediatrics")),
    ("gynecology", ("妇科", "妇产科"), ("gynecology", "gynaecology", "obstetrics and gynecology")),
    ("obstetrics", ("产科",), ("obstetrics",)),
    ("dermatology", ("皮肤科",), ("dermatology",)),
    ("neurology", ("神经内科",), ("neurology",)),
    ("neurosurgery", ("神经外科",), ("neurosurgery",)),
    ("cardiology", ("心内科", "心血管内科"), ("cardiology",)),
    ("gastroenterology", ("消化内科", "消化科"), ("gastroenterology",)),
    ("respiratory", ("呼吸内科", "呼吸科"), ("respiratory medicine", "pulmonology")),
    ("endocrinology", ("内分泌科",), ("endocrinology",)),
    ("nephrology", ("肾内科",), ("nephrology",)),
    ("hematology", ("血液科",), ("hematology", "haematology")),
    ("rheumatology", ("风湿免疫科",), ("rheumatology",)),
    ("infectious_diseases", ("感染科", "传染科"), ("infectious diseases",)),
    ("orthopedics", ("骨科",), ("orthopedics", "orthopaedics")),
    ("urology", ("泌尿外科",), ("urology",)),
    ("ophthalmology", ("眼科",), ("ophthalmology",)),
    ("ent", ("耳鼻喉科", "耳鼻咽喉科"), ("ent", "otolaryngology", "ear, nose and throat")),
    ("stomatology", ("口腔科",), ("dentistry", "stomatology")),
    ("psychiatry", ("精神科", "心理科"), ("psychiatry", "mental health")),
    ("oncology", ("肿瘤科",), ("oncology",)),
    ("andrology", ("男科",), ("andrology",)),
)


@dataclass(frozen=True)
class NameSet:
    """Names (lower-cased) -> keys, grouped by what a text must contain to hold them, so a
    search skips the names that cannot occur: an English text holds no Chinese name, and a
    Chinese text without a Latin letter holds no English name (half the searches saved)."""

    keys: dict[str, str]                  # lower-cased name -> key
    lettered: tuple[str, ...]             # ASCII names with a Latin letter: need one in the text
    wide: tuple[str, ...]                 # names with a non-ASCII character: need one, too
    other: tuple[str, ...]                # ASCII names without letters: always searched

    @classmethod
    def of(cls, keys: dict[str, str]) -> "NameSet":
        lettered = tuple(n for n in keys if n.isascii() and _LETTER.search(n))
        wide = tuple(n for n in keys if not n.isascii())
        other = tuple(n for n in keys if n.isascii() and not _LETTER.search(n))
        return cls(keys, lettered, wide, other)

    def candidates(self, low: str) -> tuple[str, ...]:
        """The names that can occur in the lower-cased text ``low``."""
        out = self.other
        if _LETTER.search(low):
            out = out + self.lettered
        if not low.isascii():
            out = out + self.wide
        return out


@dataclass(frozen=True)
class Lexicon:
    """Name matchers. ``find_conditions(text)`` -> condition keys in order of first mention."""

    conditions: NameSet
    departments: NameSet
    condition_department: dict[str, str]  # condition key -> department key

    @property
    def condition_names(self) -> dict[str, str]:
        """Lower-cased condition name -> condition key."""
        return self.conditions.keys

    @property
    def department_names(self) -> dict[str, str]:
        """Lower-cased department name -> department key."""
        return self.departments.keys

    def find_conditions(self, text: str) -> list[str]:
        return find_names(self.conditions, text)

    def find_departments(self, text: str) -> list[str]:
        return find_names(self.departments, text)


def _is_word_char(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


def find_names(names: NameSet, text: str) -> list[str]:
    """Keys of the names found in ``text``, leftmost first and, at one position, longest first
    (what a longest-first regex alternation finds, without its cost: each name that can occur
    is looked for with a plain substring search). ASCII names must stand as whole words."""
    low = text.lower()
    hits = []
    for name in names.candidates(low):
        start = low.find(name)
        while start != -1:
            end = start + len(name)
            if not name.isascii() or ((start == 0 or not _is_word_char(low[start - 1]))
                                      and (end == len(low) or not _is_word_char(low[end]))):
                hits.append((start, -len(name), name))
            start = low.find(name, start + 1)
    hits.sort()
    keys: list[str] = []
    covered = 0
    for start, neg_len, name in hits:
        if start < covered:
            continue
        covered = start - neg_len
        if names.keys[name] not in keys:
            keys.append(names.keys[name])
    return keys


def build_lexicon(conditions=(), departments=None) -> Lexicon:
    """A lexicon from world conditions/departments (schema types) and the common departments."""
    cond_names: dict[str, str] = {}
    cond_dept: dict[str, str] = {}
    for c in conditions:
        cond_dept[c.key] = c.department
        for name in c.name.values():
            cond_names[name.lower()] = c.key
    dept_names: dict[str, str] = {}
    for key, dept in (departments or {}).items():
        for name in dept.name.values():
            dept_names[name.lower()] = key
    for key, zh, en in COMMON_DEPARTMENTS:
        names = [n.lower() for n in (*zh, *en)]
        # an entry sharing a name with a world department is an alias list of that department
        key = next((dept_names[n] for n in names if n in dept_names), key)
        for name in names:
            dept_names.setdefault(name, key)
    return Lexicon(NameSet.of(cond_names), NameSet.of(dept_names), cond_dept)


@lru_cache(maxsize=1)
def world_lexicon() -> Lexicon:
    """The lexicon of the synthetic world (falls back to departments only if it is absent)."""
    try:
        from data_recipes.synthetic.world import CONDITIONS, DEPARTMENTS
    except ImportError:
        return build_lexicon()
    return build_lexicon(CONDITIONS, DEPARTMENTS)


@lru_cache(maxsize=1)
def world_conditions() -> dict:
    """Condition key -> Condition of the world ({} when the world module is absent)."""
    try:
        from data_recipes.synthetic.world import CONDITIONS
    except ImportError:
        return {}
    return {c.key: c for c in CONDITIONS}
