"""A perfect reward model for the local judge: its own rating of a response against the prompt's reference.

The local judge (``medalign judge serve``) rates a response with :func:`judges.server.rubric.rate`
against the standard answer, the doctor's actual reply at that turn. No reward model sees that
reply; this reward does. It is for *ceiling* experiments (``benchmarks/ppo_reward_ceiling.py``):
what PPO reaches when its reward agrees with the judge on every pair, which separates "the reward
model is not accurate enough" from "PPO at this budget cannot move the policy far enough". It is
not a training reward for real use: it needs the reference of every prompt and it is the same
function the evaluation's referee applies, so a policy trained on it is graded by its own teacher.

    reward = RubricReward.from_prompts("runs/.../data-KEY/prompts/train.parquet", mean=4.4, std=2.4)
    reward(prompts, responses)          # -> tensor [B]: (rating - mean) / std

``mean`` / ``std`` play the part of the reward_model stage's ``reward_stats.json``: the judge's scores
of the SFT model's own samples (the judge stage's ``scores.parquet``), so 1.0 means "one judge
standard deviation better than a typical SFT sample", on the scale PPO's RM rewards have.
"""

from __future__ import annotations

from pathlib import Path

import torch

from alignment.chat import check_messages, conversation_key
from alignment.rl.reward_fn import asks_a_question

__all__ = ["RubricReward"]


class RubricReward:
    """``(rate(response, reference, language).total - mean) / std`` per response, plus
    ``ask_weight`` when the response asks the patient something (:func:`asks_a_question`, the
    evaluation's asking rule)."""

    def __init__(self, references: dict[str, tuple[str, str]], mean: float, std: float, ask_weight: float = 0.0):
        if not std > 0:
            raise ValueError(f"RubricReward: std must be > 0, got {std}")
        self.references, self.mean, self.std, self.ask_weight = references, mean, std, ask_weight

    @classmethod
    def from_prompts(cls, prompts_file: str | Path, mean: float, std: float, ask_weight: float = 0.0) -> RubricReward:
        """References of a data stage's ``prompts/<split>.parquet``, keyed like the ppo stage's prompts.

        Rows whose messages are malformed are skipped (the ppo stage quarantines them, so they never
        reach the reward); a prompt that occurs twice keeps its first reference, as the ppo stage
        keeps its first occurrence. A row with no reference is skipped: a prompt without one gets
        no score (``__call__`` raises) rather than a made-up one.
        """
        import pandas as pd

        references: dict[str, tuple[str, str]] = {}
        for row in pd.read_parquet(prompts_file).to_dict("records"):
            try:
                messages = check_messages(row["messages"], where=f"{prompts_file}: {row.get('prompt_id')}")
            except ValueError:
                continue
            reference = row.get("reference")
            if isinstance(reference, str) and reference.strip():
                references.setdefault(conversation_key(messages), (reference, row.get("language") or "zh"))
        return cls(references, mean, std, ask_weight)

    def __call__(self, prompts: list[list[dict]], responses: list[str]) -> torch.Tensor:
        from judges.server.rubric import rate

        scores = []
        for messages, response in zip(prompts, responses, strict=True):
            found = self.references.get(conversation_key(messages))
            if found is None:
                last = messages[-1]["content"][:60] if messages else ""
                raise KeyError(f"RubricReward: no reference for the prompt ending {last!r} "
                               f"({len(self.references)} prompts have one)")
            reference, language = found
            scores.append((rate(response, reference, language).total - self.mean) / self.std)
        out = torch.tensor(scores, dtype=torch.float32)
        return out + self.ask_weight * asks_a_question(prompts, responses) if self.ask_weight else out
