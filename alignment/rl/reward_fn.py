"""Where the sequence-level reward comes from: a reward model, or any function of the text.

The PPO loop only needs something with this signature::

    reward_fn(prompts: list[list[dict]], responses: list[str]) -> torch.Tensor   # [B] float

``prompts[i]`` is the chat history the response answers (``{"role", "content"}`` turns ending with
a user turn) and ``responses[i]`` the decoded response (special tokens stripped). The pipeline
uses :class:`RewardModelFn` (the reward_model stage's sequence classifier); tests and
experiments can pass a programmatic reward such as :func:`asks_a_question`.
"""

from __future__ import annotations

from typing import Protocol

import torch

__all__ = ["RewardFn", "RewardModelFn", "load_reward_model_fn", "asks_a_question"]


class RewardFn(Protocol):
    def __call__(self, prompts: list[list[dict]], responses: list[str]) -> torch.Tensor: ...


class RewardModelFn:
    """Scores (prompt, response) pairs with a 1-label ``*ForSequenceClassification`` model, through
    :func:`alignment.reward_scoring.score_responses` (the rendering the reward_model stage trained
    on: history + assistant turn with the chat template; score at the last non-pad token)."""

    def __init__(self, model, tokenizer, batch_size: int = 16, max_length: int | None = None):
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.max_length = batch_size, max_length

    def __call__(self, prompts: list[list[dict]], responses: list[str]) -> torch.Tensor:
        from alignment.reward_scoring import score_responses

        scores = score_responses(self.model, self.tokenizer, prompts, responses, batch_size=self.batch_size,
                                 max_length=self.max_length)
        return torch.tensor(scores, dtype=torch.float32)


def load_reward_model_fn(path: str, device: str = "cpu", batch_size: int = 16,
                         max_length: int | None = None) -> RewardModelFn:
    """A :class:`RewardModelFn` on the reward_model stage's checkpoint at ``path`` (frozen, float32,
    eval mode), loaded by :mod:`alignment.models` like every other stage loads a reward model."""
    from alignment.models import load_reward_model, load_tokenizer

    model = load_reward_model(path, "reward_model", device=device, dtype="float32")
    model.requires_grad_(False)
    return RewardModelFn(model, load_tokenizer(path, "reward_model"), batch_size, max_length)


def asks_a_question(prompts: list[list[dict]], responses: list[str]) -> torch.Tensor:
    """1.0 when the response asks the patient something, else 0.0: the project's rule
    (``data_recipes.synthetic.clinical_rules.asks_question``: a question sentence, ending in
    '?' / '？' or a Chinese 吗/呢, or an inquiry phrase), the one the evaluation's
    asks-when-missing rate uses.

    HuatuoGPT's point about doctors: they ask targeted questions, distilled answers rarely do.
    A verifiable reward for the PPO learning test and the quickstart's programmatic option.
    """
    from data_recipes.synthetic.clinical_rules import asks_question

    return torch.tensor([1.0 if asks_question(r) else 0.0 for r in responses])
