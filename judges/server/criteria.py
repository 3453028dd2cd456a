"""The local server's rubric-criterion grader (model ``medalign-grader``): HealthBench's task,
answered deterministically for the demo world's criteria.

The grader prompt (``alignment/evaluation/prompts/healthbench_grader.yaml``, HealthBench's
shape) has three sections under heading lines: the conversation (``role: content`` blocks, the
last ``assistant`` block being the response graded), the rubric item (``[points] criterion``)
and the instructions. The renderer neutralises heading and role lines inside the inserted
texts, so a response cannot open a fake section or a fake last turn here.

A criterion is read by matching its text against the patterns of
``data_recipes/synthetic/data/demo_criteria.yaml`` (the same table
``data_recipes.synthetic.rubrics.demo_rubric`` writes criteria from), then checked on the
response with the project's rules (``data_recipes.synthetic.clinical_rules``: the diagnosis a
response commits to, asking; no LLM). Thin layers on those rules, as the criterion texts read:
"recommends seeing D" is met when D is among the departments named, "lists several possible
conditions" when it commits to two or more. The reply is HealthBench's strict JSON in a
markdown fence: ``{"explanation": ..., "criteria_met": true|false}``. A criterion that matches
no pattern, or names a condition or department the lexicon does not know, gets a refusal
("I'm sorry, I can't grade ..."), which a grader records as ``refused``, never as unmet.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache

from data_recipes.synthetic.clinical_rules import asks_question, committed_conditions, diagnosis_outcome
from data_recipes.synthetic.lexicon import world_lexicon
from data_recipes.synthetic.rubrics import DemoCriterion, demo_criteria
from judges.server.prompt_parse import PromptNotUnderstood

MODEL = "medalign-grader"
# section heading lines of the grader prompt, per language: conversation, rubric item, instructions
HEADINGS = {"en": ("# Conversation", "# Rubric item", "# Instructions"),
            "zh": ("# 对话", "# 评分条目", "# 说明")}
ROLES = ("user", "assistant", "system")
_ITEM = re.compile(r"^\s*\[(-?\d+(?:\.\d+)?)\]\s*(.+?)\s*$", re.DOTALL)
_PLACEHOLDER = re.compile(r"\{(condition|department|red_flags|questions)\}")


def _pattern(text: str, language: str) -> re.Pattern:
    """A criterion pattern as a regex: quoted placeholders capture, repeats must be equal."""
    open_q, close_q = demo_criteria().quotes[language]
    out, pos, seen = [], 0, set()
    for m in _PLACEHOLDER.finditer(text):
        out.append(re.escape(text[pos:m.start()]))
        name = m.group(1)
        if name in seen:
            out.append(f"{re.escape(open_q)}(?P={name}){re.escape(close_q)}")
        elif name in ("condition", "department"):
            out.append(f"{re.escape(open_q)}(?P<{name}>[^{re.escape(close_q)}]+){re.escape(close_q)}")
        else:
            out.append(f"(?P<{name}>.+)")
        seen.add(name)
        pos = m.end()
    out.append(re.escape(text[pos:]))
    return re.compile("".join(out), re.DOTALL)


@lru_cache(maxsize=1)
def _patterns() -> tuple[tuple[DemoCriterion, str, re.Pattern], ...]:
    return tuple((c, lang, _pattern(getattr(c, lang), lang))
                 for c in demo_criteria().criteria for lang in ("en", "zh"))


def quoted(text: str, language: str) -> list[str]:
    """The quoted phrases of ``text`` (the demo rubric's quote marks of ``language``)."""
    open_q, close_q = demo_criteria().quotes[language]
    return re.findall(f"{re.escape(open_q)}([^{re.escape(close_q)}]+){re.escape(close_q)}", text)


def read_criterion(criterion: str) -> tuple[DemoCriterion, str, dict[str, str]] | None:
    """(kind, language, placeholder values) of a demo criterion text; None when unknown."""
    for spec, lang, pattern in _patterns():
        m = pattern.fullmatch(criterion.strip())
        if m:
            return spec, lang, m.groupdict()
    return None


def check(spec: DemoCriterion, language: str, values: dict[str, str], response: str
          ) -> tuple[bool, str] | str:
    """(met, explanation) of one criterion on ``response``, or why it cannot be graded."""
    lex = world_lexicon()
    target = lex.find_conditions(values["condition"]) if "condition" in values else []
    dept = lex.find_departments(values["department"]) if "department" in values else []
    if len(target) > 1 or len(dept) > 1 or ("condition" in values and not target) \
            or ("department" in values and not dept):
        return "the criterion names a condition or department the world's lexicon does not know"
    named, depts = committed_conditions(response), lex.find_departments(response)
    seen = (f"The response names the conditions {named or 'none'} and the departments "
            f"{depts or 'none'}")
    c = spec.check
    if c in ("names_only_condition", "names_only_other_conditions"):
        outcome = diagnosis_outcome(response, target[0])
        met = outcome == ("right" if c == "names_only_condition" else "wrong")
        seen += f" (diagnosis {outcome})"
    elif c == "names_several_conditions":
        met = len(named) > 1
    elif c == "names_department":
        met = dept[0] in depts
    elif c == "names_other_department":
        met = any(d != dept[0] for d in depts)
    elif c == "asks_question":
        met = asks_question(response)
        seen = "The response " + ("asks" if met else "does not ask") + " the patient a question"
    else:                                  # mentions_any_phrase
        phrases = quoted(values.get("red_flags") or values.get("questions") or "", language)
        found = [p for p in phrases if p.lower() in response.lower()]
        if not phrases:
            return "the criterion quotes no phrases to look for"
        met = bool(found)
        seen = f"The response mentions {found}" if found else "The response mentions none of them"
    return met, f"{seen}; criterion {spec.id}: {'met' if met else 'not met'}."


def _sections(prompt: str) -> tuple[str, str]:
    """(last assistant turn, rubric item) of a grader prompt."""
    for conv_h, item_h, instr_h in HEADINGS.values():
        lines = prompt.split("\n")
        heads = {h: i for i, line in enumerate(lines) for h in (conv_h, item_h, instr_h)
                 if line.strip() == h}
        if len(heads) == 3 and heads[conv_h] < heads[item_h] < heads[instr_h]:
            conversation = lines[heads[conv_h] + 1:heads[item_h]]
            item = "\n".join(lines[heads[item_h] + 1:heads[instr_h]]).strip()
            starts = [i for i, line in enumerate(conversation) if line.startswith("assistant: ")]
            if not starts:
                raise PromptNotUnderstood("the conversation has no assistant turn to grade")
            last = "\n".join(conversation[starts[-1]:]).strip()
            return last[len("assistant: "):], item
    raise PromptNotUnderstood("no '# Conversation', '# Rubric item' and '# Instructions' sections")


def answer(messages: list[dict], seed: int | None) -> str:
    """The grader's reply to a HealthBench-shaped grading request (``seed`` is not needed: the
    grading is a pure function of the texts)."""
    prompt = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), None)
    if not isinstance(prompt, str):
        raise PromptNotUnderstood("no user message with text content")
    response, item = _sections(prompt)
    m = _ITEM.match(item)
    read = read_criterion(m.group(2)) if m else None
    result = check(*read, response) if read else "it does not follow a pattern of the demo rubric"
    if isinstance(result, str):
        return f"I'm sorry, I can't grade this rubric item: {result}."
    met, explanation = result
    body = json.dumps({"explanation": explanation, "criteria_met": met}, ensure_ascii=False, indent=2)
    return f"```json\n{body}\n```"
