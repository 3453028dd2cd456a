"""Stage ``online_rl``: GRPO or RLOO from trl, the critic-free alternatives to our PPO.

Both sample ``k`` completions per prompt from the current policy, score them, and use the other
completions of the same prompt as the baseline instead of a learned critic:

* ``grpo`` (trl GRPOTrainer): advantage = (r - mean of the group) / std of the group (per
  ``grpo.scale_rewards``); the KL to the reference is a per-token loss term (k3 estimator) with
  weight ``kl.coef`` (trl's ``beta``).
* ``rloo`` (trl RLOOTrainer): advantage = r - mean of the OTHER completions of the prompt
  (leave-one-out); the KL is a sequence-level penalty in the reward, r - kl.coef * sum_t k1_t, as
  in HuatuoGPT's r = r_RM - lambda * KL.

Field names follow the ppo stage where the idea is the same (trl's name in brackets): ``k``
(num_generations), ``kl.coef`` (beta), ``sampling.max_new_tokens`` (max_completion_length),
``ppo_epochs`` (num_iterations), ``clip_eps`` (epsilon), ``rloo.whiten_advantages``
(normalize_advantages).

Inputs (like ``ppo``): ``data`` (prompts from ``prompts/<split>.parquet``), ``policy`` (the
SFT checkpoint: trained policy and frozen reference), ``reward_model`` (the reward_model stage's
``model/``; its ``reward_stats.json`` normalises the scores; needed only when ``reward.functions``
includes ``reward_model``). The reward is the sum (weighted by ``reward.weights``) of
``reward.functions``: ``reward_model`` and/or the programmatic ``asks_question`` (1 if the
response asks the patient something), minus ``reward.missing_eos_penalty`` for a completion cut
at ``sampling.max_new_tokens`` (logged as the function ``missing_eos``).

Outputs: ``out/model`` (final policy, LoRA merged, + tokenizer), ``out/metrics.jsonl`` (trl's log
rows: reward, per-function reward, KL, entropy, completion length, ...), ``out/quarantine.jsonl``
(unusable prompts, and prompts longer than ``sampling.max_prompt_tokens``: trl does not truncate
them, so they are left out rather than cut). A rerun starts over (no mid-stage checkpoints). CPU-safe settings
are forced: no bf16, no gradient checkpointing, no vLLM (generation with ``model.generate``).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from alignment.distributed import DistributedSpec, is_main_process, maybe_launch, world_size
from alignment.generation import SamplingSpec
from alignment.rl.ppo_config import PPOScope, check_rl_sampling
from alignment.specs import KLSpec, RewardSpec
from alignment.stages.inputs import Quarantine, load_prompt_split
from alignment.stages.training_args import OptimSpec, common_trainer_kwargs
from alignment.tracking import TrackingSpec, check_tracking, start_tracking
from medalign.config import StrictModel
from medalign.stage import Input, StageContext

NAME = "online_rl"
INPUTS = {"data": Input(("data",), "data stage directory (prompts/)", reads=("prompts",)),
          "policy": Input(("sft",), "checkpoint to optimise (also the frozen reference)", model=True),
          "reward_model": Input(("reward_model",), "reward model checkpoint (reward.functions with reward_model only)",
                                model=True, optional=True)}


class GRPOOptions(StrictModel):
    """GRPO-only settings (trl GRPOConfig names)."""

    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo"] = "dapo"  # token-loss aggregation; dapo: trl's default
    scale_rewards: Literal["group", "batch", "none"] = "group"      # divide advantages by the group's / batch's std


class RLOOOptions(StrictModel):
    """RLOO-only settings."""

    renamed = {"normalize_advantages": "whiten_advantages"}

    whiten_advantages: bool = False          # whiten the leave-one-out advantages over the batch (trl: normalize_advantages)


class OnlineRLConfig(StrictModel):
    """GRPO / RLOO settings. ``optim.per_device_batch_size`` counts completions, not prompts."""

    renamed = {"beta": "kl.coef", "num_generations": "k", "max_completion_tokens": "sampling.max_new_tokens",
               "max_prompt_tokens": "sampling.max_prompt_tokens", "temperature": "sampling.temperature",
               "top_p": "sampling.top_p", "num_iterations": "ppo_epochs", "epsilon": "clip_eps",
               "prompt_split": "split"}

    algorithm: Literal["grpo", "rloo"] = "grpo"  # which trl trainer
    kl: KLSpec = Field(default_factory=KLSpec)   # kl.coef: KL penalty weight; HuatuoGPT 0.05 (0: no reference model)
    k: int = Field(4, ge=2)                      # completions per prompt (the group the baseline comes from)
    sampling: SamplingSpec = Field(default_factory=SamplingSpec)  # decoding (prompts over max_prompt_tokens: quarantined)
    ppo_epochs: int = Field(1, ge=1)             # optimisation passes over each generation batch (GRPO's mu)
    clip_eps: float = Field(0.2, gt=0)           # policy ratio clip range
    reward: RewardSpec = Field(default_factory=RewardSpec)
    grpo: GRPOOptions = Field(default_factory=GRPOOptions)   # used when algorithm = grpo
    rloo: RLOOOptions = Field(default_factory=RLOOOptions)   # used when algorithm = rloo
    optim: OptimSpec = Field(default_factory=lambda: OptimSpec(
        learning_rate=8e-6, epochs=1, per_device_batch_size=8, lr_scheduler="constant", warmup_ratio=0.0,
        logging_steps=1))                        # HuatuoGPT's RL learning rate 8e-6; one pass over the prompts
    scope: PPOScope = Field(default_factory=PPOScope)  # what trains; HuatuoGPT: the last 2 layers
    split: str = "train"                         # prompts/<split>.parquet to train on
    max_prompts: int | None = Field(None, ge=1)  # use only the first N usable prompts (None: all)
    seed: int | None = None                      # None: the job seed
    distributed: DistributedSpec = Field(default_factory=DistributedSpec)  # processes / DeepSpeed
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)  # TensorBoard (out/tensorboard) / W&B

    @model_validator(mode="after")
    def _groups_fit(self) -> OnlineRLConfig:
        if self.scope.mode == "lora" and self.distributed.deepspeed == "zero3":
            raise ValueError("scope.mode=lora with distributed.deepspeed=zero3: the adapters cannot be merged "
                             "into sharded weights at the end; use zero2 or a full / last_n_layers scope")
        batch = self.optim.per_device_batch_size * self.distributed.nproc * self.optim.gradient_accumulation_steps
        if batch % self.k:
            raise ValueError(f"optim.per_device_batch_size x distributed.nproc x optim.gradient_accumulation_steps "
                             f"= {batch} completions per step is not a multiple of k = {self.k}: every prompt's "
                             "group must be complete")
        check_rl_sampling(self.sampling, "online_rl", "trl samples one step's completions (optim.per_device_batch_size "
                          "per process) at once", truncation=True)
        return self


Config = OnlineRLConfig


def _reward_funcs(cfg: OnlineRLConfig, rm_path: str | None, device: str, ctx: StageContext, tokenizer) -> list:
    """One :class:`~alignment.rl.trl_rewards.TrlReward` per configured function, then the
    :class:`~alignment.rl.trl_rewards.MissingEosPenalty` when ``reward.missing_eos_penalty`` is set."""
    from alignment.rl.reward_fn import asks_a_question, load_reward_model_fn
    from alignment.rl.trl_rewards import MissingEosPenalty, TrlReward
    from alignment.stages.ppo import load_reward_stats

    funcs = []
    for name in cfg.reward.functions:
        if name == "asks_question":
            funcs.append(TrlReward(name, asks_a_question))
            continue
        stats = load_reward_stats(rm_path) if cfg.reward.normalise else None
        if cfg.reward.normalise and stats is None:
            ctx.logger.warning("online_rl: no reward_stats.json next to %s; RM scores are not normalised", rm_path)
        fn = load_reward_model_fn(rm_path, device, cfg.reward.score_batch_size, cfg.reward.max_length)
        funcs.append(TrlReward(name, fn, stats, cfg.reward.clip))
    if cfg.reward.missing_eos_penalty is not None:
        funcs.append(MissingEosPenalty(cfg.reward.missing_eos_penalty,
                                       {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}))
    return funcs


def reward_names(cfg: OnlineRLConfig) -> list[str]:
    """The names trl logs rewards under (``rewards/<name>/mean``), in the order of the functions."""
    return list(cfg.reward.functions) + (["missing_eos"] if cfg.reward.missing_eos_penalty is not None else [])


def reward_weights(cfg: OnlineRLConfig) -> list[float] | None:
    """trl's ``reward_weights``: the configured ones (None: all 1.0), and 1.0 for the missing-EOS penalty."""
    if cfg.reward.missing_eos_penalty is None or cfg.reward.weights is None:
        return cfg.reward.weights
    return list(cfg.reward.weights) + [1.0]


