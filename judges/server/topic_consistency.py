"""Faults of content for the coherence criterion: does the response stay on one medical topic?

The world's knowledge table says which condition each advice item, warning sign and symptom
belongs to ("在医生指导下做腰背肌锻炼" is advice for a herniated lumbar disc, "头痛性质突然改变" a
red flag of headache).
A response that discusses bronchitis and then recommends back exercises contradicts itself, as a
human reader sees at once. Three counts (see :mod:`judges.server.coherence` for how they score):

* ``off_topic``: advice items, warning signs or symptoms that belong only to conditions
  unrelated to the conditions the response names and the standard answer names or probes (a
  condition's differentials count as related). When neither names a condition, the condition most of the
  items belong to is the topic.
* ``unrelated``: named conditions that are not each other's differentials, unless one sentence
  frames them as alternatives ("可能是A或B", "could be A or B").
* ``wrong_department``: a world department named that treats none of the named conditions (or
  their differentials).

Phrases shorter than ``MIN_PHRASE`` or shared by ``GENERIC_OWNERS`` conditions or more say
nothing about the topic and are ignored.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from data_recipes.synthetic.lexicon import world_conditions, world_lexicon

MIN_PHRASE = {"zh": 6, "en": 18}          # characters; shorter ones are generic ("呼吸困难")
GENERIC_OWNERS = 3                         # a phrase of this many conditions is generic
# a sentence with one of these frames the conditions it names as alternatives or a list
_ALTERNATIVES = {
    "zh": ("或", "还是", "可能", "例如", "包括", "以及", "鉴别", "排除", "、", "和", "等"),
    "en": (" or ", "such as", "possib", "might", "may ", "could", "including", "rule out",
           "differential", " and ", ", "),
}
# clauses: split at punctuation and at list numbers' digits (a charset, so the split is fast)
_ZH_CLAUSE = re.compile(r"[，。！？；：、,.!?;:\n\d．]+")
_EN_CLAUSE = re.compile(r"[,.;:!?\n\d)]+")
_SENTENCE = re.compile(r"[。！？!?\n]|\.(?!\d)")


@dataclass(frozen=True)
class TopicIndex:
    """The world's advice, red-flag and symptom phrases of one language with the conditions
    they belong to, every fragment of them a clause could be, and which conditions are
    related (differentials, either direction)."""

    phrases: tuple[tuple[str, frozenset[str]], ...]   # (lower-cased phrase, owner keys)
    by_key: dict[str, tuple[int, ...]]                # rarest character / word -> phrases with it
    fragments: dict[str, frozenset[str]]              # piece of a phrase -> owners of its phrases
    related: dict[str, frozenset[str]]                # key -> itself and its differentials
    names: dict[str, tuple[str, ...]]                 # condition key -> lower-cased names


_WORD = re.compile(r"[a-z0-9'-]+")
_WORD_START = re.compile(r"(?<![a-z0-9'-])[a-z0-9'-]")
_WORD_END = re.compile(r"[a-z0-9'-](?![a-z0-9'-])")
_PATIENT_WORDS = ((re.compile(r"\b(i am|i'm)\b", re.I), "you are"),
                  (re.compile(r"\bmyself\b"), "yourself"), (re.compile(r"\bmy\b", re.I), "your"),
                  (re.compile(r"\b(me|i)\b", re.I), "you"))


def _answerer_words(symptom: str) -> str:
    """A patient's English symptom as an answer restates it ("wakes me" -> "wakes you")."""
    for pattern, replacement in _PATIENT_WORDS:
        symptom = pattern.sub(replacement, symptom)
    return symptom


def _phrase_owners(lang: str) -> dict[str, set[str]]:
    """Lower-cased phrase -> the conditions whose advice, red flags or symptoms hold it."""
    owners: dict[str, set[str]] = {}
    for key, cond in world_conditions().items():
        symptoms = cond.symptoms.get(lang, ())
        for phrase in (*cond.advice.get(lang, ()), *cond.red_flags.get(lang, ()), *symptoms,
                       *(_answerer_words(s) for s in symptoms if lang == "en")):
            if len(phrase) >= MIN_PHRASE[lang]:
                owners.setdefault(phrase.lower(), set()).add(key)
    return owners


def _units(text: str, lang: str) -> set[str]:
    """The characters (zh) or words (en) of ``text``."""
    return set(text) if lang == "zh" else set(_WORD.findall(text))


def _rarest_unit_index(phrases: tuple[tuple[str, frozenset[str]], ...], lang: str
                       ) -> dict[str, tuple[int, ...]]:
    """Each phrase filed under its rarest character / word: a text lacking that unit cannot
    hold the phrase, so a search tests only the phrases filed under units the text has."""
    units = [_units(p, lang) for p, _ in phrases]
    freq = Counter(u for us in units for u in us)
    by_key: dict[str, list[int]] = {}
    for i, us in enumerate(units):
        if us:
            by_key.setdefault(min(us, key=lambda u: (freq[u], u)), []).append(i)
    return {k: tuple(v) for k, v in by_key.items()}


def _pieces(phrase: str, lang: str) -> set[str]:
    """Every substring of ``phrase`` a clause of a response could be: at least MIN_PHRASE
    long and, in English, made of whole words (a dict of them makes a lookup O(1))."""
    n = MIN_PHRASE[lang]
    if lang == "zh":
        return {phrase[i:j] for i in range(len(phrase)) for j in range(i + n, len(phrase) + 1)}
    starts = [m.start() for m in _WORD_START.finditer(phrase)]
    ends = [m.end() for m in _WORD_END.finditer(phrase)]
    return {phrase[i:j] for i in starts for j in ends if j - i >= n}


