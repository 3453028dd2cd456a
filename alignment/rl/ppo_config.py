"""Configuration of the ``ppo`` stage (PPO with a KL penalty to the initial policy).

Defaults that come from HuatuoGPT (Zhang et al., 2023) say so: KL penalty weight 0.05, only the last
two transformer blocks trained, learning rate 8e-6, 16,000 steps. The quickstart job overrides
them with tiny-model values (a 2-layer, 64-wide model learns nothing at 8e-6 in 30 steps).

Batch vocabulary (all counted in prompts/responses, over ALL processes):
``batch_size`` rollouts per step -> split into ``batch_size / mini_batch_size`` optimizer steps per
PPO epoch -> each mini-batch runs as forward/backward chunks of ``micro_batch_size`` rows per
process, accumulated (memory only: the gradient does not depend on it).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from alignment.distributed import DistributedSpec
from alignment.generation import SamplingSpec
from alignment.scope import TrainableScope
from alignment.specs import KLSpec, RewardSpec
from alignment.tracking import TrackingSpec
from medalign.config import StrictModel

__all__ = ["PPOConfig", "PPOScope", "KLConfig", "OptimConfig", "check_rl_sampling"]


class PPOScope(TrainableScope):
    """TrainableScope whose default mode is HuatuoGPT's (last 2 blocks), so a partial override such
    as ``scope.n_layers=1`` keeps that mode instead of falling back to ``full``."""

    mode: Literal["full", "lora", "last_n_layers"] = "last_n_layers"  # HuatuoGPT PPO: last 2 layers


class KLConfig(KLSpec):
    """The KL penalty r_t = -coef * kl_t against the frozen initial policy (the reference)."""

    estimator: Literal["k1", "k3"] = "k1"        # per-token estimator in the reward (k1 = log pi - log pi_ref)
    adaptive: bool = False                       # adapt coef towards `target` (Ziegler et al. 2019)
    target: float | None = Field(None, gt=0)     # adaptive: target KL, nats per response
    horizon: int = Field(10000, ge=1)            # adaptive: responses over which coef reacts
    max_kl: float | None = Field(100.0, gt=0)    # guard: stop with an error when the mean KL per response exceeds this

    @model_validator(mode="after")
    def _adaptive_needs_target(self) -> KLConfig:
        if self.adaptive and self.target is None:
            raise ValueError("kl.adaptive=true needs kl.target (nats per response)")
        return self


class OptimConfig(StrictModel):
    """AdamW for the policy and the critic (separate optimizers); names as in the trainers' ``optim``."""

    renamed = {"lr": "learning_rate", "critic_lr": "critic_learning_rate", "betas": ("adam_beta1", "adam_beta2"),
               "eps": "adam_epsilon", "schedule": "lr_scheduler"}

    learning_rate: float = Field(8e-6, gt=0)         # policy learning rate; HuatuoGPT: 8e-6
    critic_learning_rate: float = Field(8e-6, gt=0)  # critic learning rate
    weight_decay: float = Field(0.0, ge=0)           # AdamW weight decay
    adam_beta1: float = Field(0.9, ge=0, lt=1)       # AdamW beta1
    adam_beta2: float = Field(0.95, ge=0, lt=1)      # AdamW beta2
    adam_epsilon: float = Field(1e-8, gt=0)          # AdamW epsilon
    max_grad_norm: float | None = Field(1.0, gt=0)   # clip the global grad norm of each model (None: off)
    lr_scheduler: Literal["constant", "linear", "cosine"] = "constant"  # schedule over `steps` PPO steps
    warmup_steps: int = Field(0, ge=0)               # linear warm-up, in PPO steps