def _prompt_rows(cfg: OnlineRLConfig, data_dir: str, tokenizer, quarantine: Quarantine) -> list[dict]:
    """``[{"prompt": messages}]``; prompts longer than ``sampling.max_prompt_tokens`` are quarantined."""
    from alignment.chat import prompt_text

    rows, limit = [], cfg.sampling.max_prompt_tokens
    for i, p in enumerate(load_prompt_split(data_dir, cfg.split, quarantine, None, NAME)):
        n = len(tokenizer(prompt_text(tokenizer, p["messages"]), add_special_tokens=False)["input_ids"])
        if n > limit:
            quarantine.add(f"{data_dir}/prompts/{cfg.split}.parquet", i, "messages",
                           f"prompt {p['prompt_id']} has {n} tokens > sampling.max_prompt_tokens={limit}")
            continue
        rows.append({"prompt": p["messages"]})
        if cfg.max_prompts is not None and len(rows) >= cfg.max_prompts:
            break
    if not rows:
        raise ValueError(f"online_rl: no usable prompts in {data_dir}/prompts/{cfg.split}.parquet "
                         f"({len(quarantine)} quarantined)")
    return rows


def _trainer_args(cfg: OnlineRLConfig, out: Path, ctx: StageContext, seed: int):
    """trl GRPOConfig / RLOOConfig with CPU-safe settings (bf16, checkpointing, vLLM off)."""
    from trl import GRPOConfig, RLOOConfig

    common = common_trainer_kwargs(cfg.optim, out, ctx, cfg.distributed, seed, cfg.tracking.report_to)
    # trl's RL trainers feed the model no `input_ids` batch the Trainer could count (it warns every step)
    common.update(include_num_input_tokens_seen="no")
    s = cfg.sampling
    common.update(beta=cfg.kl.coef, num_generations=cfg.k, max_completion_length=s.max_new_tokens,
                  temperature=s.temperature, top_p=s.top_p, top_k=s.top_k,
                  num_iterations=cfg.ppo_epochs, epsilon=cfg.clip_eps, reward_weights=reward_weights(cfg),
                  use_vllm=False, disable_dropout=True, save_strategy="no", eval_strategy="no",
                  log_completions=False)
    if cfg.algorithm == "grpo":
        return GRPOConfig(**common, loss_type=cfg.grpo.loss_type, scale_rewards=cfg.grpo.scale_rewards)
    return RLOOConfig(**common, normalize_advantages=cfg.rloo.whiten_advantages)


