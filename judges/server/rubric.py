"""The local judge's "model": a deterministic, reference-based rubric rating a response 1-10.

Four criteria, each in [0, 1], weighted into a sum, gated by a fifth:

* accuracy (0.45) against the standard answer: the condition(s) it commits to and the
  department it names (the project's rules, ``data_recipes.synthetic.clinical_rules``: a
  condition named inside a question commits to nothing). Partial credit on the rules' outcome:
  committing to the reference's diagnosis scores 1 (0.15 less with a hedging phrase); listing
  it among alternatives scores partial; a different diagnosis, or none, scores low.
  A reference that only asks questions points at the conditions whose typical follow-up
  questions it asks (scored a little more leniently). When the reference points at no
  condition or department, content-term overlap stands in.
* doctor-likeness (0.20): when the standard answer asks the patient something (information was
  missing; ``clinical_rules.asks_question``), asking a relevant question scores 1, an unrelated
  question 0.5, none 0. When the reference asks nothing, every response gets the same neutral 0.7.
* helpfulness (0.20): concrete advice (up to three items) and a red-flag warning.
* conciseness (0.15): 1 inside a language-specific length band, falling off when far longer
  than needed or too short to be useful.
* coherence, HuatuoGPT's "logical consistency" (:mod:`judges.server.coherence`): 1 for a
  clean response, towards 0 for repeated clauses, broken list numbering, punctuation
  artefacts, dangling sentences and advice for conditions nobody discusses.

``total = 1 + 9 * coherence * (0.25 + 0.75 * accuracy) * weighted sum``: coherence multiplies the
rest, so word salad stitched from advice-like phrases cannot score well on helpfulness or
accuracy; and accuracy gates it too (issue 10), so a wrong diagnosis dressed up with advice, red
flags and the right length cannot beat a coherent answer that commits to the right one
(tests/judges/test_rubric_accuracy.py: hand-written pairs, zh and en, both orders).

Everything is a pure function of the texts, so the same request always gets the same rating.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from data_recipes.synthetic.clinical_rules import (asks_question, committed_conditions, hedges,
                                                   naming_outcome, split_questions)
from data_recipes.synthetic.clinical_rules import sentences as rule_sentences
from data_recipes.synthetic.lexicon import Lexicon, world_conditions, world_lexicon
from judges.server.coherence import Coherence, coherence
from judges.server.topic_consistency import topic_index

WEIGHTS = {"accuracy": 0.45, "doctor": 0.20, "helpfulness": 0.20, "conciseness": 0.15}
ACCURACY_GATE = 0.25     # the weighted sum is multiplied by ACCURACY_GATE + (1 - ACCURACY_GATE) * accuracy
# length band (zh: characters; en: words) inside which conciseness is 1
LENGTH_BAND = {"zh": (40, 150), "en": (15, 90)}

_SENTENCE = re.compile(r"[^。！？!?\.\n；;]+[。！？!?\.\n；;]?")
_ADVICE = {
    "zh": ("建议", "注意", "避免", "保持", "多喝水", "休息", "少吃", "戒烟", "戒酒", "复查", "检查",
           "服用", "规律", "不要", "尽量"),
    "en": ("recommend", "should", "avoid", "try to", "make sure", "keep ", "rest", "drink",
           "take ", "check", "cut down", "stop ", "get "),
}
_URGENT = {
    "zh": ("立即就医", "尽快就医", "马上就医", "及时就医", "急诊", "立刻就医", "马上去医院", "尽快去医院"),
    "en": ("seek immediate", "emergency", "right away", "urgent", "immediately", "call 120",
           "call an ambulance", "go to hospital", "go to the hospital", "straight away"),
}
_EN_STOP = frozenset("""a an the and or of to in on for with is are was be been it this that i you
your my me we do does did have has had not no at as by from if so but can could would should
will may might what how when which who about there their they them he she his her its""".split())


@dataclass(frozen=True)
class Features:
    """What the rubric reads from one text."""

    conditions: tuple[str, ...]           # every condition named (coherence, advice)
    committed: tuple[str, ...]            # the conditions it commits to (clinical_rules)
    departments: tuple[str, ...]
    asks: bool                            # clinical_rules.asks_question
    questions: tuple[str, ...]            # its question sentences (all sentences when it asks by phrase)
    advice_items: int
    red_flag: bool
    hedged: bool
    length: int                           # zh: characters; en: words


@dataclass(frozen=True)
class Rating:
    """One response's rating: criteria in [0, 1], the coherence behind the gate, the 1-10 total."""

    accuracy: float
    doctor: float
    helpfulness: float
    conciseness: float
    coherence: Coherence
    total: float


