"""Config blocks several stages share, declared once (see the vocabulary in README "Configuration").

* :data:`MaxLength`: the token length of a training example (``max_length`` in sft, pretrain,
  dpo, reward_model, rsft's ``train``) or of a reward-model input.
* :class:`KLSpec`: ``kl.coef``, the weight of the KL penalty to the reference policy in ppo and
  online_rl (PPO's ``kl`` block adds its estimator and controller to it).
* :class:`RewardScoringSpec`: how a stage scores responses with the reward model
  (``reward.score_batch_size``, ``reward.max_length``): rsft and eval.
* :class:`RewardSpec`: the reward of ppo and online_rl: which functions, and how reward-model
  scores are normalised and clipped (the scoring fields above included).

The decoding block is :class:`alignment.generation.SamplingSpec` and the trainers' optimiser block
:class:`alignment.stages.training_args.OptimSpec`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from medalign.config import StrictModel

__all__ = ["MaxLength", "KLSpec", "RewardName", "RewardScoringSpec", "RewardSpec"]

MaxLength = Annotated[int, Field(ge=16)]   # tokens; every stage states its own default and what is cut
RewardName = Literal["reward_model", "asks_question"]   # asks_question: 1 if the response asks something


class KLSpec(StrictModel):
    """The KL penalty to the frozen reference policy (HuatuoGPT: r = r_RM - lambda_KL * KL)."""

    coef: float = Field(0.05, ge=0)              # KL penalty weight (beta); HuatuoGPT: lambda_KL = 0.05 (0: off)


class RewardScoringSpec(StrictModel):
    """Scoring (prompt, response) with the reward model, as :mod:`alignment.reward_scoring` does."""

    score_batch_size: int = Field(32, ge=1)      # responses per reward-model forward
    max_length: MaxLength | None = 1024          # reward-model input tokens; longer keep their end (None: no cap)


class RewardSpec(RewardScoringSpec):
    """The sequence reward of the RL stages: a weighted sum of ``functions``; reward-model scores
    become ``(score - mean) / std`` with the reward_model stage's ``reward_stats.json``, clipped."""

    renamed = {"function": "functions"}

    functions: list[RewardName] = Field(default_factory=lambda: ["reward_model"], min_length=1)  # summed rewards
    weights: list[float] | None = None           # one weight per function (None: all 1.0)
    normalise: bool = True                       # RM scores: (score - mean) / std from reward_stats.json
    clip: float | None = Field(5.0, gt=0)        # clip normalised scores to [-clip, clip] (None: no clip)
    missing_eos_penalty: float | None = Field(None, ge=0)  # subtracted from a response cut at sampling.max_new_tokens

    @model_validator(mode="after")
    def _functions_and_weights_match(self) -> RewardSpec:
        if len(set(self.functions)) != len(self.functions):
            raise ValueError(f"reward.functions lists a function twice: {self.functions}")
        if self.weights is not None and len(self.weights) != len(self.functions):
            raise ValueError(f"reward.weights has {len(self.weights)} entries for {len(self.functions)} functions")
        return self
