"""The ChatML chat template of medalign's tiny models, and helpers to apply any chat template.

A conversation renders as::

    <|im_start|>system\\n{content}<|im_end|>\\n          (only when a system turn is given)
    <|im_start|>user\\n{content}<|im_end|>\\n
    <|im_start|>assistant\\n{content}<|im_end|>\\n

The assistant's ``{content}<|im_end|>`` sits inside ``{% generation %}...{% endgeneration %}``, so
``tokenizer.apply_chat_template(..., return_assistant_tokens_mask=True)`` marks exactly the tokens
the model must learn to produce, end-of-turn included (trl's ``assistant_only_loss=True`` relies
on it; without the end-of-turn token in the mask the model never learns to stop). The newline
after ``<|im_end|>`` and the ``<|im_start|>assistant\\n`` header are context, not targets.
``add_generation_prompt=True`` appends the assistant header, ready for ``model.generate``.
"""

from __future__ import annotations

import json
from typing import Any

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
ENDOFTEXT = "<|endoftext|>"
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)

CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

_ROLES = ("system", "user", "assistant")


def check_messages(messages: Any, where: str = "messages") -> list[dict[str, str]]:
    """Return ``messages`` as plain dicts, or raise ValueError naming ``where`` and the bad turn.

    Accepts lists of mappings with ``role`` in system/user/assistant and a string ``content``
    (numpy arrays from Parquet are accepted and converted).
    """
    if messages is None or isinstance(messages, (str, bytes)):
        raise ValueError(f"{where}: expected a list of {{role, content}} turns, got {type(messages).__name__}")
    turns = []
    for i, turn in enumerate(list(messages)):
        if not hasattr(turn, "get"):
            raise ValueError(f"{where}[{i}]: expected a mapping with role and content, got {type(turn).__name__}")
        role, content = turn.get("role"), turn.get("content")
        if role not in _ROLES:
            raise ValueError(f"{where}[{i}].role: {role!r} is not one of {_ROLES}")
        if not isinstance(content, str):
            raise ValueError(f"{where}[{i}].content: expected a string, got {type(content).__name__}")
        turns.append({"role": role, "content": content})
    if not turns:
        raise ValueError(f"{where}: empty conversation")
    return turns


def conversation_key(messages: list[dict[str, str]]) -> str:
    """A string that is equal for two conversations with the same turns (checked ones, see
    :func:`check_messages`): the ppo stage deduplicates its prompts by it."""
    return json.dumps(messages, ensure_ascii=False, sort_keys=True)


def prompt_text(tokenizer, messages: list[dict[str, str]]) -> str:
    """The chat-template text of a prompt (history ending with a user turn) + the assistant header."""
    if messages[-1]["role"] != "user":
        raise ValueError(f"a prompt must end with a user turn, got a {messages[-1]['role']!r} turn last")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def assistant_spans(tokenizer, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """Token ids of a whole conversation and its assistant mask (1 = a token the model must produce)."""
    enc = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True)
    return list(enc["input_ids"]), list(enc["assistant_masks"])
