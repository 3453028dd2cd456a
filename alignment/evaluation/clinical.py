"""Ground-truth clinical metrics: what a model's answers get right, computed without any LLM.

Per response to a case whose ``truth`` says which checks apply (``truth.expects``,
data_recipes/eval_cases.py):

* diagnosis: ``right`` when the response names the case's condition (any of ``condition_names``:
  every zh/en name and synonym), names no other condition of the world's lexicon
  (data_recipes/synthetic/lexicon.py) and uses no hedging phrase (``data/clinical_phrases.yaml``);
  ``hedged`` when it names the condition alongside another condition or alongside hedging words
  ("可能是X，也可能是Y", "cannot be sure"): counted apart, never as right; ``wrong`` when it
  names other conditions only; ``none`` when it names none. Commitments ("考虑X", "X可能性大",
  "most likely X") are not hedges.
* department: the same four outcomes for departments (``department_names`` and the lexicon's
  department names, common aliases included).
* asking: the response asks the patient something (a question mark, an inquiry phrase, or a
  Chinese sentence ending in 吗/呢). Over cases missing key information (``missing_info``) this
  is the asks-when-missing rate (higher is better); over complete cases, the needless-asking
  rate (lower is better).
* red flags: the response warns of at least one of the case's red flags (the phrase itself, after
  lower-casing and removing whitespace; a paraphrase is not found: the referee sees those).
* length: metric tokens (a Chinese character or an English word, alignment.metrics.text).

Each rate comes with its n (the cases where it applies) and a 95% bootstrap interval over
cases; two models answering the same cases get paired differences with intervals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydantic import Field

from alignment.metrics.stats import mean_with_ci, paired_difference
from alignment.metrics.text import text_tokens
from data_recipes.eval_cases import Truth
from data_recipes.synthetic.lexicon import NameSet, find_names, world_lexicon
from medalign.config import StrictModel, load_config

PHRASES_FILE = Path(__file__).resolve().parent / "data" / "clinical_phrases.yaml"
OUTCOMES = ("right", "hedged", "wrong", "none")
_TRUTH = "\0truth"                         # the key the case's own names map to
_QUESTION = re.compile(r"[？?]|[吗呢](?=[。！!，,；;\s]|$)")


class Phrases(StrictModel):
    zh: list[str] = Field(default_factory=list)      # Chinese phrases
    en: list[str] = Field(default_factory=list)      # English phrases (lower case)


class ClinicalPhrases(StrictModel):
    """The phrase lists of data/clinical_phrases.yaml."""

    hedges: Phrases                                    # wording that declines to commit
    inquiries: Phrases                                 # asking without a question mark


@lru_cache(maxsize=1)
def clinical_phrases() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(hedges, inquiries), lower-cased, both languages."""
    p = load_config(PHRASES_FILE, ClinicalPhrases)
    return (tuple(x.lower() for x in (*p.hedges.zh, *p.hedges.en)),
            tuple(x.lower() for x in (*p.inquiries.zh, *p.inquiries.en)))


def normalise(text: str) -> str:
    """Lower case, no whitespace: how red-flag phrases are compared."""
    return re.sub(r"\s+", "", text.lower())


@lru_cache(maxsize=4096)
def _names(kind: str, own: tuple[str, ...]) -> NameSet:
    """The lexicon's condition or department names, with the case's own names mapped to _TRUTH."""
    lex = world_lexicon()
    base = lex.condition_names if kind == "condition" else lex.department_names
    return NameSet.of({**base, **{n.lower(): _TRUTH for n in own if n.strip()}})


def named_outcome(text: str, kind: str, own_names: list[str], own_key: str | None, hedges: bool) -> str:
    """right | hedged | wrong | none for naming the case's condition or department (module doc)."""
    found = find_names(_names(kind, tuple(own_names)), text)
    own = {_TRUTH} | ({own_key} if own_key else set())
    hits = [k for k in found if k in own]
    if not hits:
        return "wrong" if found else "none"
    others = [k for k in found if k not in own]
    return "hedged" if others or hedges else "right"


def hedges(text: str) -> bool:
    low = text.lower()
    return any(h in low for h in clinical_phrases()[0])


def asks(text: str) -> bool:
    """The response asks the patient something (module doc)."""
    low = text.lower()
    return bool(_QUESTION.search(text)) or any(p in low for p in clinical_phrases()[1])


def warns_of_red_flag(text: str, red_flags: list[str]) -> bool:
    low = normalise(text)
    return any(normalise(f) in low for f in red_flags if f.strip())


@dataclass(frozen=True)
class CaseCheck:
    """One response checked against one case's truth (None: the check does not apply)."""

    diagnosis: str | None
    department: str | None
    asked: bool | None
    missing_info: bool | None
    red_flag: bool | None
    length: int


def check_response(text: str, truth: Truth | None) -> CaseCheck:
    """The ground-truth checks of one response (only ``length`` without truth)."""
    length = len(text_tokens(text))
    if truth is None:
        return CaseCheck(None, None, None, None, None, length)
    expects = set(truth.expects)
    hedged = hedges(text)
    return CaseCheck(
        diagnosis=named_outcome(text, "condition", truth.condition_names, truth.condition, hedged)
        if "diagnosis" in expects else None,
        department=named_outcome(text, "department", truth.department_names, truth.department, False)
        if "department" in expects else None,
        asked=asks(text) if "asking" in expects else None,
        missing_info=truth.missing_info if "asking" in expects else None,
        red_flag=warns_of_red_flag(text, truth.red_flags) if "red_flags" in expects else None,
        length=length)


# metric -> (applies to the check, value of the check); rates are shares of the applicable cases
METRICS = {
    "diagnosis_accuracy": (lambda c: c.diagnosis is not None, lambda c: float(c.diagnosis == "right")),
    "diagnosis_hedged": (lambda c: c.diagnosis is not None, lambda c: float(c.diagnosis == "hedged")),
    "department_accuracy": (lambda c: c.department is not None, lambda c: float(c.department == "right")),
    "asks_when_missing": (lambda c: c.asked is not None and c.missing_info, lambda c: float(c.asked)),
    "needless_asking": (lambda c: c.asked is not None and not c.missing_info, lambda c: float(c.asked)),
    "red_flag_coverage": (lambda c: c.red_flag is not None, lambda c: float(c.red_flag)),
    "mean_response_length": (lambda c: True, lambda c: float(c.length)),
}


def summarise(checks: list[CaseCheck], n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """Every metric over the cases where it applies: ``{metric: {value, ci_low, ci_high, n}}``
    (value None and n 0 when it applies to no case) and the diagnosis outcomes' counts."""
    out = {}
    for name, (applies, value) in METRICS.items():
        out[name] = mean_with_ci([value(c) for c in checks if applies(c)], n_bootstrap, seed=seed)
    out["diagnosis_outcomes"] = {o: sum(c.diagnosis == o for c in checks) for o in OUTCOMES}
    return out


def paired(checks_a: list[CaseCheck], checks_b: list[CaseCheck], n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """Per metric, model A minus model B over the same cases where it applies to both:
    ``{metric: {diff, ci_low, ci_high, n}}``."""
    if len(checks_a) != len(checks_b):
        raise ValueError("paired checks need the same cases for both models")
    out = {}
    for name, (applies, value) in METRICS.items():
        both = [(value(a), value(b)) for a, b in zip(checks_a, checks_b) if applies(a) and applies(b)]
        out[name] = paired_difference([x for x, _ in both], [y for _, y in both], n_bootstrap, seed=seed)
    return out