def text_length(text: str, lang: str) -> int:
    return len(re.sub(r"\s", "", text)) if lang == "zh" else len(text.split())


@lru_cache(maxsize=1)
def _world_phrases() -> dict[str, dict]:
    """Lower-cased advice phrases per condition and every red-flag phrase, per language."""
    world = world_conditions()
    return {lang: {"advice": {k: [p.lower() for p in c.advice.get(lang, ())] for k, c in world.items()},
                   "flags": [p.lower() for c in world.values() for p in c.red_flags.get(lang, ())]}
            for lang in ("zh", "en")}


@lru_cache(maxsize=8192)
def features(text: str, lang: str) -> Features:
    lex = world_lexicon()
    low = text.lower()
    holds = low.__contains__              # any(map(holds, phrases)): a phrase test in C, no generator
    conds = tuple(lex.find_conditions(text))
    phrases = _world_phrases().get(lang, {"advice": {}, "flags": []})
    advice_phrases = [p for k in conds for p in phrases["advice"].get(k, ())]
    # only cues the whole text holds can be in one of its sentences: test those alone
    cues = list(filter(holds, _ADVICE[lang]))
    sentences = [s.lower() for s in _SENTENCE.findall(text) if s.strip()] if cues else []
    cue_sentences = sum(1 for s in sentences if any(map(s.__contains__, cues)))
    advice = max(cue_sentences, sum(map(holds, advice_phrases)))
    red_flag = any(map(holds, _URGENT[lang])) or any(map(holds, phrases["flags"]))
    asks = asks_question(text)
    questions = tuple(q.strip() for q in split_questions(text)[1] if len(q.strip()) > 1)
    if asks and not questions:               # asks with an inquiry phrase ("请告诉我...")
        questions = tuple(q.strip() for q in rule_sentences(text) if len(q.strip()) > 1)
    return Features(
        conditions=conds, committed=tuple(committed_conditions(text)),
        departments=tuple(lex.find_departments(text)), asks=asks, questions=questions,
        advice_items=advice, red_flag=red_flag, hedged=hedges(text), length=text_length(text, lang))


def content_terms(text: str, lang: str) -> set[str]:
    """zh: character bigrams of CJK runs; en: lower-case words that are not stop words."""
    if lang == "zh":
        runs = re.findall(r"[\u4e00-\u9fff]+", text)
        return {r[i:i + 2] for r in runs for i in range(len(r) - 1)}
    return {w for w in re.findall(r"[a-z]+", text.lower()) if w not in _EN_STOP and len(w) > 2}


@lru_cache(maxsize=4096)
def probed_conditions(questions: tuple[str, ...], lang: str) -> frozenset[str]:
    """Conditions whose typical follow-up questions the reference asks (a doctor who asks
    "is the pain on one side or both?" is probing migraine / tension headache)."""
    found = set()
    for q in questions:
        terms = content_terms(q, lang)
        if not terms:
            continue
        for key, cond in world_conditions().items():
            for fq in cond.follow_up_questions.get(lang, ()):
                f_terms = content_terms(fq, lang)
                if f_terms and len(terms & f_terms) / len(terms | f_terms) >= 0.5:
                    found.add(key)
    return frozenset(found)


def _diagnosis(resp: Features, target: set[str], named: bool) -> float:
    """Partial credit on the rules' outcome (``clinical_rules.naming_outcome``): commit to the
    target diagnosis: high (less with a hedging phrase); list it among others: partial; else low."""
    outcome = naming_outcome(list(resp.committed), target, resp.hedged)
    others = len(set(resp.committed) - target)
    top = 1.0 if named else 0.9
    if outcome == "right":
        return top
    if outcome == "hedged":
        return top - 0.15 if not others else max(0.3, 0.55 - 0.1 * (others - 1))
    if outcome == "wrong":
        return 0.1
    return 0.2 if named else 0.35      # the doctor named none either: naming none is less wrong


