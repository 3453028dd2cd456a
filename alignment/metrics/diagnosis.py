"""Clinical accuracy without an LLM: does a reply commit to the diagnosis the doctor made?

On held-out consultations the reference is the doctor's reply. When it commits to exactly one
of the *target* conditions (the conditions under study: the new-outbreak family of the demo
world, or a file of names for real data), that condition is the truth for the prompt; a reply is
correct when its diagnosis outcome is ``right`` (the project's rule,
``data_recipes.synthetic.clinical_rules.diagnosis_outcome``, the one the evaluation's clinical
metrics use: it commits to that condition alone, outside its questions, without hedging words;
naming it among others, or with "可能是", is a hedge, not a diagnosis). Prompts whose reference
commits to no target condition, or several, are not counted (the doctor asked a question, or
gave advice only).

    matcher = condition_matcher("outbreak")              # world + outbreak names
    rows = diagnosis_rows(replies, references, matcher)  # (N, 2): [correct, counted] per prompt
    ratio_of_sums(rows.sum(0))                           # accuracy over the counted prompts

Names are found by the project's one matcher (``data_recipes.synthetic.lexicon``: leftmost,
longest first, ASCII names as whole words). Every condition of the world is a name too, so a
reply that names a world condition instead is wrong, not skipped.

A file of target conditions for real data (``target_conditions: path/to/names.yaml``)::

    conditions:
      - {key: covid19, names: [新冠肺炎, 新型冠状病毒肺炎, COVID-19]}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from medalign.config import StrictModel

OUTBREAK = "outbreak"        # target_conditions naming the demo world's new-outbreak family


class TargetCondition(StrictModel):
    """A condition under study and the names a doctor writes it by."""

    key: str = Field(min_length=1, description="stable id")
    names: list[str] = Field(min_length=1, description="its names, any language (matched case-insensitively)")


class TargetConditionsFile(StrictModel):
    conditions: list[TargetCondition] = Field(min_length=1, description="the target conditions")


@dataclass(frozen=True)
class ConditionMatcher:
    """Condition names (target and world) -> keys, and which keys are targets."""

    names: object                    # data_recipes.synthetic.lexicon.NameSet
    targets: frozenset[str]

    def conditions_in(self, text: str) -> list[str]:
        """Keys of the conditions ``text`` commits to (outside its questions), first mention order."""
        from data_recipes.synthetic.clinical_rules import committed_conditions

        return committed_conditions(text or "", self.names)

    def outcome(self, reply: str, truth: str) -> str:
        """right | hedged | wrong | none of ``reply`` against the condition ``truth``."""
        from data_recipes.synthetic.clinical_rules import diagnosis_outcome

        return diagnosis_outcome(reply or "", truth, names=self.names)


def condition_matcher(target_conditions: str) -> ConditionMatcher:
    """The matcher for ``"outbreak"`` (the demo family) or a YAML file of :class:`TargetConditionsFile`.

    A missing or invalid file raises ``ConfigError`` naming the file, line and field."""
    from data_recipes.synthetic.lexicon import NameSet
    from data_recipes.synthetic.world import CONDITIONS

    names = {n.lower(): c.key for c in CONDITIONS for n in c.name.values()}
    if target_conditions == OUTBREAK:
        from data_recipes.synthetic.outbreak import outbreak_conditions

        targets = {c.key: list(c.name.values()) for c in outbreak_conditions()}
    else:
        from data_recipes.synthetic.tables import load_table

        path = Path(target_conditions)
        if not path.is_file():
            raise FileNotFoundError(f"target_conditions: {path} not found (give '{OUTBREAK}' or a YAML file "
                                    f"of {{conditions: [{{key, names}}]}})")
        targets = {c.key: c.names for c in load_table(path, TargetConditionsFile).conditions}
    for key, target_names in targets.items():
        names.update({n.lower(): key for n in target_names})
    return ConditionMatcher(NameSet.of(names), frozenset(targets))


def diagnosis_truth(reference: str | None, matcher: ConditionMatcher) -> str | None:
    """The target condition the reference names, when it names exactly one condition and that
    one is a target; else None (the prompt is not counted)."""
    named = matcher.conditions_in(reference or "")
    return named[0] if len(named) == 1 and named[0] in matcher.targets else None


def diagnosis_rows(replies: list[str], references: list[str | None], matcher: ConditionMatcher) -> list[list[int]]:
    """Per prompt ``[correct, counted]``: ``[1, 1]`` the reply commits to the true condition
    alone (outcome ``right``), ``[0, 1]`` it names none, another, several or hedges, ``[0, 0]``
    the prompt has no truth."""
    if len(replies) != len(references):
        raise ValueError(f"{len(replies)} replies but {len(references)} references")
    rows = []
    for reply, reference in zip(replies, references):
        truth = diagnosis_truth(reference, matcher)
        if truth is None:
            rows.append([0, 0])
        else:
            rows.append([int(matcher.outcome(reply, truth) == "right"), 1])
    return rows
