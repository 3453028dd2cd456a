"""Case cards: what a simulated patient knows and may tell (issue 10 §4), and the synthetic
world's cards.

    card = case_card_for(patient_case, seed=0)     # a CaseCard for a data_recipes.synthetic.answers.PatientCase
    card.patient_view()                            # the card without its condition (what the patient sees)
    card.missing_items()                           # the key facts its opening leaves out

:class:`CaseCard` is the one schema of the ``case_card`` column of an eval set
(``data_recipes/eval_cases.py``): the eval-set generator writes it (``eval_sets.py``), the
evaluation plays it (``alignment/evaluation/patient.py``), and the local judge server's patient
(``judges/server/patient.py``) reads its patient view back from the prompt.

Medicines, allergies, history and the "don't know" phrase of a synthetic card are drawn from
``data/patient_background.yaml`` (schema :class:`PatientBackground`; no entry names a condition
or a department: a test checks it), seeded by ``seed`` and the opening message.
"""

from __future__ import annotations

import random
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from medalign.config import StrictModel

if TYPE_CHECKING:                          # the world loads only when a card is drawn
    from data_recipes.synthetic.answers import PatientCase

BACKGROUND_FILE = Path(__file__).resolve().parent / "data" / "patient_background.yaml"


class CaseCard(StrictModel):
    """What the simulated patient knows. Everything but ``condition`` is shown to it."""

    condition: str | None = None           # world condition key (bookkeeping, never shown); None: real case
    language: Literal["zh", "en"]          # the patient speaks this language
    intro: str = ""                        # age and sex as the patient says them ("" = not told)
    opening: str                           # the patient's first message (the case's last user turn)
    shown_symptoms: list[str] = Field(default_factory=list)     # told in the opening
    withheld_symptoms: list[str] = Field(default_factory=list)  # told only when asked; the key one first
    onset: str | None = None               # onset and duration, None = unknown to the patient
    onset_told: bool = False               # the opening already tells the onset
    medication: str = ""                   # what it says about medicines ("" = does not know)
    allergies: str = ""                    # what it says about allergies
    history: str = ""                      # what it says about past illnesses
    unknown_reply: str                     # what it says when asked anything the card does not hold

    def patient_view(self) -> dict:
        """The card as the patient sees it (the JSON in its prompt): without the condition."""
        return self.model_dump(exclude={"condition"})

    def missing_items(self) -> list[str]:
        """The key facts the opening leaves out: the key withheld symptom, the onset if untold."""
        items = self.withheld_symptoms[:1]
        return items + ([self.onset] if self.onset and not self.onset_told else [])


PATIENT_VIEW_KEYS = tuple(k for k in CaseCard.model_fields if k != "condition")


class PerLanguage(StrictModel):
    en: list[str] = Field(min_length=1)    # English phrases
    zh: list[str] = Field(min_length=1)    # Chinese phrases


class PatientBackground(StrictModel):
    """``data/patient_background.yaml``: what a demo patient says about its background."""

    version: int
    medication: PerLanguage
    allergies: PerLanguage
    history: PerLanguage
    unknown_reply: PerLanguage


@lru_cache(maxsize=1)
def patient_background() -> PatientBackground:
    from data_recipes.synthetic.tables import load_table

    return load_table(BACKGROUND_FILE, PatientBackground)


def case_card_for(patient_case: "PatientCase", *, seed: int = 0, opening: str | None = None) -> CaseCard:
    """The case card of a synthetic-world patient.

    The withheld symptoms are the case's withheld one first, then the condition's other
    symptoms the opening does not tell; medicines, allergies, history and the "don't know"
    phrase are drawn (seeded by ``seed`` and the opening) from ``data/patient_background.yaml``.
    ``opening`` defaults to the patient's first message as the world writes it."""
    from data_recipes.synthetic.answers import patient_message

    case, lang = patient_case, patient_case.lang
    opening = patient_message(case) if opening is None else opening
    rng = random.Random(f"{seed}|{opening}")
    others = [s for s in case.condition.symptoms[lang] if s not in case.shown and s != case.withheld]
    bg = patient_background()

    def draw(phrases: PerLanguage) -> str:
        return rng.choice(getattr(phrases, lang))
    return CaseCard(condition=case.condition.key, language=lang, intro=case.intro.strip(),
                    opening=opening, shown_symptoms=list(case.shown),
                    withheld_symptoms=[case.withheld, *others], onset=case.onset,
                    onset_told=case.complete, medication=draw(bg.medication),
                    allergies=draw(bg.allergies), history=draw(bg.history),
                    unknown_reply=draw(bg.unknown_reply))


__all__ = ["CaseCard", "PATIENT_VIEW_KEYS", "PatientBackground", "patient_background", "case_card_for"]
