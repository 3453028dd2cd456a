"""Multi-turn evaluation with a simulated patient (HuatuoGPT's protocol, issue 10 §4).

A patient model plays a case from its **case card** (:class:`CaseCard`: what the patient says
first, which symptoms it tells only when asked, onset, medicines, allergies, history, and what
it says when it does not know). The doctor under test and the patient take turns:

    cards = [case_card_for(patient_case, seed=0) for ...]        # the eval-set generator does this
    conversations = run_conversations(cases, doctor, patient_judge, max_turns=4,
                                      store_dir=out / "multiturn", seed=0, progress=True)

``doctor(batch)`` gets the conversations still running (each a list of chat messages ending
with the patient's turn) and returns the next doctor turn of each; the caller wraps a
checkpoint's generation in it. A conversation ends

* ``diagnosed``: a doctor turn names a condition outside its questions (the project's one
  lexicon, ``data_recipes.synthetic.lexicon``; "could it be X?" commits to nothing); only for
  cases whose ground truth names a condition,
* ``ended_by_patient``: the patient replied with the template's end marker (the doctor's turn
  asked nothing; how real cases without ground truth end),
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
import random
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from alignment.evaluation.judge_calls import Call, CallSession, CallTemplate, Parse, summarize_runs
from data_recipes.synthetic.answers import PatientCase, patient_message
from data_recipes.synthetic.lexicon import world_lexicon
from judges.config import JudgeConfig
from judges.parsers import Parsed
from medalign.artifacts import write_json_atomic
from medalign.config import StrictModel, load_config
from medalign.errors import UserError

HERE = Path(__file__).resolve().parent
PATIENT_TEMPLATE = HERE / "prompts" / "patient.yaml"
BACKGROUND_FILE = HERE / "data" / "patient_background.yaml"
TRANSCRIPT = "patient_transcripts.jsonl"
CONVERSATIONS = "conversations.jsonl"
PARSER_VERSION = "patient-1"              # bump when parse_patient_reply's rules change
Doctor = Callable[[list[list[dict]]], list[str]]
_SENTENCE = re.compile(r"[^。！？!?.\n]+[。！？!?.\n]?")


class CaseCard(StrictModel):
    """What the simulated patient knows. Everything but ``condition`` is shown to it."""

    condition: str | None = None           # world condition key (bookkeeping, never shown); None: real case
    language: Literal["zh", "en"]          # the patient speaks this language
    intro: str = ""                        # age and sex as the patient says them ("" = not told)
    opening: str                           # the patient's first message (the case's last user turn)
    shown_symptoms: list[str] = Field(default_factory=list)     # told in the opening
    withheld_symptoms: list[str] = Field(default_factory=list)  # told only when asked; the key one first
    onset: str | None = None               # onset and duration, None = unknown to the patient
    onset_told: bool = False               # the opening already tells the onset
    medication: str = ""                   # what it says about medicines ("" = does not know)
    allergies: str = ""                    # what it says about allergies
    history: str = ""                      # what it says about past illnesses
    unknown_reply: str                     # what it says when asked anything the card does not hold

    def patient_view(self) -> dict:
        """The card as the patient sees it (the JSON in its prompt): without the condition."""
        return self.model_dump(exclude={"condition"})

    def missing_items(self) -> list[str]:
        """The key facts the opening leaves out: the key withheld symptom, the onset if untold."""
        items = self.withheld_symptoms[:1]
        return items + ([self.onset] if self.onset and not self.onset_told else [])


class PerLanguage(StrictModel):
    en: list[str] = Field(min_length=1)    # English phrases
    zh: list[str] = Field(min_length=1)    # Chinese phrases


class PatientBackground(StrictModel):
    """``data/patient_background.yaml``: what a demo patient says about its background."""

    version: int
    medication: PerLanguage
    allergies: PerLanguage
    history: PerLanguage
    unknown_reply: PerLanguage


@lru_cache(maxsize=1)
def patient_background() -> PatientBackground:
    return load_config(BACKGROUND_FILE, PatientBackground)


def case_card_for(patient_case: PatientCase, *, seed: int = 0, opening: str | None = None) -> CaseCard:
    """The case card of a synthetic-world patient (``data_recipes.synthetic.answers.PatientCase``).

    The withheld symptoms are the case's withheld one first, then the condition's other
    symptoms the opening does not tell; medicines, allergies, history and the "don't know"
    phrase are drawn (seeded by ``seed`` and the opening) from ``data/patient_background.yaml``.
    ``opening`` defaults to the patient's first message as the world writes it."""
    case, lang = patient_case, patient_case.lang
    opening = patient_message(case) if opening is None else opening
    rng = random.Random(f"{seed}|{opening}")
    others = [s for s in case.condition.symptoms[lang] if s not in case.shown and s != case.withheld]
    bg = patient_background()

    def draw(phrases: PerLanguage) -> str:
        return rng.choice(getattr(phrases, lang))
    return CaseCard(condition=case.condition.key, language=lang, intro=case.intro.strip(),
                    opening=opening, shown_symptoms=list(case.shown),
                    withheld_symptoms=[case.withheld, *others], onset=case.onset,
                    onset_told=case.complete, medication=draw(bg.medication),
                    allergies=draw(bg.allergies), history=draw(bg.history),
                    unknown_reply=draw(bg.unknown_reply))


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
    diagnosis: list[str] = field(default_factory=list)   # condition keys the ending turn named
    patient_judgment_ids: list[str] = field(default_factory=list)
    patient_error: str | None = None      # why the failed patient call failed
    flags: list[str] = field(default_factory=list)       # patient_named_condition, call flags

    @property
    def turns(self) -> list[dict]:
        """The turns played after the case's own messages."""
        return self.messages[self.opening_turns:]


