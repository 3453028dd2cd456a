"""One rule per clinical idea, for every package: does a reply ask the patient something, is it
hedged, which condition does it commit to, and does it name the right condition or department.

    asks_question("头痛的时候恶心吗")                        # True
    committed_conditions("考虑偏头痛。会是紧张型头痛吗？")      # ["migraine"]: a question commits to nothing
    diagnosis_outcome("可能是偏头痛，也可能是紧张型头痛。", "migraine")   # "hedged"
    department_outcome("建议神经内科就诊。", "neurology")                 # "right"

The rules (phrase lists: ``data/clinical_phrases.yaml``, schema :class:`ClinicalPhrases`):

* **sentences** end at 。！？!?；; or a line break, and at "." when no digit follows ("38.5" stays);
  a sentence is a **question** when it ends with a question mark, or (Chinese) with 吗 / 呢
  before its full stop. The whole sentence is the question: "会是偏头痛还是紧张型头痛？" names
  two conditions without committing to either.
* **asks**: the text holds a question sentence or an inquiry phrase ("请问", "can you tell me").
* **hedges**: the text holds a hedging phrase ("可能是", "might be"); commitments ("考虑X",
  "X可能性大", "most likely X") are not hedges.
* **organised**: at least two of the text's lines are list items, numbered or bulleted ("1. 多喝水",
  "2、休息", "(3) rest", "- rest"): the distilled style's layout. A "1." inside a line is not one.
* **committed conditions**: the conditions named (the project's one matcher,
  :mod:`data_recipes.synthetic.lexicon`) in the text's sentences that are not questions, in
  order of first mention.
* **naming outcome** of a text against a truth: ``right`` when it names the truth and nothing
  else of its kind (and, for a diagnosis, no hedging phrase); ``hedged`` when it names the truth
  alongside another (or with a hedging phrase): never counted as right; ``wrong`` when it names
  only others; ``none`` when it names none. A diagnosis looks at the committed conditions; a
  department at every department named (a referral phrased as a question is still one).

``own_names`` are a case's own names for its truth (every zh/en name and synonym): they count
as the truth even when the lexicon does not know them (a real case's department "康复医学部").

Callers that score differently layer on top and say so: the local rubric judge gives partial
credit by outcome (judges/server/rubric.py), the rubric grader's criteria read "names the
department" leniently (judges/server/criteria.py).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field

from data_recipes.synthetic.lexicon import NameSet, find_names, world_lexicon
from medalign.config import StrictModel

PHRASES_FILE = Path(__file__).resolve().parent / "data" / "clinical_phrases.yaml"
Outcome = Literal["right", "hedged", "wrong", "none"]
OUTCOMES: tuple[Outcome, ...] = ("right", "hedged", "wrong", "none")
TRUTH = "\0truth"                                   # the key a case's own names map to
_SENTENCE = re.compile(r"(?:[^。！？!?；;\n.]|\.(?=\d))+(?:[。！？!?；;\n.]+|$)")
_CLOSERS = " \t\r\n\"'”’）)」』]】"


class Phrases(StrictModel):
    zh: list[str] = Field(default_factory=list)      # Chinese phrases
    en: list[str] = Field(default_factory=list)      # English phrases


class ClinicalPhrases(StrictModel):
    """``data/clinical_phrases.yaml``."""

    version: int
    question_marks: list[str] = Field(min_length=1)          # a sentence ending in one asks
    question_particles_zh: list[str] = Field(default_factory=list)  # 吗 / 呢 at a sentence's end ask
    hedges: Phrases                                          # wording that declines to commit
    inquiries: Phrases                                       # asking without a question mark
    list_bullets: list[str] = Field(default_factory=list)    # a line starting with one is a list item
    list_number_closers: list[str] = Field(default_factory=list)  # "1." "2、" "(3)": the mark after a number


@lru_cache(maxsize=1)
def clinical_phrases() -> ClinicalPhrases:
    from data_recipes.synthetic.tables import load_table

    return load_table(PHRASES_FILE, ClinicalPhrases)


@lru_cache(maxsize=1)
def _lists() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(question marks, zh particles, hedges, inquiries), lower-cased, both languages."""
    p = clinical_phrases()
    return (tuple(p.question_marks), tuple(p.question_particles_zh),
            tuple(x.lower() for x in (*p.hedges.zh, *p.hedges.en)),
            tuple(x.lower() for x in (*p.inquiries.zh, *p.inquiries.en)))


def sentences(text: str) -> list[str]:
    """The text's sentences (module doc), blank ones left out."""
    return [s for s in _SENTENCE.findall(text or "") if s.strip()]