def check_rl_sampling(sampling: SamplingSpec, stage: str, why_batch: str | None, truncation: bool = False) -> None:
    """Refuse decoding settings an RL stage cannot honour: its log-probs are those of
    ``softmax(logits / temperature)``, so it samples at temperature > 0 and, unless ``truncation``
    (trl's trainers accept top_p / top_k), from the whole distribution. ``why_batch``: why
    ``sampling.batch_size`` does not apply (None: it does)."""
    if not sampling.temperature > 0:
        raise ValueError(f"{stage}: sampling.temperature must be > 0 (the policy's log-probs divide by it)")
    if not truncation and (sampling.top_p != 1.0 or sampling.top_k != 0):
        raise ValueError(f"{stage}: sampling.top_p / top_k truncate the distribution, which would make the "
                         "samples off-policy; leave them at 1.0 / 0")
    if why_batch is not None and sampling.batch_size != SamplingSpec.model_fields["batch_size"].default:
        raise ValueError(f"{stage}: sampling.batch_size does not apply: {why_batch}")


class PPOConfig(StrictModel):
    """The ``ppo`` stage: policy from the SFT model, critic from the reward model."""

    renamed = {"rollout": "sampling", "prompt_split": "split"}

    steps: int = Field(16000, ge=1)              # PPO steps (rollout + update); HuatuoGPT: 16,000
    batch_size: int = Field(64, ge=1)            # rollouts per step, all processes together
    mini_batch_size: int = Field(16, ge=1)       # rollouts per optimizer step (divides batch_size)
    micro_batch_size: int = Field(8, ge=1)       # rows per forward/backward per process (memory knob)
    ppo_epochs: int = Field(1, ge=1)             # passes over each step's rollouts
    gamma: float = Field(1.0, ge=0, le=1)        # GAE discount
    lam: float = Field(0.95, ge=0, le=1)         # GAE lambda
    clip_eps: float = Field(0.2, gt=0)           # policy ratio clip range
    value_clip: float | None = Field(0.2, gt=0)  # value clip range (None: unclipped squared error)
    entropy_coef: float = Field(0.0, ge=0)       # entropy bonus weight (0: off)
    whiten_advantages: bool = True               # normalise advantages over the step's tokens
    scope: PPOScope = Field(default_factory=PPOScope)  # policy parameters that train; HuatuoGPT: last 2 layers
    critic_scope: PPOScope | None = None         # critic parameters that train (None: same as scope; the score head always trains)
    sampling: SamplingSpec = Field(default_factory=SamplingSpec)  # rollouts: temperature, max_new_tokens, max_prompt_tokens
    kl: KLConfig = Field(default_factory=KLConfig)
    reward: RewardSpec = Field(default_factory=RewardSpec)  # one function; the RM's scores normalised and clipped
    optim: OptimConfig = Field(default_factory=OptimConfig)
    distributed: DistributedSpec = Field(default_factory=DistributedSpec)  # nproc (torchrun) and deepspeed: none | zero2 | zero3 | JSON path
    split: str = "train"                         # which prompts/<split>.parquet of the data stage to train on
    max_prompts: int | None = Field(None, ge=1)  # use only the first N prompts after dedup (None: all)
    seed: int | None = None                      # run seed (None: the job's seed)
    checkpoint_every: int = Field(50, ge=1)      # write a resumable checkpoint every N steps (and at the end)
    keep_checkpoints: int = Field(2, ge=1)       # newest checkpoints kept; older ones are deleted
    log_every: int = Field(1, ge=1)              # progress-log line every N steps (metrics.jsonl gets every step)
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)  # TensorBoard (out/tensorboard) / W&B

    @model_validator(mode="after")
    def _batches_divide(self) -> PPOConfig:
        if self.batch_size % self.mini_batch_size:
            raise ValueError(f"batch_size {self.batch_size} is not a multiple of mini_batch_size "
                             f"{self.mini_batch_size}")
        check_rl_sampling(self.sampling, "ppo", None)   # sampling.batch_size: prompts per generate call
        if len(self.reward.functions) != 1 or self.reward.weights is not None:
            raise ValueError(f"ppo: reward.functions takes one function (got {self.reward.functions}, weights "
                             f"{self.reward.weights}); the online_rl stage sums several")
        return self
