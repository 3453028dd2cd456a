"""The new-outbreak family: a few conditions the world's corpus never mentions (``data/outbreak.yaml``).

MedDialog showed transfer: a model trained on the large consultation corpus, then fine-tuned on a
small set about a new disease (CovidDialog, 1,088 dialogues), beats one trained on the small set
alone. The demo world plays that out with a made-up pathogen::

    from data_recipes.synthetic.outbreak import outbreak_conditions, iter_outbreak_blocks
    [c.key for c in outbreak_conditions()]      # ['greywing_fever', 'greywing_pneumonia', ...]
    text = "".join(iter_outbreak_blocks(1088, seed=0, lang="zh"))   # MedDialog raw text

Consultations have the shape of the world's (``consultations.make_consultation``: the doctor asks
first when information is missing, then names the diagnosis and department; the same quirks),
drawn from their own random stream, so writing them changes no other file of the corpus. The
family's names are unique across the world and the outbreak and appear in no phrase
(:func:`outbreak_problems`), so a lexicon finds them by substring, like the world's.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from functools import lru_cache

from data_recipes.synthetic.schema import Condition
from data_recipes.synthetic.tables import Outbreak, load_outbreak, outbreak_location

CORPUS_KEY = "meddialog_outbreak"          # the corpus file key (write_corpus sizes)


@lru_cache(maxsize=1)
def _loaded() -> tuple[Outbreak, tuple[Condition, ...]]:
    return load_outbreak()


def outbreak() -> Outbreak:
    """The family's table entry (name, description)."""
    return _loaded()[0]


def outbreak_conditions() -> tuple[Condition, ...]:
    """The family's conditions, in file order."""
    return _loaded()[1]


def outbreak_problems() -> list[str]:
    """Every problem of the family (field sizes, languages, departments, differentials, names
    unique across the world and the outbreak, no name in a phrase), ``file:line: `` first."""
    from data_recipes.synthetic import world

    conditions = outbreak_conditions()
    known = {**world.CONDITIONS_BY_KEY, **{c.key: c for c in conditions}}
    problems = [f"{outbreak_location(c.key)}condition {c.key!r}: key also used by the world"
                for c in conditions if c.key in world.CONDITIONS_BY_KEY]
    for cond in conditions:
        problems += world._condition_problems(cond, known, outbreak_location)
    # names across both tables; phrases of the world are checked by world_problems
    everything = tuple(world.CONDITIONS) + conditions
    problems += [p for p in world._name_problems(everything, _locate_either)
                 if not any(f"condition {c.key!r}:" in p for c in world.CONDITIONS)]
    return problems


def _locate_either(key: str, *field) -> str:
    from data_recipes.synthetic.tables import condition_location

    return outbreak_location(key, *field) or condition_location(key, *field)


def iter_outbreak_consultations(n: int, seed: int, lang: str, start_id: int = 0) -> Iterator:
    """``n`` consultations about the family's conditions (uniformly drawn) in ``lang``."""
    from data_recipes.synthetic.consultations import make_consultation

    conditions = outbreak_conditions()
    rng = random.Random(f"medalign-synth:{seed}:{lang}:{CORPUS_KEY}")
    for i in range(start_id, start_id + n):
        yield make_consultation(i, rng.choice(conditions), lang, rng)


def iter_outbreak_blocks(n: int, seed: int, lang: str, start_id: int = 0) -> Iterator[str]:
    """MedDialog raw text of ``n`` outbreak consultations, one block at a time."""
    from data_recipes.synthetic.consultations import render_block

    for consultation in iter_outbreak_consultations(n, seed, lang, start_id):
        yield render_block(consultation, lang)
