"""Builders: how one record becomes rows of an output (SFT examples, prompts, pairs, tuples, text,
routing cases).

A builder is ``fn(record) -> list[dict]``; each dict holds the output-specific fields of one
row plus ``suffix`` (the row id is ``<consultation_id>#<suffix>``). The build adds the common
columns (ids, source, origin, language, provenance). ``record.language`` is set before a
builder runs. Builders never invent content: a record that cannot give a row gives none, and
the build counts it.
"""

from __future__ import annotations

import hashlib

from data_recipes.records import Record, Turn

# A row as the builder plans it, before its dicts are made: (id suffix, number of leading
# record messages it holds, turn, values of the output's other fields in rows.FIELDS order).
RowPlan = tuple[str, int, "int | None", tuple]


def _messages(turns: list[Turn]) -> list[dict]:
    return [{"role": t.role, "content": t.content} for t in turns]


def _record_messages(record: Record) -> list[dict]:
    """The record's turns as message dicts, built once per record and shared by its rows (and by
    every builder that runs on it: builders run after all transforms and never mutate them)."""
    cached = record.__dict__.get("_messages")
    if cached is None or len(cached) != len(record.turns):
        cached = record.__dict__["_messages"] = _messages(record.turns)
    return cached


def _answered_turns(turns: list[Turn]) -> list[int]:
    """Indices of assistant turns that follow a user turn (the replies a model can learn)."""
    roles = [t.role for t in turns]
    return [i for i in range(1, len(roles)) if roles[i] == "assistant" and roles[i - 1] == "user"]


def _record_answered(record: Record) -> list[int]:
    """:func:`_answered_turns` of the record, computed once and shared like its messages."""
    cached = record.__dict__.get("_answered")
    if cached is None or record.__dict__.get("_answered_of") is not record.turns:
        cached = record.__dict__["_answered"] = _answered_turns(record.turns)
        record.__dict__["_answered_of"] = record.turns
    return cached


# --- SFT -----------------------------------------------------------------------------------

def per_turn_examples_plan(record: Record) -> list[RowPlan]:
    """:func:`per_turn_examples` as row plans."""
    return [(f"t{k}", i + 1, k, ()) for k, i in enumerate(_record_answered(record))]


def per_turn_examples(record: Record) -> list[dict]:
    """One example per doctor turn: history + latest patient utterance -> the doctor's reply.

    This is ChiMed-GPT's dialogue format; a QA record gives one example. Only the last
    assistant message of each example is its target (earlier ones are history).
    """
    return _sft_rows(record, per_turn_examples_plan(record))


def whole_conversation_plan(record: Record) -> list[RowPlan]:
    """:func:`whole_conversation` as row plans."""
    answered = _record_answered(record)
    return [("conv", answered[-1] + 1, None, ())] if answered else []


def whole_conversation(record: Record) -> list[dict]:
    """One example per dialogue, up to its last doctor turn; trained with an assistant-only loss
    (every assistant message is a target; the SFT stage applies the mask)."""
    return _sft_rows(record, whole_conversation_plan(record))


def _sft_rows(record: Record, plans: list[RowPlan]) -> list[dict]:
    messages = _record_messages(record) if plans else []
    return [{"suffix": suffix, "messages": messages[:n], "turn": turn} for suffix, n, turn, _ in plans]


_ROUTING_QUESTIONS = {
    "zh": ("请问我应该挂哪个科室？", "这种情况应该去医院哪个科室就诊？", "我该看哪个科？"),
    "en": ("Which department should I see?", "Which hospital department should I go to?",
           "What kind of specialist should I see for this?"),
}
_ROUTING_ANSWERS = {"zh": "建议到{dept}就诊。", "en": "You should see {dept}."}


def routing_question(record_id: str, language: str | None) -> str:
    """The "which department should I see?" question a routing row asks, picked by a hash of the
    record id among a few phrasings (the ``policy_routing`` stage asks the same way)."""
    questions = _ROUTING_QUESTIONS["en" if language == "en" else "zh"]
    pick = int.from_bytes(hashlib.blake2b(record_id.encode(), digest_size=2).digest(), "little")
    return questions[pick % len(questions)]


