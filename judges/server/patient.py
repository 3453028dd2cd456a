"""The local server's simulated patient (model ``medalign-patient``): answers only from a case card.

The patient prompt (``alignment/evaluation/prompts/patient.yaml``) puts the case card in its
system message as JSON after a marker line (``[Case card]`` / ``[病例卡]``); the conversation
follows from the patient's side (the doctor's turns are ``user`` messages, the patient's own
turns ``assistant``). For the doctor's last message the patient:

1. replies with :data:`END` when the message asks nothing (the project's rule,
   ``data_recipes.synthetic.clinical_rules.asks_question``: a question sentence or an inquiry
   phrase): the doctor has finished, so the consultation ends;
2. otherwise answers each topic the message asks about, in a fixed order, from the card only
   (topic cues, phrasing and stop terms are data: ``patient_topics.yaml``): onset and duration,
   the withheld symptoms ("any other symptoms?" tells them all; a question sharing content words
   with one symptom tells that one), medication, allergies, history, age;
3. says the card's ``unknown_reply`` when none of that was asked.

It never names a condition: a part of an answer that would name one (by the project's lexicon)
is left out. Phrasing variants are drawn from a generator seeded with the request's ``seed``,
the doctor's message and the turn, so the same request always gets the same answer.

Card keys read here: the patient view of ``data_recipes.synthetic.case_cards.CaseCard``
(:data:`CARD_KEYS`).
"""

from __future__ import annotations

import json
import random
from functools import lru_cache
from pathlib import Path

from pydantic import Field

from data_recipes.synthetic.case_cards import PATIENT_VIEW_KEYS
from data_recipes.synthetic.clinical_rules import asks_question
from data_recipes.synthetic.lexicon import world_lexicon
from judges.server.prompt_parse import PromptNotUnderstood
from judges.server.rubric import content_terms
from medalign.config import StrictModel, load_config

MODEL = "medalign-patient"
END = "[[END]]"                          # the reply that ends a consultation (the template's too)
CARD_MARKERS = ("[Case card]", "[病例卡]")
TOPICS_FILE = Path(__file__).resolve().parent / "patient_topics.yaml"
TOPIC_ORDER = ("onset", "other_symptoms", "medication", "allergies", "history", "age")
CARD_KEYS = PATIENT_VIEW_KEYS               # what read_card requires of the card in the prompt


class PerLanguage(StrictModel):
    en: list[str] = Field(min_length=1)   # English entries
    zh: list[str] = Field(min_length=1)   # Chinese entries


class Joiner(StrictModel):
    en: tuple[str, str]                   # English (separator, before the last item)
    zh: tuple[str, str]                   # Chinese


class Phrasing(StrictModel):
    symptoms: PerLanguage                 # "{items}": the symptoms told
    onset: PerLanguage                    # "{onset}": the card's onset
    list_joiner: Joiner                   # joins several symptoms told at once


class PatientTopics(StrictModel):
    """``patient_topics.yaml``: what the patient listens for and how it phrases answers."""

    version: int
    topics: dict[str, PerLanguage]        # topic -> cues (lower-case substrings)
    stop_terms: PerLanguage               # content terms that tie a question to no symptom
    phrasing: Phrasing


@lru_cache(maxsize=1)
def topics() -> PatientTopics:
    spec = load_config(TOPICS_FILE, PatientTopics)
    missing = sorted(set(TOPIC_ORDER) - set(spec.topics))
    if missing:
        raise ValueError(f"{TOPICS_FILE}: topics lacks {missing}")
    return spec


def read_card(messages: list[dict]) -> dict:
    """The case card from the system message (JSON after a card marker line)."""
    system = next((m.get("content") for m in messages if m.get("role") == "system"), None)
    if not isinstance(system, str):
        raise PromptNotUnderstood("no system message holding a case card")
    at = -1
    for marker in CARD_MARKERS:
        at = system.find(marker)
        if at >= 0:
            break
    brace = system.find("{", at) if at >= 0 else -1
    if brace < 0:
        raise PromptNotUnderstood(f"no case card after a {' / '.join(CARD_MARKERS)} line")
    try:
        card, _ = json.JSONDecoder().raw_decode(system, brace)
    except json.JSONDecodeError as e:
        raise PromptNotUnderstood(f"the case card is not JSON ({e.msg})") from None
    missing = [k for k in CARD_KEYS if k not in card] if isinstance(card, dict) else list(CARD_KEYS)
    if missing:
        raise PromptNotUnderstood(f"the case card lacks {missing}")
    return card


def asked_topics(doctor: str, language: str) -> list[str]:
    """The card topics the doctor's message asks about, in answering order."""
    low = doctor.lower()
    return [t for t in TOPIC_ORDER if any(c in low for c in getattr(topics().topics[t], language))]


def asked_symptoms(doctor: str, symptoms: list[str], language: str) -> list[str]:
    """The symptoms a question is about: those sharing a content term with it."""
    stop = set(getattr(topics().stop_terms, language))
    asked = content_terms(doctor, language) - stop
    return [s for s in symptoms if asked & (content_terms(s, language) - stop)]


def _say(kind: str, language: str, rng: random.Random, **values: str) -> str:
    text = rng.choice(getattr(getattr(topics().phrasing, kind), language)).format(**values)
    return text[:1].upper() + text[1:] if language == "en" else text


def _symptom_part(items: list[str], language: str, rng: random.Random) -> str:
    sep, last = getattr(topics().phrasing.list_joiner, language)
    joined = sep.join(items[:-1]) + last + items[-1] if len(items) > 1 else items[0]
    return _say("symptoms", language, rng, items=joined)


def answer_parts(card: dict, doctor: str, rng: random.Random) -> list[str]:
    """What the patient tells for ``doctor``'s message (empty: nothing it was asked is on the card)."""
    lang = "zh" if card["language"] == "zh" else "en"
    asked = asked_topics(doctor, lang)
    withheld = list(card["withheld_symptoms"])
    told = withheld if "other_symptoms" in asked else []
    told += [s for s in asked_symptoms(doctor, withheld + list(card["shown_symptoms"]), lang)
             if s not in told]
    parts = []
    if "onset" in asked and card["onset"]:
        parts.append(_say("onset", lang, rng, onset=card["onset"]))
    if told:
        parts.append(_symptom_part(told, lang, rng))
    parts += [card[t] for t in ("medication", "allergies", "history") if t in asked and card[t]]
    if "age" in asked and card["intro"]:
        parts.append(card["intro"])
    lexicon = world_lexicon()
    return [p.strip() for p in parts if p.strip() and not lexicon.find_conditions(p)]


def answer(messages: list[dict], seed: int | None) -> str:
    """The patient's next message for a chat request (see the module docstring)."""
    card = read_card(messages)
    doctor = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), None)
    if not isinstance(doctor, str):
        raise PromptNotUnderstood("no doctor message (a user turn) to answer")
    lang = "zh" if card["language"] == "zh" else "en"
    if not asks_question(doctor):
        return END
    turn = sum(1 for m in messages if m.get("role") == "user")
    rng = random.Random(f"{seed}|{turn}|{doctor}")
    parts = answer_parts(card, doctor, rng)
    return ("" if lang == "zh" else " ").join(parts) if parts else card["unknown_reply"]
