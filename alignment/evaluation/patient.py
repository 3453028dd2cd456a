"""Multi-turn evaluation with a simulated patient (HuatuoGPT's protocol, issue 10 §4).

A patient model plays a case from its **case card** (:class:`~data_recipes.synthetic.case_cards.CaseCard`,
the ``case_card`` column of an eval set: what the patient says first, which symptoms it tells
only when asked, onset, medicines, allergies, history, and what it says when it does not know).
The doctor under test and the patient take turns:

    conversations = run_conversations(cases, doctor, patient_judge, max_turns=4,
                                      store_dir=out / "multi_turn" / "sft", seed=0, progress=True)

``cases`` are eval cases (:class:`alignment.evaluation.cases.Case`). ``doctor(batch)`` gets the
conversations still running (each a list of chat messages ending with the patient's turn) and
returns the next doctor turn of each (:func:`alignment.evaluation.multi_turn.checkpoint_doctor`
wraps a checkpoint's cached generation in it). A conversation ends

* ``diagnosed``: a doctor turn commits to a condition (the project's rule,
  ``data_recipes.synthetic.clinical_rules.committed_conditions``: a condition named outside the
  turn's questions; "could it be X?" commits to nothing); only for cases whose ground truth
  names a condition,
* ``ended_by_patient``: the patient replied with the template's end marker (the doctor's turn
  asked nothing; how cases without ground truth end),
* ``max_turns``: after ``max_turns`` doctor turns,
* ``patient_<status>`` (``patient_api_error``, ``patient_parse_error``, ``patient_refused``,
  ``patient_not_run``): a patient call failed; the conversation stops there, never with a
  made-up answer,
* ``no_case_card``: the case has no card (it is not played).

The patient is any OpenAI-compatible endpoint (``patient_judge``, a :class:`JudgeConfig`; the
local judge server's ``medalign-patient`` model for the demo world), called through the judges
engine (:mod:`alignment.evaluation.judge_calls`): every patient call is a transcript row in
``store_dir/patient_transcripts.jsonl`` (hash-chained, no secrets), the conversations go to
``store_dir/conversations.jsonl``. Its prompt is the versioned template
``alignment/evaluation/prompts/patient.yaml`` (zh/en), or ``patient_judge.template`` when that
is a YAML path. ``seed`` is sent as the patient's request seed (unless ``patient_judge.seed`` is
None: then no seed is sent). Scoring: :mod:`alignment.evaluation.conversation_scores`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from pydantic import Field

from alignment.evaluation.cases import Case
from alignment.evaluation.judge_calls import Call, CallSession, CallTemplate, Parse, summarize_runs
from data_recipes.synthetic.case_cards import CaseCard
from data_recipes.synthetic.clinical_rules import committed_conditions
from data_recipes.synthetic.lexicon import world_lexicon
from judges.config import JudgeConfig
from judges.parsers import Parsed
from medalign.artifacts import write_json_atomic
from medalign.config import StrictModel, load_config
from medalign.errors import UserError

HERE = Path(__file__).resolve().parent
PATIENT_TEMPLATE = HERE / "prompts" / "patient.yaml"
TRANSCRIPT = "patient_transcripts.jsonl"
CONVERSATIONS = "conversations.jsonl"
PARSER_VERSION = "patient-1"              # bump when parse_patient_reply's rules change
ENDED = ("diagnosed", "ended_by_patient", "max_turns")   # conversations that ended on their own
Doctor = Callable[[list[list[dict]]], list[str]]


# --------------------------------------------------------------------------------------------
# The patient's prompt and replies
# --------------------------------------------------------------------------------------------

class PatientVariant(StrictModel):
    system: str                            # with {card} (the card's JSON) and {end_marker}


class PatientTemplate(CallTemplate):
    """``prompts/patient.yaml`` (or a user's YAML of the same shape)."""

    end_marker: str = "[[END]]"            # the patient's whole reply when the consultation is over
    refusal_patterns: list[str] = Field(default_factory=list)  # regexes: the model left its role
    variants: dict[str, PatientVariant]    # language -> prompt


@lru_cache(maxsize=8)
def load_patient_template(ref: str | None = None) -> PatientTemplate:
    """The built-in patient template, or a YAML file of the same shape (``ref`` ends in .yaml)."""
    path = Path(ref) if ref and ref.endswith((".yaml", ".yml")) else PATIENT_TEMPLATE
    return load_config(path, PatientTemplate)


def patient_messages(template: PatientTemplate, card: CaseCard, turns: list[dict]) -> list[dict]:
    """The patient's request: the system prompt with its card, then the consultation after the
    opening from the patient's side (doctor turns -> ``user``, patient turns -> ``assistant``)."""
    variant = template.variants.get(card.language) or next(iter(template.variants.values()))
    card_json = json.dumps(card.patient_view(), ensure_ascii=False, indent=1)
    system = variant.system.format(card=card_json, end_marker=template.end_marker)
    flipped = {"assistant": "user", "user": "assistant"}
    return [{"role": "system", "content": system}] + [
        {"role": flipped[t["role"]], "content": t["content"]} for t in turns if t["role"] in flipped]


def parse_patient_reply(template: PatientTemplate) -> Parse:
    """The status rule of a patient reply: empty or cut by max_tokens -> ``parse_error``; out of
    its role (``refusal_patterns``) -> ``refused``; anything else is the patient's answer."""
    patterns = [re.compile(p, re.IGNORECASE) for p in template.refusal_patterns]

    def parse(text: str | None, finish_reason: str | None) -> Parsed:
        if text is None or not text.strip():
            return Parsed("parse_error", error="empty patient reply")
        if finish_reason == "length":
            return Parsed("parse_error", error="truncated: the patient reply hit max_tokens")
        if any(p.search(text) for p in patterns):
            return Parsed("refused", error="the patient model left its role: " + text.strip()[:160])
        return Parsed("ok")
    return parse


# --------------------------------------------------------------------------------------------
# Running conversations
# --------------------------------------------------------------------------------------------

@dataclass
class Conversation:
    """One played case: the whole chat (doctor's view) and how it ended."""

    case_id: str
    eval_set: str
    language: str
    messages: list[dict]                  # the case's messages, then doctor / patient turns
    opening_turns: int                    # how many of ``messages`` came with the case
    status: str                           # see the module docstring
    doctor_turns: int = 0
    diagnosis: list[str] = field(default_factory=list)   # condition keys the ending turn committed to
    patient_judgment_ids: list[str] = field(default_factory=list)
    patient_error: str | None = None      # why the failed patient call failed
    flags: list[str] = field(default_factory=list)       # patient_named_condition, call flags

    @property
    def key(self) -> str:
        """``<eval set>/<case id>``, as :attr:`Case.key`."""
        return f"{self.eval_set}/{self.case_id}"

    @property
    def turns(self) -> list[dict]:
        """The turns played after the case's own messages."""
        return self.messages[self.opening_turns:]


def _has_truth(case: Case) -> bool:
    return case.truth is not None and bool(case.truth.condition)


def _start(case: Case) -> Conversation:
    messages = [dict(m) for m in case.messages]
    status = "running" if case.case_card is not None else "no_case_card"
    return Conversation(case.case_id, case.eval_set, case.language or "", messages, len(messages), status)


def named_diagnosis(text: str) -> list[str]:
    """Condition keys a doctor turn commits to (outside its questions), in order of first mention."""
    return committed_conditions(text)


def _doctor_turns(doctor: Doctor, active: list[Conversation], cases: dict[str, Case]) -> None:
    """One doctor turn for every running conversation; ends those that commit to a condition."""
    replies = doctor([list(c.messages) for c in active])
    if len(replies) != len(active):
        raise ValueError(f"the doctor returned {len(replies)} turns for {len(active)} conversations")
    for conv, reply in zip(active, replies):
        conv.messages.append({"role": "assistant", "content": reply})
        conv.doctor_turns += 1
        named = named_diagnosis(reply)
        if named and _has_truth(cases[conv.key]):
            conv.status, conv.diagnosis = "diagnosed", named


def _patient_turns(session: CallSession, template: PatientTemplate, active: list[Conversation],
                   cases: dict[str, Case]) -> None:
    """One patient turn for every running conversation (one batch of calls)."""
    calls = []
    for conv in active:
        card = cases[conv.key].case_card
        calls.append(Call(f"{conv.key}#t{conv.doctor_turns}",
                          patient_messages(template, card, conv.turns), card.language,
                          shown={"A": conv.messages[-1]["content"]},
                          shown_ids={"A": f"{conv.key}#doctor{conv.doctor_turns}"},
                          tags={"eval_set": conv.eval_set}))
    lexicon = world_lexicon()
    for conv, result in zip(active, session.run(calls)):
        conv.patient_judgment_ids.append(result.judgment_id)
        conv.flags = sorted(set(conv.flags) | set(result.flags))
        if result.status != "ok":
            conv.status, conv.patient_error = f"patient_{result.status}", result.error
        elif template.end_marker in result.text:
            conv.status = "ended_by_patient"
        else:
            if lexicon.find_conditions(result.text):
                conv.flags = sorted(set(conv.flags) | {"patient_named_condition"})
            conv.messages.append({"role": "user", "content": result.text.strip()})


def run_conversations(cases: list[Case], doctor: Doctor, patient_judge: JudgeConfig, *,
                      max_turns: int, store_dir: Path, seed: int, progress: bool = False
                      ) -> list[Conversation]:
    """Play every case (see the module docstring); one :class:`Conversation` per case, in order."""
    if max_turns < 1:
        raise ValueError(f"max_turns must be at least 1, got {max_turns}")
    by_key = {c.key: c for c in cases}
    if len(by_key) != len(cases):
        raise UserError("eval cases: <eval set>/<case id> must be unique")
    cfg = patient_judge if patient_judge.seed is None else patient_judge.model_copy(update={"seed": seed})
    template = load_patient_template(cfg.template)
    conversations = [_start(c) for c in cases]
    store_dir = Path(store_dir)
    with CallSession(cfg, template, parse_patient_reply(template), store_dir, TRANSCRIPT,
                     PARSER_VERSION) as session:
        bar = _bar(max_turns, progress)
        for turn in range(1, max_turns + 1):
            active = [c for c in conversations if c.status == "running"]
            if not active:
                break
            _doctor_turns(doctor, active, by_key)
            active = [c for c in active if c.status == "running"]
            if turn == max_turns:
                for conv in active:
                    conv.status = "max_turns"
            elif active:
                _patient_turns(session, template, active, by_key)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(running=sum(c.status == "running" for c in conversations))
        if bar is not None:
            bar.close()
    write_conversations(store_dir / CONVERSATIONS, conversations)
    write_json_atomic(store_dir / "patient_calls.json", session_summary(session))
    return conversations


def session_summary(session: CallSession) -> dict:
    """What the patient calls cost: calls, cache hits, tokens, statuses (``patient_calls.json``)."""
    return {"model": session.cfg.model, "endpoint": session.cfg.endpoint_identity(),
            "template_id": session.template.id, "template_hash": session.template.hash,
            **summarize_runs(session.stats)}


def _bar(total: int, progress: bool):
    if not progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc="multi-turn", unit="turn")


def write_conversations(path: Path, conversations: list[Conversation]) -> None:
    """All conversations as JSON lines (written to a temporary file, then renamed)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for conv in conversations:
            f.write(json.dumps(asdict(conv), ensure_ascii=False, sort_keys=True) + "\n")
    tmp.replace(path)


def read_conversations(path: Path) -> list[Conversation]:
    """The conversations of a ``conversations.jsonl``."""
    with open(path, encoding="utf-8") as f:
        return [Conversation(**json.loads(line)) for line in f if line.strip()]