def department_routing(record: Record) -> list[dict]:
    """Auxiliary task from metadata (MEDI-BERPT / RealMedDial): the patient's first message +
    "which department should I see?" -> the department in ``meta["department"]``."""
    department = record.meta.get("department")
    first_user = next((t.content for t in record.turns if t.role == "user"), None)
    if not department or not first_user:
        return []
    lang = "en" if record.language == "en" else "zh"
    return [{"suffix": "dept", "turn": None, "messages": [
        {"role": "user", "content": first_user + "\n\n" + routing_question(record.id, lang)},
        {"role": "assistant", "content": _ROUTING_ANSWERS[lang].format(dept=department)},
    ]}]


# --- prompts (for sampling, RL and evaluation; reference = the doctor's / gold answer) --------

def _prompt_plans(record: Record, indices: list[tuple[int, int]]) -> list[RowPlan]:
    department, turns = record.meta.get("department"), record.turns
    return [(f"t{k}", i, k, (turns[i].content, department)) for k, i in indices]


def _reward_prompt(record: Record) -> list[dict]:
    best = None
    if record.responses:
        ranks = record.ranks or list(range(len(record.responses)))
        best = record.responses[min(range(len(ranks)), key=ranks.__getitem__)]
    return [{"suffix": "p", "messages": _messages(record.turns), "reference": best,
             "department": record.meta.get("department"), "turn": None}]


def _unanswered(record: Record) -> list[RowPlan]:
    """A record ending with a patient turn (e.g. a KUAKE-QIC query): a prompt whose reference is
    ``meta["reference"]`` when the format has one (Med-dialog cases: the doctor's diagnosis)."""
    if record.turns and record.turns[-1].role == "user":
        meta = record.meta
        return [("open", len(record.turns), None, (meta.get("reference"), meta.get("department") or None))]
    return []


def _prompt_rows(record: Record, plans: list[RowPlan] | None) -> list[dict]:
    """Prompt rows of a chat record's plans (None: a reward record, whose prompt is its turns)."""
    if plans is None:
        return _reward_prompt(record)
    messages = _record_messages(record) if plans else []
    return [{"suffix": suffix, "messages": messages[:n], "reference": reference, "department": department,
             "turn": turn} for suffix, n, turn, (reference, department) in plans]


def per_turn_prompts_plan(record: Record) -> list[RowPlan] | None:
    """:func:`per_turn_prompts` as row plans (None for a reward record)."""
    if record.kind in ("preference", "ranked"):
        return None
    return _prompt_plans(record, list(enumerate(_record_answered(record)))) + _unanswered(record)


def per_turn_prompts(record: Record) -> list[dict]:
    """Every doctor turn as a prompt (history ending with the patient) with its reply as reference."""
    return _prompt_rows(record, per_turn_prompts_plan(record))


def final_turn_prompt_plan(record: Record) -> list[RowPlan] | None:
    """:func:`final_turn_prompt` as row plans (None for a reward record)."""
    if record.kind in ("preference", "ranked"):
        return None
    open_prompt = _unanswered(record)
    if open_prompt:
        return open_prompt
    answered = _record_answered(record)
    return _prompt_plans(record, [(len(answered) - 1, answered[-1])]) if answered else []


def final_turn_prompt(record: Record) -> list[dict]:
    """One prompt per record: the history before the last doctor turn, which is the reference
    (in a consultation, usually the diagnosis). A record ending with the patient gives an open prompt."""
    return _prompt_rows(record, final_turn_prompt_plan(record))


def first_turn_prompt_plan(record: Record) -> list[RowPlan] | None:
    """:func:`first_turn_prompt` as row plans (None for a reward record)."""
    if record.kind in ("preference", "ranked"):
        return None
    answered = _record_answered(record)
    return _prompt_plans(record, [(0, answered[0])]) if answered else _unanswered(record)


