"""Read a judge prompt back into its parts, as the local rubric server needs them.

The server understands the built-in templates (``judges/prompts/``) in zh and en, and any user
template that uses the same section marker lines (``huatuo_referee_multiturn`` names its
sections "first message" and "consultation A/B": they are read as the question and the two
responses). Sections are delimited by whole-line
markers such as ``[Response A]`` / ``[回答A]``; the renderer neutralises marker strings inside the
inserted texts, so a candidate response cannot forge a section here. The kind of task is read
from the answer format the prompt asks for.
"""

from __future__ import annotations

from dataclasses import dataclass

# marker line -> (section, language)
MARKERS: dict[str, tuple[str, str]] = {
    "[Conversation history]": ("history", "en"),
    "[Patient's last question]": ("question", "en"),
    "[Standard answer from the doctor]": ("reference", "en"),
    "[Response A]": ("a", "en"),
    "[Response B]": ("b", "en"),
    "[Response]": ("single", "en"),
    "[End of responses]": ("end", "en"),
    "[End of response]": ("end", "en"),
    "[Patient's first message]": ("question", "en"),
    "[Consultation A]": ("a", "en"),
    "[Consultation B]": ("b", "en"),
    "[End of consultations]": ("end", "en"),
    "[对话历史]": ("history", "zh"),
    "[患者最后的问题]": ("question", "zh"),
    "[医生的标准答案]": ("reference", "zh"),
    "[回答A]": ("a", "zh"),
    "[回答B]": ("b", "zh"),
    "[回答]": ("single", "zh"),
    "[回答结束]": ("end", "zh"),
    "[患者的第一条消息]": ("question", "zh"),
    "[问诊A]": ("a", "zh"),
    "[问诊B]": ("b", "zh"),
    "[问诊结束]": ("end", "zh"),
}
NO_REFERENCE = {"(no standard answer given)", "（无标准答案）", "(none)", "（无）"}


class PromptNotUnderstood(ValueError):
    """The prompt does not have the sections the rubric needs."""


@dataclass
class JudgePrompt:
    kind: str                             # pairwise_rating | pairwise_verdict | single_rating
    language: str                         # zh | en
    question: str
    reference: str | None
    responses: dict[str, str]             # "A"/"B" (pairwise) or "A" (single) -> text
    history: str


def parse_prompt(messages: list[dict]) -> JudgePrompt:
    """Split the last user message into sections; raise PromptNotUnderstood when it cannot."""
    user = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), None)
    if not isinstance(user, str):
        raise PromptNotUnderstood("no user message with text content")
    sections: dict[str, list[str]] = {}
    current, language, tail = None, None, []
    for line in user.split("\n"):
        marker = MARKERS.get(line.strip())
        if marker:
            current, language = marker
            if current in sections:
                raise PromptNotUnderstood(f"section {line.strip()} appears twice")
            sections[current] = []
        elif current == "end":
            tail.append(line)
        elif current:
            sections[current].append(line)
    text = {k: "\n".join(v).strip() for k, v in sections.items()}
    instructions = "\n".join(tail)
    if "question" not in text or "reference" not in text or "end" not in sections:
        raise PromptNotUnderstood("missing a question, standard-answer or end-of-responses section")
    if "a" in text and "b" in text:
        kind = "pairwise_verdict" if "[[A]]" in instructions else "pairwise_rating"
        if kind == "pairwise_rating" and "Rating A:" not in instructions:
            raise PromptNotUnderstood("pairwise prompt without a 'Rating A: ...; Rating B: ...' format")
        responses = {"A": text["a"], "B": text["b"]}
    elif "single" in text:
        if "Overall:" not in instructions:
            raise PromptNotUnderstood("single-answer prompt without an 'Overall: <score>' format")
        kind, responses = "single_rating", {"A": text["single"]}
    else:
        raise PromptNotUnderstood("no [Response A]/[Response B] or [Response] sections")
    reference = text["reference"] if text["reference"] not in NO_REFERENCE else None
    return JudgePrompt(kind, language or "en", text["question"], reference, responses,
                       text.get("history", ""))
