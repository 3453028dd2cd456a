"""Our reward functions in the form trl's GRPOTrainer / RLOOTrainer call them.

trl calls each reward function once per generation batch as::

    func(prompts=[[{"role", "content"}, ...], ...],           # B prompts (each repeated k times)
         completions=[[{"role": "assistant", "content": "..."}], ...],   # B completions
         completion_ids=..., trainer_state=..., **other_columns) -> list[float]          # B rewards

and names its logged metrics after ``func.__name__`` (``rewards/<name>/mean``). :class:`TrlReward`
wraps a :class:`~alignment.rl.reward_fn.RewardFn` (the reward model through
:func:`alignment.reward_scoring.score_responses`, the one scoring path every stage uses, or the
programmatic :func:`~alignment.rl.reward_fn.asks_a_question`) and, for the reward model,
normalises the scores with the reward_model stage's ``reward_stats.json`` exactly as PPO does
(:func:`alignment.rl.rewards.normalise_scores`).

:class:`MissingEosPenalty` is ``reward.missing_eos_penalty`` as one more reward function: minus the
penalty for a completion cut at the length cap, decided as trl decides it (its last token is
neither end-of-turn nor padding).

A NaN or infinite reward stops training with a message saying which function produced it (trl
would otherwise treat it as "unscorable" and carry on quietly).
"""

from __future__ import annotations

import torch

from alignment.rl.rewards import normalise_scores

__all__ = ["TrlReward", "MissingEosPenalty", "completion_texts"]


def completion_texts(completions: list) -> list[str]:
    """The text of each completion: trl passes ``[{"role": "assistant", "content": ...}]`` for
    conversational prompts and a plain string otherwise."""
    texts = []
    for i, c in enumerate(completions):
        if isinstance(c, str):
            texts.append(c)
        elif isinstance(c, list) and c and isinstance(c[-1], dict) and isinstance(c[-1].get("content"), str):
            texts.append(c[-1]["content"])
        else:
            raise TypeError(f"completion {i}: expected a string or a list of messages, got {c!r:.80}")
    return texts


class TrlReward:
    """``RewardFn`` -> trl reward function; ``stats`` = (mean, std) normalisation, ``clip`` bound.

    ``__name__`` is what trl logs the function's rewards under (``rewards/<name>/mean``).
    """

    def __init__(self, name: str, fn, stats: tuple[float, float] | None = None, clip: float | None = None):
        self.__name__ = name
        self.fn, self.stats, self.clip = fn, stats, clip

    def __call__(self, prompts: list, completions: list, **_: object) -> list[float]:
        if len(prompts) != len(completions):
            raise ValueError(f"reward {self.__name__}: {len(prompts)} prompts but {len(completions)} completions")
        scores = self.fn(list(prompts), completion_texts(completions)).float().reshape(-1)
        if scores.shape[0] != len(prompts):
            raise ValueError(f"reward {self.__name__} returned {scores.shape[0]} scores for {len(prompts)} "
                             "completions")
        bad = int((~torch.isfinite(scores)).sum())
        if bad:
            raise FloatingPointError(f"reward {self.__name__}: {bad} non-finite score(s) (NaN/inf); stopping. "
                                     "Check the reward model checkpoint and the learning rate.")
        if self.stats is not None or self.clip is not None:
            mean, std = self.stats if self.stats is not None else (0.0, 1.0)
            scores = normalise_scores(scores, mean, std, self.clip)
        return scores.tolist()


class MissingEosPenalty:
    """``-penalty`` for each completion cut at ``max_completion_length``, else 0 (trl logs it as
    ``rewards/missing_eos/mean``). ``stop_ids``: the end-of-turn and padding token ids."""

    def __init__(self, penalty: float, stop_ids: set[int]):
        self.__name__ = "missing_eos"
        self.penalty, self.stop_ids = float(penalty), set(stop_ids)

    def __call__(self, prompts: list, completions: list, completion_ids: list[list[int]], **_: object) -> list[float]:
        return [-self.penalty if ids and ids[-1] not in self.stop_ids else 0.0 for ids in completion_ids]
