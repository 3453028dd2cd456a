"""Which text after an address cue (住在 / 家住) is an address: the word lists of
``pii_places.yaml`` (clinical places, residential markers, words that end an address), validated
on first use. Used by ``pii.scrub_text``'s address-cue rule."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from pydantic import Field

from medalign.config import StrictModel

PLACES_FILE = Path(__file__).resolve().parent / "pii_places.yaml"


class PlaceWords(StrictModel):
    """The word lists of ``pii_places.yaml`` (see the comments there)."""

    clinical_places: list[str] = Field(min_length=1, description="words that make a place clinical context (a ward, an ICU, a nursing home)")
    residential_markers: list[str] = Field(min_length=1, description="words that make a place a home address even next to a clinical word")
    address_ends: list[str] = Field(min_length=1, description="words an address after 住在 / 家住 ends before")


@lru_cache(maxsize=1)
def _patterns() -> tuple[re.Pattern, re.Pattern, re.Pattern]:
    from data_recipes.synthetic.tables import load_table

    words = load_table(PLACES_FILE, PlaceWords)

    def alternation(items: list[str]) -> re.Pattern:
        return re.compile("|".join(map(re.escape, sorted(items, key=len, reverse=True))))

    return (alternation(words.clinical_places), alternation(words.residential_markers),
            alternation(words.address_ends))


def address_part(place: str) -> str | None:
    """The part of ``place`` (the text after 住在 / 家住, up to punctuation) that is an address:
    its start up to the first word that ends an address, or None when it is clinical context.

    "ICU" -> None; "呼吸科病房三天了" -> None; "武汉最近咳嗽" -> "武汉"; "人民医院旁边的小区" -> all of it.
    """
    clinical, residential, ends = _patterns()
    end = ends.search(place, 1)
    head = place[:end.start()] if end else place
    if clinical.search(head) and not residential.search(head):
        return None
    return head or None
