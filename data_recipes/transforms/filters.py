"""Filters: drop records by utterance length or language (each drop is counted with its reason)."""

from __future__ import annotations

from collections import Counter
from typing import Literal

from pydantic import Field

from data_recipes.records import Record
from data_recipes.transforms.speakers import Drop
from medalign.config import StrictModel


def record_texts(record: Record) -> list[str]:
    """Every text field of a record: utterances, document text, candidate responses."""
    texts = [t.content for t in record.turns]
    if record.text is not None:
        texts.append(record.text)
    if record.responses:
        texts.extend(record.responses)
    return texts


class FilterLength(StrictModel):
    """Drop records with an utterance (or document, or response) too short or too long."""

    name: Literal["filter_length"] = "filter_length"
    min_chars: int = Field(1, ge=0, description="every utterance/response/document has at least this many characters")
    max_chars: int | None = Field(4000, ge=1, description="no utterance/response/document is longer (None: no limit)")
    max_total_chars: int | None = Field(None, ge=1, description="the whole record is at most this long (None: no limit)")
    min_assistant_turns: int = Field(0, ge=0, description="dialogues and QA need at least this many assistant turns")


def filter_length(record: Record, spec: FilterLength, counts: Counter) -> Record | Drop:
    """Keep the record only when every text field's length is within bounds."""
    lengths = list(map(len, record_texts(record)))
    if lengths and min(lengths) < spec.min_chars:
        return Drop(f"text shorter than min_chars={spec.min_chars}")
    if spec.max_chars is not None and lengths and max(lengths) > spec.max_chars:
        return Drop(f"text longer than max_chars={spec.max_chars}")
    if spec.max_total_chars is not None and sum(lengths) > spec.max_total_chars:
        return Drop(f"record longer than max_total_chars={spec.max_total_chars}")
    if spec.min_assistant_turns and record.kind in ("dialogue", "qa"):
        if [t.role for t in record.turns].count("assistant") < spec.min_assistant_turns:
            return Drop(f"fewer than min_assistant_turns={spec.min_assistant_turns} assistant turns")
    return record


Language = Literal["zh", "en", "other"]


class FilterLanguage(StrictModel):
    """Keep records whose detected language is listed (detection: data_recipes.lang)."""

    name: Literal["filter_language"] = "filter_language"
    keep: list[Language] = Field(description="languages to keep, e.g. [zh]")
    sample_chars: int = Field(400, ge=20, description="how many leading characters the detector reads")


def filter_language(record: Record, spec: FilterLanguage, counts: Counter) -> Record | Drop:
    """Detect the record's language from its leading text; set ``record.language``; filter."""
    from data_recipes.lang import detect_language

    text = "\n".join(record_texts(record))[: spec.sample_chars]
    language = detect_language(text)
    counts[f"detected_{language}"] += 1
    if language not in spec.keep:
        return Drop(f"language {language} not in keep={list(spec.keep)}")
    record.language = language
    return record
