"""A compact way to write the world's condition table by hand.

Each text field is given as a pair of ``"|"``-separated strings, Chinese first, English second,
so that one condition fits on a screen and the two languages stay side by side::

    condition("migraine", "neurology", "偏头痛", "migraine",
              symptoms=("一侧头部搏动样疼痛|怕光怕吵", "throbbing pain on one side|..."), ...)

Grammar of the phrases (the generator composes them into sentences, see ``phrasing.py``):

* ``symptoms``: zh a clause without subject ("怕光怕吵"); en a noun phrase usable after
  "I have" ("sensitivity to light and noise").
* ``onset``: zh a clause ("最近一个月发作了三四次"); en an independent clause in lower case
  ("it has happened three or four times this month").
* ``advice``: an imperative clause, en in lower case ("keep a regular sleep schedule").
* ``red_flags``: zh fits "如果出现……"; en a noun phrase that fits "if you notice ...".
* ``follow_up``: complete questions ending with "？" / "?".

No phrase may contain a condition or department name (``world.validate_world`` checks it), so
that a name in a generated answer is always put there on purpose by a template.
"""

from __future__ import annotations

from data_recipes.synthetic.schema import Condition

Pair = tuple[str, str]


def _split(pair: Pair) -> dict[str, tuple[str, ...]]:
    zh, en = pair
    return {
        "zh": tuple(p.strip() for p in zh.split("|")),
        "en": tuple(p.strip() for p in en.split("|")),
    }


def condition(
    key: str,
    department: str,
    zh_name: str,
    en_name: str,
    *,
    symptoms: Pair,
    onset: Pair,
    advice: Pair,
    red_flags: Pair,
    follow_up: Pair,
    differentials: tuple[str, ...],
) -> Condition:
    """Build a :class:`Condition` from ``"|"``-separated zh/en phrase lists."""
    return Condition(
        key=key,
        department=department,
        name={"zh": zh_name, "en": en_name},
        symptoms=_split(symptoms),
        onset=_split(onset),
        advice=_split(advice),
        red_flags=_split(red_flags),
        follow_up_questions=_split(follow_up),
        differentials=tuple(differentials),
    )