def _card(case: dict) -> CaseCard | None:
    """The case's card (None: it has none); a bad one is a UserError naming case and field."""
    cid = case.get("case_id")
    messages = case.get("messages")
    if not isinstance(cid, str) or not cid:
        raise UserError(f"eval case {cid!r}: case_id: expected non-empty text")
    if not isinstance(messages, list) or not messages or messages[-1].get("role") != "user":
        raise UserError(f"eval case {cid}: messages: expected a chat ending with the patient's turn")
    raw = case.get("case_card")
    if raw is None:
        return None
    try:
        return CaseCard.model_validate(json.loads(raw) if isinstance(raw, str) else raw)
    except (ValueError, ValidationError) as e:
        errors = e.errors() if isinstance(e, ValidationError) else [{"loc": (), "msg": str(e)}]
        where = ".".join(str(p) for p in errors[0]["loc"])
        raise UserError(f"eval case {cid}: case_card{'.' + where if where else ''}: "
                        f"{errors[0]['msg']}") from None


def _has_truth(case: dict) -> bool:
    truth = case.get("truth")
    truth = json.loads(truth) if isinstance(truth, str) else truth
    return bool(truth and truth.get("condition"))


def _start(case: dict) -> Conversation:
    messages = [dict(m) for m in case["messages"]]
    status = "running" if case.get("case_card") is not None else "no_case_card"
    return Conversation(case["case_id"], case.get("eval_set", ""), case.get("language", ""),
                        messages, len(messages), status)


def named_diagnosis(text: str) -> list[str]:
    """Condition keys a doctor turn names outside its questions, in order of first mention."""
    statements = [s for s in _SENTENCE.findall(text) if not s.rstrip().endswith(("?", "？"))]
    return world_lexicon().find_conditions(" ".join(statements))


def _doctor_turns(doctor: Doctor, active: list[Conversation], cases: dict[str, dict]) -> None:
    """One doctor turn for every running conversation; ends those that name a condition."""
    replies = doctor([list(c.messages) for c in active])
    if len(replies) != len(active):
        raise ValueError(f"the doctor returned {len(replies)} turns for {len(active)} conversations")
    for conv, reply in zip(active, replies):
        conv.messages.append({"role": "assistant", "content": reply})
        conv.doctor_turns += 1
        named = named_diagnosis(reply)
        if named and _has_truth(cases[conv.case_id]):
            conv.status, conv.diagnosis = "diagnosed", named


def _patient_turns(session: CallSession, template: PatientTemplate, active: list[Conversation],
                   cards: dict[str, CaseCard]) -> None:
    """One patient turn for every running conversation (one batch of calls)."""
    calls = []
    for conv in active:
        card = cards[conv.case_id]
        calls.append(Call(f"{conv.case_id}#t{conv.doctor_turns}",
                          patient_messages(template, card, conv.turns), card.language,
                          shown={"A": conv.messages[-1]["content"]},
                          shown_ids={"A": f"{conv.case_id}#doctor{conv.doctor_turns}"},
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


def run_conversations(cases: list[dict], doctor: Doctor, patient_judge: JudgeConfig, *,
                      max_turns: int, store_dir: Path, seed: int, progress: bool = False
                      ) -> list[Conversation]:
    """Play every case (see the module docstring); one :class:`Conversation` per case, in order."""
    if max_turns < 1:
        raise ValueError(f"max_turns must be at least 1, got {max_turns}")
    cfg = patient_judge if patient_judge.seed is None else patient_judge.model_copy(update={"seed": seed})
    template = load_patient_template(cfg.template)
    cards = {c["case_id"]: card for c in cases if (card := _card(c)) is not None}
    by_id = {c["case_id"]: c for c in cases}
    if len(by_id) != len(cases):
        raise UserError("eval cases: case_id values must be unique")
    conversations = [_start(c) for c in cases]
    store_dir = Path(store_dir)
    with CallSession(cfg, template, parse_patient_reply(template), store_dir, TRANSCRIPT,
                     PARSER_VERSION) as session:
        bar = _bar(max_turns, progress)
        for turn in range(1, max_turns + 1):
            active = [c for c in conversations if c.status == "running"]
            if not active:
                break
            _doctor_turns(doctor, active, by_id)
            active = [c for c in active if c.status == "running"]
            if turn == max_turns:
                for conv in active:
                    conv.status = "max_turns"
            elif active:
                _patient_turns(session, template, active, cards)
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