def is_question(sentence: str) -> bool:
    """A sentence ending with a question mark, or (Chinese) with 吗 / 呢 before its full stop."""
    marks, particles, _, _ = _lists()
    body = sentence.rstrip(_CLOSERS)
    if body.endswith(marks):
        return True
    body = body.rstrip("。！!；;.\n").rstrip(_CLOSERS)
    return bool(particles) and body.endswith(tuple(particles))


def split_questions(text: str) -> tuple[list[str], list[str]]:
    """(statements, questions): the text's sentences, split by :func:`is_question`."""
    statements, questions = [], []
    for s in sentences(text):
        (questions if is_question(s) else statements).append(s)
    return statements, questions


def asks_question(text: str) -> bool:
    """The text asks the patient something: a question sentence or an inquiry phrase."""
    low = (text or "").lower()
    return any(map(is_question, sentences(text))) or any(p in low for p in _lists()[3])


def hedges(text: str) -> bool:
    """The text holds wording that declines to commit to a diagnosis."""
    low = (text or "").lower()
    return any(h in low for h in _lists()[2])


@lru_cache(maxsize=1)
def _list_item() -> re.Pattern:
    """A line opening with a bullet or a (bracketed) 1-2 digit number and its closer."""
    p = clinical_phrases()
    bullets = "|".join(re.escape(b) for b in p.list_bullets)
    closers = "|".join(re.escape(c) for c in p.list_number_closers)
    numbered = r"[(（]\d{1,2}[)）]" + (rf"|\d{{1,2}}(?:{closers})" if closers else "")
    return re.compile(rf"^[ \t\u3000]*(?:{numbered}{'|' + bullets if bullets else ''})(?!\d)")


def list_items(text: str) -> int:
    """How many of the text's lines are list items (``list_bullets`` / ``list_number_closers``)."""
    return sum(bool(_list_item().match(line)) for line in (text or "").splitlines())


def is_organised(text: str) -> bool:
    """The reply lays its content out as a list: at least two list items (module doc)."""
    return list_items(text) >= 2


def _statements_text(text: str) -> str:
    return "\n".join(split_questions(text)[0])


def committed_conditions(text: str, names: NameSet | None = None) -> list[str]:
    """Condition keys named outside the text's questions, in order of first mention
    (``names``: another name set than the world's conditions, e.g. with target conditions)."""
    return find_names(names or world_lexicon().conditions, _statements_text(text))


def naming_outcome(found: list[str], own: set[str], hedged: bool = False) -> Outcome:
    """right | hedged | wrong | none for the keys ``found`` in a text against the truth ``own``."""
    hits = [k for k in found if k in own]
    if not hits:
        return "wrong" if found else "none"
    return "hedged" if hedged or len(hits) < len(found) else "right"


@lru_cache(maxsize=4096)
def _world_names_with(kind: str, own_names: tuple[str, ...]) -> NameSet:
    """The world's condition or department names with a case's own names mapped to TRUTH."""
    lex = world_lexicon()
    base = lex.condition_names if kind == "condition" else lex.department_names
    return NameSet.of({**base, **{n.lower(): TRUTH for n in own_names if n.strip()}})


def _truth_keys(key: str | None) -> set[str]:
    return {TRUTH} | ({key} if key else set())


def diagnosis_outcome(text: str, condition: str | None, own_names: list[str] | tuple[str, ...] = (),
                      names: NameSet | None = None) -> Outcome:
    """Does ``text`` commit to ``condition`` (module doc)? ``names``: a name set other than the
    world's conditions (then ``own_names`` are added to it uncached)."""
    own = tuple(own_names)
    if names is None:
        names = _world_names_with("condition", own)
    elif own:
        names = NameSet.of({**names.keys, **{n.lower(): TRUTH for n in own if n.strip()}})
    found = find_names(names, _statements_text(text))
    return naming_outcome(found, _truth_keys(condition), hedges(text))


def department_outcome(text: str, department: str | None,
                       own_names: list[str] | tuple[str, ...] = ()) -> Outcome:
    """Does ``text`` name ``department`` and no other (module doc)?"""
    found = find_names(_world_names_with("department", tuple(own_names)), text or "")
    return naming_outcome(found, _truth_keys(department))


__all__ = ["ClinicalPhrases", "Outcome", "OUTCOMES", "clinical_phrases", "sentences", "is_question",
           "split_questions", "asks_question", "hedges", "list_items", "is_organised", "committed_conditions", "naming_outcome",
           "diagnosis_outcome", "department_outcome"]
