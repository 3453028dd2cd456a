"""Types of the synthetic "medical world" behind the demo corpus.

The world (``data_recipes/synthetic/world.py``) is a knowledge table of conditions, each tied to
a department, in Chinese and English. The corpus generator writes consultations from it, and the
local judge's rubric uses its names (conditions, departments) as a lexicon. Every text field is
keyed by language: ``{"zh": ..., "en": ...}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Lang = str  # "zh" | "en"


@dataclass(frozen=True)
class Department:
    key: str                              # "neurology"
    name: dict[Lang, str]                 # {"zh": "神经内科", "en": "neurology"}


@dataclass(frozen=True)
class Condition:
    key: str                              # "migraine"
    department: str                       # a Department.key
    name: dict[Lang, str]                 # {"zh": "偏头痛", "en": "migraine"}
    symptoms: dict[Lang, tuple[str, ...]]           # what a patient reports
    onset: dict[Lang, tuple[str, ...]]              # onset and duration cues ("三天前开始", "for two weeks")
    advice: dict[Lang, tuple[str, ...]]             # what a good answer recommends
    red_flags: dict[Lang, tuple[str, ...]]          # signs that need urgent care
    follow_up_questions: dict[Lang, tuple[str, ...]]  # what a doctor asks when information is missing
    differentials: tuple[str, ...] = ()   # keys of conditions that present alike
    synonyms: dict[Lang, tuple[str, ...]] = field(default_factory=dict)  # other names ("偏头疼", "hives")

    def names(self, lang: str) -> tuple[str, ...]:
        """The condition's name and its synonyms in ``lang``."""
        return (self.name[lang], *self.synonyms.get(lang, ()))
