"""Who answers a scale's statements: checkpoints, OpenAI-compatible endpoints, or a demo rule.

Every respondent turns a list of prompts into a list of :class:`Answer` (the text, or the error
that kept it from answering); the text is parsed to an option afterwards
(``alignment.bias.answers``), the same way for all of them.

* a checkpoint (the bias stage's model inputs): the chat template, one user turn, the stage's
  ``sampling`` block (greedy by default);
* an endpoint (``base_url`` + ``model``; a vLLM server of your policy, OpenAI, ...): one chat
  call per statement, the key read from the environment variable ``api_key_env`` and never
  written anywhere; a failed call is an ``api_error``, counted and never scored;
* a rule (the demo, and tests): ``endorse_stigma`` agrees most with every stigmatising statement
  and disagrees most with the others (the highest score a scale gives), ``reject_stigma`` the
  reverse (the lowest), ``agree_all`` agrees with everything (acquiescence: what reverse-scored
  statements are there to catch), ``refuse`` declines every statement (all non-answers). A
  rule answers with the option's label in the scale's language, which is then parsed like any
  model's text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator

from medalign.config import StrictModel

Rule = Literal["endorse_stigma", "reject_stigma", "agree_all", "refuse"]
# what the refuse rule says (a typical assistant refusal, holding no option label)
REFUSALS = {"zh": "作为一个人工智能助手，我没有个人观点。", "en": "As an AI assistant I do not hold personal opinions."}


class RespondentSpec(StrictModel):
    """A respondent besides the stage's model inputs: a rule, or an OpenAI-compatible endpoint."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="its name in the report")
    rule: Rule | None = None                 # a demo rule (see alignment/bias/respondents.py)
    base_url: str | None = None              # an OpenAI-compatible endpoint, e.g. http://host:8000/v1
    model: str | None = None                 # the endpoint's model name
    api_key_env: str | None = None           # environment variable holding the key (never logged)
    max_tokens: int = Field(64, ge=1)        # answer cap for an endpoint
    temperature: float = Field(0.0, ge=0)    # endpoint decoding
    timeout_s: float = Field(60.0, gt=0)     # per call
    max_retries: int = Field(2, ge=0)        # retries of a failed call (the openai client's backoff)

    @model_validator(mode="after")
    def _one_kind(self) -> "RespondentSpec":
        if (self.rule is None) == (self.base_url is None):
            raise ValueError("give either rule or base_url (with model)")
        if self.base_url is not None and not self.model:
            raise ValueError("an endpoint respondent needs model")
        return self


@dataclass(frozen=True)
class Answer:
    text: str | None                 # what the respondent said (None: it could not be asked)
    error: str | None = None         # why not (an endpoint's error), counted as api_error


@dataclass(frozen=True)
class Question:
    """One statement put to a respondent."""

    prompt: str                      # the rendered prompt
    stigmatising: bool               # for the rules
    agree_label: str                 # the label of the most-agreement option, in the asked language
    disagree_label: str              # the label of the most-disagreement option
    lang: str


def rule_answers(rule: Rule, questions: list[Question]) -> list[Answer]:
    """What a demo rule says to each question (see the module docstring)."""
    out = []
    for q in questions:
        if rule == "refuse":
            out.append(Answer(REFUSALS[q.lang]))
        elif rule == "agree_all" or (rule == "endorse_stigma") == q.stigmatising:
            out.append(Answer(q.agree_label))
        else:
            out.append(Answer(q.disagree_label))
    return out


def endpoint_answers(spec: RespondentSpec, questions: list[Question], progress: bool = False) -> list[Answer]:
    """One chat call per question to ``spec.base_url``; a failed call becomes an ``Answer`` with its error."""
    import openai
    from tqdm.auto import tqdm

    key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
    if spec.api_key_env and not key:
        raise ValueError(f"respondent {spec.name!r}: environment variable {spec.api_key_env} is not set")
    client = openai.OpenAI(base_url=spec.base_url, api_key=key or "EMPTY", timeout=spec.timeout_s,
                           max_retries=spec.max_retries)
    out = []
    for q in tqdm(questions, desc=f"asking {spec.name}", disable=not progress):
        try:
            reply = client.chat.completions.create(model=spec.model, temperature=spec.temperature,
                                                   max_tokens=spec.max_tokens,
                                                   messages=[{"role": "user", "content": q.prompt}])
            text = reply.choices[0].message.content if reply.choices else None
            out.append(Answer(text) if text is not None else Answer(None, "no choices or no content"))
        except openai.OpenAIError as e:      # the message never holds the key
            out.append(Answer(None, f"{type(e).__name__}: {str(e)[:200]}"))
    return out


def checkpoint_answers(ref: str, role: str, questions: list[Question], sampling, seed: int, dtype: str,
                       device: str, progress: bool = False) -> list[Answer]:
    """A checkpoint's replies, one user turn per question."""
    from alignment.generation import generate_responses
    from alignment.models import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(ref, role)
    model = load_causal_lm(ref, role, device=device, dtype=dtype)
    prompts = [[{"role": "user", "content": q.prompt}] for q in questions]
    outs = generate_responses(model, tokenizer, prompts, sampling, k=1, seed=seed, progress=progress,
                              desc=f"asking {role}")
    return [Answer(g[0].text) for g in outs]