@lru_cache(maxsize=2)
def topic_index(lang: str) -> TopicIndex:
    """Built once per language from the world (empty when the world module is absent)."""
    world = world_conditions()
    # generic phrases stay in the index (so their fragments are not taken for another
    # condition's) but never count as items
    phrases = tuple((p, frozenset(o)) for p, o in _phrase_owners(lang).items())
    fragments: dict[str, set[str]] = {}
    for phrase, owners in phrases:
        for piece in _pieces(phrase, lang):
            fragments.setdefault(piece, set()).update(owners)
    related = {k: {k, *c.differentials} for k, c in world.items()}
    for k, c in world.items():
        for d in c.differentials:
            related.setdefault(d, {d}).add(k)
    names: dict[str, list[str]] = {}
    for name, key in world_lexicon().condition_names.items():
        names.setdefault(key, []).append(name)
    return TopicIndex(phrases, _rarest_unit_index(phrases, lang),
                      {f: frozenset(o) for f, o in fragments.items()},
                      {k: frozenset(v) for k, v in related.items()},
                      {k: tuple(v) for k, v in names.items()})


def topical_items(text: str, lang: str) -> list[frozenset[str]]:
    """Owner sets of the advice / warning / symptom items in ``text``: each world phrase it
    holds, and each clause that is a fragment of a world phrase it does not hold whole."""
    index = topic_index(lang)
    low = text.lower()
    phrases = index.phrases
    held = [phrases[i] for k in _units(low, lang) & index.by_key.keys() for i in index.by_key[k]
            if phrases[i][0] in low]
    # a phrase inside a longer one the text holds is part of that item, not an item of its own
    whole = [(p, o) for p, o in held if not any(p != q and p in q for q, _ in held)]
    items = [o for _, o in whole if len(o) < GENERIC_OWNERS]
    splitter = _ZH_CLAUSE if lang == "zh" else _EN_CLAUSE
    for clause in map(str.strip, splitter.split(low)):
        owners = index.fragments.get(clause)
        if owners and len(owners) < GENERIC_OWNERS and not any(clause in p for p, _ in whole):
            items.append(owners)
    return items


def off_topic_items(text: str, lang: str, named: tuple[str, ...], topic: frozenset[str]) -> int:
    """Advice / warning items that belong only to conditions unrelated to the discussion."""
    items = topical_items(text, lang)
    if not items:
        return 0
    related_of = topic_index(lang).related
    anchors = set(named) | set(topic)
    if not anchors:       # nobody names a condition: the one most items belong to is the topic
        anchors = {Counter(k for o in items for k in o).most_common(1)[0][0]}
    allowed = set().union(*(related_of.get(k, {k}) for k in anchors))
    return sum(1 for owners in items if not owners & allowed)


def _sentence_of(text_low: str, ends: list[int], names: tuple[str, ...]) -> int:
    """Index of the sentence where one of ``names`` first occurs (-1: not found)."""
    positions = [p for p in (text_low.find(n) for n in names) if p != -1]
    return bisect_right(ends, min(positions)) if positions else -1


def unrelated_conditions(text: str, lang: str, named: tuple[str, ...]) -> int:
    """Groups of named conditions beyond the first that are not differentials of each other
    (conditions named in one sentence that frames alternatives count as one group)."""
    if len(named) < 2:
        return 0
    index = topic_index(lang)
    group = {k: k for k in named}                 # union-find over the named conditions

    def root(k: str) -> str:
        while group[k] != k:
            k = group[k]
        return k

    def join(alike) -> int:
        for i, a in enumerate(named):
            for b in named[i + 1:]:
                if alike(a, b):
                    group[root(b)] = root(a)
        return len({root(k) for k in named}) - 1

    if not join(lambda a, b: b in index.related.get(a, ())):
        return 0                                  # all differentials of each other: the usual case
    low = text.lower()
    ends = [m.start() for m in _SENTENCE.finditer(low)]
    sentence = {k: _sentence_of(low, ends, index.names.get(k, ())) for k in named}
    framing = {i for i, s in enumerate(_SENTENCE.split(low))
               if any(cue in s for cue in _ALTERNATIVES[lang])}
    return join(lambda a, b: sentence[a] == sentence[b] != -1 and sentence[a] in framing)


def wrong_departments(lang: str, named: tuple[str, ...], departments: tuple[str, ...]) -> int:
    """World departments named that treat none of the named conditions or their differentials."""
    if not named or not departments:
        return 0
    lex = world_lexicon()
    world_depts = set(lex.condition_department.values())
    related = topic_index(lang).related
    keys = set().union(*(related.get(k, {k}) for k in named))
    allowed = {lex.condition_department.get(k) for k in keys}
    return sum(1 for d in departments if d in world_depts and d not in allowed)


def topic_faults(text: str, lang: str, named: tuple[str, ...], topic: frozenset[str],
                 departments: tuple[str, ...] = ()) -> dict[str, int]:
    """The content fault counts of ``text`` (see the module docstring)."""
    if lang not in MIN_PHRASE:
        return {}
    return {"off_topic": off_topic_items(text, lang, named, topic),
            "unrelated": unrelated_conditions(text, lang, named),
            "wrong_department": wrong_departments(lang, named, departments)}