def first_turn_prompt(record: Record) -> list[dict]:
    """One prompt per record: the opening patient message, the doctor's first reply as reference."""
    return _prompt_rows(record, first_turn_prompt_plan(record))


# builder name -> its plan function, for builders whose rows are prefixes of the record's
# messages (the build gathers such rows without making their dicts; see rows.py)
PLANS = {"per_turn_examples": per_turn_examples_plan, "whole_conversation": whole_conversation_plan,
         "per_turn_prompts": per_turn_prompts_plan, "final_turn_prompt": final_turn_prompt_plan,
         "first_turn_prompt": first_turn_prompt_plan}


# --- reward data (CMD style) ---------------------------------------------------------------

def _ordered(record: Record) -> list[tuple[int, str, str | None]]:
    """(rank, response, source) sorted best first; preference records are ranked [0, 1]."""
    ranks = record.ranks if record.ranks is not None else list(range(len(record.responses or [])))
    sources = record.response_sources or [None] * len(ranks)
    return sorted(zip(ranks, record.responses or [], sources), key=lambda x: x[0])


def preference_pairs(record: Record) -> list[dict]:
    """(chosen, rejected) pairs: a preference record as is; a ranked record as every adjacent
    pair of its ranking with distinct ranks (ChiMed-GPT: doctor > GPT-4 > GPT-3.5 > weak)."""
    ordered = _ordered(record)
    rows = []
    for j, (better, worse) in enumerate(zip(ordered, ordered[1:])):
        if better[0] == worse[0]:
            continue  # a tie says nothing about which is better
        rows.append({"suffix": f"p{j}", "messages": _messages(record.turns), "chosen": better[1],
                     "rejected": worse[1], "margin": None, "turn": None})
    return rows


def ranked_tuples(record: Record) -> list[dict]:
    """One k-way tuple: responses with ranks (0 = best, ties share a rank) and their sources."""
    if not record.responses or len(record.responses) < 2:
        return []
    ranks = record.ranks if record.ranks is not None else list(range(len(record.responses)))
    return [{"suffix": "r", "messages": _messages(record.turns), "responses": list(record.responses),
             "ranks": [int(r) for r in ranks], "response_sources": record.response_sources,
             "turn": None}]


# --- pretraining text -----------------------------------------------------------------------

_SPEAKER = {"zh": {"user": "病人：", "assistant": "医生：", "system": ""},
            "en": {"user": "Patient: ", "assistant": "Doctor: ", "system": ""}}


def pretrain_text(record: Record) -> list[dict]:
    """A document as is; a dialogue or QA as plain text with speaker labels, one turn a line."""
    if record.kind == "text":
        return [{"suffix": "doc", "text": record.text, "turn": None}] if record.text else []
    labels = _SPEAKER["en" if record.language == "en" else "zh"]
    text = "\n".join(labels[t.role] + t.content for t in record.turns)
    return [{"suffix": "doc", "text": text, "turn": None}] if text else []


# --- cases (department routing and doctor recommendation, RealMedDial / MEDI-BERPT) ---------

def routing_case(record: Record) -> list[dict]:
    """One case per consultation with a department: the patient's turns before the doctor's
    first reply (the "description" a router reads), that reply, the department, the diagnosis and,
    when the source names one (RealMedDial), the doctor and the doctor's profile."""
    department = record.meta.get("department")
    first_reply = next((i for i, t in enumerate(record.turns) if t.role == "assistant"), None)
    opening = [t for t in record.turns[:first_reply] if t.role == "user"]
    if not department or not opening or first_reply is None:
        return []
    meta = record.meta
    return [{"suffix": "case", "turn": None, "messages": _messages(opening),
             "reply": record.turns[first_reply].content, "department": department,
             "diagnosis": meta.get("diagnosis"), "doctor": meta.get("doctor_id"),
             "doctor_profile": meta.get("doctor_profile")}]
