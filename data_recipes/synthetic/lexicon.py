"""Find condition and department names in a text: the one lexicon of the project.

Two views of the same matcher (:func:`find_spans`):

* the world's names per language, for tests of the generator and for tooling::

    find_mentions("考虑偏头痛，建议神经内科就诊。", "zh")
    # [Mention("condition", "migraine", "偏头痛", 2), Mention("department", "neurology", "神经内科", 8)]

* the judge's lexicon (:func:`world_lexicon`): every zh and en name of the world's conditions
  and departments plus common department names (``data/common_departments.yaml``), so that a
  reference written outside the world ("请去消化内科看看") is still understood::

    world_lexicon().find_conditions("考虑紧张型头痛")    # ["tension_headache"]

Matching: case-insensitive; leftmost first and, at one position, longest first, without overlaps
("紧张型头痛" is found as itself, not as "头痛"); ASCII names only as whole words ("ent" is not
in "patient"), other names as substrings. Each name that can occur in the text is looked for with
a plain substring search (``str.find``) instead of one regex alternation of every name.

The judges package imports this module (docs/CONTRACTS.md: judges may import data_recipes.synthetic).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from data_recipes.synthetic.schema import Condition, Department
from data_recipes.synthetic.tables import load_common_departments

_LETTER = re.compile(r"[a-z]")       # texts and names are lower-cased before a search


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


def _is_word_char(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


def find_spans(names: NameSet, text: str) -> list[tuple[int, str]]:
    """``(start, lower-cased name)`` of every name found in ``text``, in text order: leftmost
    first and, at one position, longest first, without overlaps (what a longest-first regex
    alternation finds). ASCII names must stand as whole words."""
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
    spans = []
    covered = 0
    for start, neg_len, name in hits:
        if start >= covered:
            covered = start - neg_len
            spans.append((start, name))
    return spans


def find_names(names: NameSet, text: str) -> list[str]:
    """Keys of the names found in ``text`` (:func:`find_spans`), in order of first mention."""
    return list(dict.fromkeys(names.keys[name] for _, name in find_spans(names, text)))


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


def build_lexicon(conditions: tuple[Condition, ...] = (), departments: dict[str, Department] | None = None,
                  common: bool = True) -> Lexicon:
    """A lexicon of the names (every language) of ``conditions`` and ``departments``, plus the
    common department names when ``common`` (an entry sharing a name with a department is an
    alias list of that department)."""
    cond_names: dict[str, str] = {}
    cond_dept: dict[str, str] = {}
    for c in conditions:
        cond_dept[c.key] = c.department
        for lang in c.name:
            for name in c.names(lang):
                cond_names[name.lower()] = c.key
    dept_names: dict[str, str] = {}
    for key, dept in (departments or {}).items():
        for name in dept.name.values():
            dept_names[name.lower()] = key
    for entry in load_common_departments() if common else ():
        names = [n.lower() for n in (*entry.zh, *entry.en)]
        key = next((dept_names[n] for n in names if n in dept_names), entry.key)
        for name in names:
            dept_names.setdefault(name, key)
    return Lexicon(NameSet.of(cond_names), NameSet.of(dept_names), cond_dept)


@lru_cache(maxsize=1)
def world_lexicon() -> Lexicon:
    """The judge's lexicon: the synthetic world's names and the common department names."""
    from data_recipes.synthetic.world import CONDITIONS, DEPARTMENTS

    return build_lexicon(CONDITIONS, DEPARTMENTS)


def world_conditions() -> dict[str, Condition]:
    """Condition key -> Condition of the world (``world.CONDITIONS_BY_KEY``)."""
    from data_recipes.synthetic.world import CONDITIONS_BY_KEY

    return CONDITIONS_BY_KEY


# ---------------------------------------------------------------------------------------------
# Mentions of the world's names in one language
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mention:
    kind: str          # "condition" | "department"
    key: str           # condition or department key
    name: str          # the name as written in the world's table
    start: int         # character offset in the text


@lru_cache(maxsize=8)
def _world_names(lang: str) -> tuple[NameSet, dict[str, tuple[str, str, str]]]:
    """The world's names in ``lang`` (no common names) and lower-cased name -> (kind, key, name)."""
    from data_recipes.synthetic.world import condition_names, department_names

    table: dict[str, tuple[str, str, str]] = {}
    for name, key in condition_names(lang).items():
        table[name.lower()] = ("condition", key, name)
    for name, key in department_names(lang).items():
        table[name.lower()] = ("department", key, name)
    return NameSet.of({name: name for name in table}), table


def find_mentions(text: str, lang: str) -> list[Mention]:
    """Every world condition/department name of ``lang`` ("zh" or "en") in ``text``, in text order."""
    names, table = _world_names(lang)
    return [Mention(*table[name], start) for start, name in find_spans(names, text)]


def mentioned_conditions(text: str, lang: str) -> list[str]:
    """Keys of the conditions named in ``text``, first mention order, without repeats."""
    return list(dict.fromkeys(m.key for m in find_mentions(text, lang) if m.kind == "condition"))


def mentioned_departments(text: str, lang: str) -> list[str]:
    """Keys of the departments named in ``text``, first mention order, without repeats."""
    return list(dict.fromkeys(m.key for m in find_mentions(text, lang) if m.kind == "department"))
