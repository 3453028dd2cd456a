"""Does a generated reply route the patient to the right department?

The department a reply names is found with the project's one lexicon
(``data_recipes.synthetic.lexicon.world_lexicon``: the world's department names in every language
plus common department names, so "请去消化内科看看" is understood). A reply routes correctly when
the FIRST department it names is the gold one (a reply that lists several departments has not
routed anyone); a gold department the lexicon does not know is looked for by its own name.

    routed_department("考虑偏头痛，建议神经内科就诊。", "神经内科")  # {"correct": True, "named": "neurology", ...}
"""

from __future__ import annotations


def _lexicon():
    from data_recipes.synthetic.lexicon import world_lexicon

    return world_lexicon()


def routed_department(reply: str, gold: str) -> dict:
    """``{"correct", "named" (first department key named, or None), "gold_key" (None: unknown to
    the lexicon), "gold_anywhere" (the gold department named anywhere)}``."""
    lexicon = _lexicon()
    named = lexicon.find_departments(reply)
    gold_key = lexicon.department_names.get(gold.strip().lower())
    if gold_key is None:                               # outside the lexicon: its own name, first
        at = reply.find(gold.strip())
        return {"correct": at >= 0 and not _named_before(lexicon, reply, at), "named": named[0] if named else None,
                "gold_key": None, "gold_anywhere": at >= 0}
    return {"correct": bool(named) and named[0] == gold_key, "named": named[0] if named else None,
            "gold_key": gold_key, "gold_anywhere": gold_key in named}


def _named_before(lexicon, reply: str, at: int) -> bool:
    """Does the reply name a lexicon department before position ``at``?"""
    return bool(lexicon.find_departments(reply[:at]))
