"""Does a generated reply route the patient to the right department?

The project's rule (``data_recipes.synthetic.clinical_rules.department_outcome``, the one the
evaluation's department accuracy uses): a reply routes correctly when it names the gold
department and no other (a reply that lists several departments has not routed anyone).
Departments are found with the project's one lexicon (the world's department names in every
language plus common department names, so "请去消化内科看看" is understood); a gold department
the lexicon does not know is looked for by its own name.

    routed_department("考虑偏头痛，建议神经内科就诊。", "神经内科")  # {"correct": True, "named": "neurology", ...}
"""

from __future__ import annotations


def routed_department(reply: str, gold: str) -> dict:
    """``{"correct", "outcome" (right | hedged | wrong | none), "named" (first department key
    named, or None), "gold_key" (None: unknown to the lexicon), "gold_anywhere" (the gold
    department named anywhere)}``."""
    from data_recipes.synthetic.clinical_rules import department_outcome
    from data_recipes.synthetic.lexicon import world_lexicon

    lexicon = world_lexicon()
    named = lexicon.find_departments(reply)
    gold_key = lexicon.department_names.get(gold.strip().lower())
    outcome = department_outcome(reply, gold_key, [gold])
    return {"correct": outcome == "right", "outcome": outcome, "named": named[0] if named else None,
            "gold_key": gold_key, "gold_anywhere": outcome in ("right", "hedged")}