def summarise(history: list[dict], names: list[str]) -> dict:
    """Reward (total and per function) over the first and last logged steps, KL, length.

    "First" and "last" are means over a window of a fifth of the logged steps (1 to 10), as in
    the ppo stage, so one noisy step does not decide them.
    """
    rows = [h for h in history if "reward" in h]
    window = max(1, min(10, len(rows) // 5))

    def mean(key: str, part: list[dict]) -> float | None:
        values = [r[key] for r in part if r.get(key) is not None]
        return sum(values) / len(values) if values else None

    out = {"logged_steps": len(rows), "reward_window_steps": window,
           "reward_first": mean("reward", rows[:window]), "reward_last": mean("reward", rows[-window:]),
           "kl_first": mean("kl", rows[:window]), "kl_last": mean("kl", rows[-window:]),
           "kl_mean": mean("kl", rows),
           "completion_length_first": mean("completions/mean_length", rows[:window]),
           "completion_length_last": mean("completions/mean_length", rows[-window:])}
    for name in names:
        out[f"reward_{name}_first"] = mean(f"rewards/{name}/mean", rows[:window])
        out[f"reward_{name}_last"] = mean(f"rewards/{name}/mean", rows[-window:])
    return out


def run(cfg: OnlineRLConfig, inputs: dict[str, str], out: Path, ctx: StageContext) -> dict:
    needed = {"data", "policy"} | ({"reward_model"} if "reward_model" in cfg.reward.functions else set())
    missing = needed - {k for k, v in inputs.items() if v}
    if missing:
        raise ValueError(f"online_rl: missing inputs {sorted(missing)} (needs data, policy, and reward_model "
                         "when reward.functions includes reward_model)")
    from datasets import Dataset
    from trl import GRPOTrainer, RLOOTrainer

    from alignment.models import load_causal_lm, load_tokenizer
    from alignment.scope import apply_trainable_scope
    from alignment.stages.sft import save_trained_model

    out = Path(out)
    check_tracking(cfg.tracking, out)
    launched = maybe_launch(NAME, cfg, inputs, out, ctx)
    if launched is not None:
        return launched
    t0 = time.perf_counter()
    quarantine = Quarantine()
    tokenizer = load_tokenizer(inputs["policy"], "policy")
    prompts = _prompt_rows(cfg, inputs["data"], tokenizer, quarantine)
    seed = ctx.seed if cfg.seed is None else cfg.seed
    # models before the trainer arguments: under ZeRO-3 the arguments switch on transformers' global
    # flag that makes from_pretrained partition a model, which the reward model must not be
    model = apply_trainable_scope(load_causal_lm(inputs["policy"], "policy", dtype="float32").train(), cfg.scope)
    funcs = _reward_funcs(cfg, inputs.get("reward_model"), ctx.device, ctx, tokenizer)
    args = _trainer_args(cfg, out, ctx, seed)
    if args.deepspeed and world_size() > 1:
        # trl builds the reference model under ZeRO-3's zero.Init before the Trainer starts DeepSpeed's
        # communication, which then counts one process and refuses the batch sizes: start it first
        import deepspeed

        deepspeed.init_distributed(dist_backend="gloo" if ctx.device == "cpu" else "nccl")
    trainer_cls = GRPOTrainer if cfg.algorithm == "grpo" else RLOOTrainer
    with start_tracking(cfg.tracking, out, config=cfg) as tracker:
        trainer = tracker.build_trainer(trainer_cls, model=model, reward_funcs=funcs, args=args,
                                        processing_class=tokenizer, train_dataset=Dataset.from_list(prompts))
        trainer.train()
    history = trainer.state.log_history
    save_trained_model(trainer, tokenizer, out / "model")
    metrics = {"algorithm": cfg.algorithm, "steps": trainer.state.global_step, "prompts": len(prompts),
               **summarise(history, reward_names(cfg)), "quarantined": len(quarantine),
               "wall_time_s": time.perf_counter() - t0}
    if is_main_process():
        shutil.rmtree(out / "checkpoints", ignore_errors=True)   # the trainer's output_dir; nothing saved there
        with open(out / "metrics.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(h) + "\n" for h in history)
        quarantine.write(out)
    return metrics