def accuracy(resp: Features, ref: Features, resp_text: str, ref_text: str, lang: str,
             lex: Lexicon) -> float:
    """Agreement with the standard answer's diagnosis (named, or probed by its questions) and
    department; content-term overlap when the reference points at neither."""
    named = bool(ref.committed)
    target = set(ref.committed) if named else set(probed_conditions(ref.questions, lang))
    ref_depts = set(ref.departments) | {lex.condition_department[c] for c in target
                                        if c in lex.condition_department}
    if not target and not ref_depts:
        terms = content_terms(ref_text, lang)
        if not terms:
            return 0.5
        return min(1.0, 1.5 * len(terms & content_terms(resp_text, lang)) / len(terms))
    diag = _diagnosis(resp, target, named) if target else None
    dept = None
    if ref_depts:
        said = set(resp.departments)
        dept = 1.0 if said & ref_depts else (0.0 if said else 0.3)
    if diag is None:
        return dept
    return diag if dept is None else 0.75 * diag + 0.25 * dept


def doctor_likeness(resp: Features, ref: Features, lang: str) -> float:
    """Asks a relevant question when the doctor did: 1; an unrelated one: 0.5; none: 0."""
    if not ref.asks:
        return 0.7
    if not resp.asks:
        return 0.0
    wanted = [content_terms(q, lang) for q in ref.questions]
    world = world_conditions()
    for key in set(ref.committed) | probed_conditions(ref.questions, lang):
        if key in world:
            wanted += [content_terms(q, lang) for q in world[key].follow_up_questions.get(lang, ())]
    wanted = [w for w in wanted if w]
    for q in resp.questions:
        terms = content_terms(q, lang)
        if any(len(terms & w) / len(w) >= 0.5 for w in wanted):
            return 1.0
    return 0.5


def helpfulness(resp: Features) -> float:
    return 0.6 * min(resp.advice_items, 3) / 3 + 0.4 * float(resp.red_flag)


def conciseness(length: int, lang: str) -> float:
    lo, hi = LENGTH_BAND.get(lang, LENGTH_BAND["en"])
    if length < lo:
        return length / lo
    if length > hi:
        return max(0.0, 1.0 - (length - hi) / (2.0 * hi))
    return 1.0


def warm_up() -> None:
    """Build the lexicon and the coherence phrase index now (~50 ms), not on the first call."""
    world_lexicon()
    _world_phrases()
    for lang in ("zh", "en"):
        topic_index(lang)


def rate(response: str, reference: str | None, lang: str) -> Rating:
    """Rate one response against the standard answer (None: judged on its own merits)."""
    lex = world_lexicon()
    resp = features(response, lang)
    ref = features(reference or "", lang)
    acc = accuracy(resp, ref, response, reference or "", lang, lex) if reference else 0.5
    doc = doctor_likeness(resp, ref, lang)
    helpf = helpfulness(resp)
    conc = conciseness(resp.length, lang)
    topic = frozenset(ref.conditions) or probed_conditions(ref.questions, lang)
    coh = coherence(response, lang, resp.conditions, topic, resp.departments)
    return Rating(acc, doc, helpf, conc, coh, total_score(acc, doc, helpf, conc, coh.score))


def total_score(acc: float, doc: float, helpf: float, conc: float, coh: float) -> float:
    """The 1-10 rating from the criteria: ``1 + 9 * coherence * accuracy gate * weighted sum``."""
    weighted = (WEIGHTS["accuracy"] * acc + WEIGHTS["doctor"] * doc
                + WEIGHTS["helpfulness"] * helpf + WEIGHTS["conciseness"] * conc)
    gate = ACCURACY_GATE + (1.0 - ACCURACY_GATE) * acc
    return 1.0 + 9.0 * coh * gate * weighted
