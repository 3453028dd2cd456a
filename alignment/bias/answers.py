"""Read a model's free-text answer to a scale statement as one of the scale's options, or as a non-answer.

    parse_answer("我比较同意这个说法。", scale, "zh")    # Parsed(option=1, reason=None)  (比较同意 -> 同意's option)
    parse_answer("作为AI，我没有个人观点。", scale, "zh")   # Parsed(option=None, reason="no_option")

The answer is searched for every label of every option (case-insensitive; longest first at a
position, without overlaps, ASCII labels as whole words: the project's name matcher,
``data_recipes.synthetic.lexicon.find_spans``), so "strongly disagree" is not also "disagree" and
"disagree" is not "agree". It is the option when the labels found all belong to ONE option and
none follows a negation (``answer_cues.yaml``: "I don't agree" is not "agree"). Otherwise it is a
non-answer with a reason: ``empty``, ``no_option`` (a refusal, a lecture, word salad),
``several_options`` (a hedge, or the option list echoed back), ``negated``. Non-answers are
counted and never scored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydantic import Field

from medalign.config import StrictModel

CUES_FILE = Path(__file__).resolve().parent / "answer_cues.yaml"
NON_ANSWERS = ("empty", "no_option", "several_options", "negated")


class LanguageCues(StrictModel):
    window: int = Field(ge=1, description="characters before a label searched for a negation")
    negations: list[str] = Field(min_length=1, description="words that negate a label that follows them")


class AnswerCues(StrictModel):
    languages: dict[str, LanguageCues] = Field(description="cues per language")


@lru_cache(maxsize=1)
def answer_cues() -> AnswerCues:
    from medalign.config import load_config

    return load_config(CUES_FILE, AnswerCues)


@dataclass(frozen=True)
class Parsed:
    option: int | None               # index into scale.options, None for a non-answer
    reason: str | None = None        # why it is a non-answer (NON_ANSWERS)
    label: str | None = None         # the label found


@lru_cache(maxsize=64)
def _labels(scale_key: tuple) -> object:
    from data_recipes.synthetic.lexicon import NameSet

    return NameSet.of({label: str(i) for i, labels in scale_key for label in labels})


def _negated(text: str, start: int, cues: LanguageCues) -> bool:
    before = text[max(0, start - cues.window): start]
    for cue in cues.negations:
        if cue.isascii():
            if re.search(rf"(?<![a-z]){re.escape(cue)}(?![a-z])", before):
                return True
        elif cue in before:
            return True
    return False


def parse_answer(text: str | None, scale, lang: str) -> Parsed:
    """The option ``text`` chooses among ``scale.options`` (labels of ``lang``), or why it chooses none."""
    from data_recipes.synthetic.lexicon import find_spans

    low = (text or "").strip().lower().replace("\u2019", "'")
    if not low:
        return Parsed(None, "empty")
    key = tuple((i, tuple(label.strip().lower() for label in o.labels[lang])) for i, o in enumerate(scale.options))
    names = _labels(key)
    spans = find_spans(names, low)
    options = {names.keys[name] for _, name in spans}
    if not options:
        return Parsed(None, "no_option")
    if len(options) > 1:
        return Parsed(None, "several_options")
    cues = answer_cues().languages.get(lang)
    if cues is not None and any(_negated(low, start, cues) for start, _ in spans):
        return Parsed(None, "negated")
    return Parsed(int(options.pop()), None, spans[0][1])
