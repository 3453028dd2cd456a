"""The closed transform registry. A name in a recipe is the name of the function it runs.

Two families:

* record transforms (a source's ``transforms:`` list), ``fn(record, spec, counts) -> Record | Drop``:
  description_as_first_turn, merge_consecutive_speakers, normalize_roles, drop_closing_courtesies,
  filter_length, filter_language, scrub_pii.
  Each has a spec model (its YAML parameters), written ``- scrub_pii`` or
  ``- {name: filter_length, max_chars: 2000}``.
* builders (``build:`` of an output's mix component), ``fn(record) -> list[row dict]``:
  see :data:`BUILDERS` (per output) and ``builders.py``.

Dedup (exact and MinHash near-duplicates) and decontamination work across records and sources,
so they are recipe sections (``dedup:``, ``decontaminate:``), implemented in ``dedup.py`` and
``decontaminate.py``.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any, Callable, Union

from pydantic import BeforeValidator, Field

from data_recipes.records import Record
from data_recipes.transforms import builders
from data_recipes.transforms.description import DescriptionAsFirstTurn, description_as_first_turn
from data_recipes.transforms.filters import FilterLanguage, FilterLength, filter_language, filter_length
from data_recipes.transforms.pii import ScrubPii, scrub_pii
from data_recipes.transforms.speakers import (
    Drop,
    DropClosingCourtesies,
    MergeConsecutiveSpeakers,
    NormalizeRoles,
    drop_closing_courtesies,
    merge_consecutive_speakers,
    normalize_roles,
)

__all__ = ["Drop", "RECORD_TRANSFORMS", "TransformSpec", "BUILDERS", "BUILDER_KINDS",
           "DEFAULT_BUILDER", "OUTPUT_KINDS", "apply_transforms"]

RECORD_TRANSFORMS: dict[str, tuple[Callable, type]] = {
    fn.__name__: (fn, spec) for fn, spec in [
        (description_as_first_turn, DescriptionAsFirstTurn),
        (merge_consecutive_speakers, MergeConsecutiveSpeakers),
        (normalize_roles, NormalizeRoles),
        (drop_closing_courtesies, DropClosingCourtesies),
        (filter_length, FilterLength),
        (filter_language, FilterLanguage),
        (scrub_pii, ScrubPii),
    ]
}


def _shorthand(value: Any) -> Any:
    """``- scrub_pii`` means ``- {name: scrub_pii}``."""
    return {"name": value} if isinstance(value, str) else value


TransformSpec = Annotated[
    Annotated[Union[tuple(spec for _, spec in RECORD_TRANSFORMS.values())],  # type: ignore[misc]
              Field(discriminator="name")],
    BeforeValidator(_shorthand),
]

OUTPUT_KINDS = ("sft", "prompts", "preferences", "ranked", "pretrain", "cases")

# output kind -> builder name -> function (names equal function names by construction)
BUILDERS: dict[str, dict[str, Callable[[Record], list[dict]]]] = {
    output: {fn.__name__: fn for fn in fns} for output, fns in {
        "sft": [builders.per_turn_examples, builders.whole_conversation, builders.department_routing],
        "prompts": [builders.final_turn_prompt, builders.per_turn_prompts, builders.first_turn_prompt],
        "preferences": [builders.preference_pairs],
        "ranked": [builders.ranked_tuples],
        "pretrain": [builders.pretrain_text],
        "cases": [builders.routing_case],
    }.items()
}
DEFAULT_BUILDER = {"sft": "per_turn_examples", "prompts": "final_turn_prompt",
                   "preferences": "preference_pairs", "ranked": "ranked_tuples", "pretrain": "pretrain_text",
                   "cases": "routing_case"}

_CHAT = frozenset({"dialogue", "qa"})
_REWARD = frozenset({"preference", "ranked"})
# builder name -> record kinds it can turn into rows
BUILDER_KINDS: dict[str, frozenset[str]] = {
    "per_turn_examples": _CHAT, "whole_conversation": _CHAT, "department_routing": _CHAT,
    "final_turn_prompt": _CHAT | _REWARD, "per_turn_prompts": _CHAT | _REWARD,
    "first_turn_prompt": _CHAT | _REWARD,
    "preference_pairs": _REWARD, "ranked_tuples": _REWARD,
    "pretrain_text": _CHAT | {"text"},
    "routing_case": _CHAT,
}


def apply_transforms(record: Record, specs: list, counters: dict[str, Counter]) -> Record | tuple[str, Drop]:
    """Run a source's transforms in order; ``(transform name, Drop)`` when one removes the record.

    ``counters`` maps a transform name to its Counter (created on first use).
    """
    for spec in specs:
        fn = RECORD_TRANSFORMS[spec.name][0]
        counts = counters.get(spec.name)
        if counts is None:
            counts = counters[spec.name] = Counter()
        result = fn(record, spec, counts)
        if isinstance(result, Drop):
            return spec.name, result
        record = result
    return record
