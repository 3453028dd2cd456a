"""Build what PPO trains: policy, frozen reference, critic (from the reward model), reward
function, and their optimizers (plain AdamW or DeepSpeed ZeRO engines); save the final policy.

Dropout is off everywhere (models stay in ``eval()`` mode, gradients still flow), so the policy
that scores a rollout and the one that is updated on it compute the same log-probs: the first
PPO epoch starts at ratio exactly 1.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from alignment.rl.experience import PPOModels
from alignment.rl.optim import DeepSpeedUpdater, PlainUpdater
from alignment.rl.parallel import DistInfo
from alignment.rl.ppo_config import PPOConfig
from alignment.rl.reward_fn import asks_a_question, load_reward_model_fn
from alignment.rl.rollout import ValueModel
from alignment.scope import apply_trainable_scope

__all__ = ["PPOSetup", "build_ppo", "deepspeed_config", "save_policy"]

log = logging.getLogger("medalign.alignment.ppo")


@dataclass
class PPOSetup:
    models: PPOModels
    updaters: tuple                                 # (policy updater, critic updater)
    zero_stage: int = 0                             # DeepSpeed ZeRO stage (0: plain AdamW)
    keep_alive: list = field(default_factory=list)  # e.g. HfDeepSpeedConfig (must outlive generate)


def deepspeed_config(cfg: PPOConfig, world_size: int) -> dict:
    """The DeepSpeed config for PPO's policy and critic engines.

    ``distributed.deepspeed`` is ``zero2`` / ``zero3`` (a minimal ZeRO section) or the path of a
    DeepSpeed JSON (e.g. with CPU offload). Whatever the source, the batch keys and gradient
    clipping are set here from the PPO config (accumulation = micro-batches per mini-batch on each
    process); optimizer and scheduler sections are refused because the PPO loop owns both.
    Under ZeRO-3 nothing stays gathered between forwards (persistence threshold 0): parameters
    gathered while generating (inference mode) would otherwise be reused by the backward pass,
    which autograd refuses.
    """
    import json

    spec = cfg.distributed.deepspeed
    if spec in ("zero2", "zero3"):
        ds = {"zero_optimization": {"stage": 2 if spec == "zero2" else 3}}
    else:
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"ppo distributed.deepspeed: {path} is not a file (use zero2, zero3 or a JSON path)")
        ds = json.loads(path.read_text(encoding="utf-8"))
        clash = sorted({"optimizer", "scheduler"} & set(ds))
        if clash:
            raise ValueError(f"{path}: remove {clash}: the ppo stage sets the optimizer (optim.*) and "
                             "the learning-rate schedule itself")
    mb_local = cfg.mini_batch_size // world_size
    micro = min(cfg.micro_batch_size, mb_local)
    accumulation = math.ceil(mb_local / micro)
    zero = dict(ds.get("zero_optimization", {}))
    if zero.get("stage") == 3:
        zero["stage3_param_persistence_threshold"] = 0
    return {
        **ds,
        "zero_optimization": zero,
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": accumulation,
        "train_batch_size": micro * accumulation * world_size,
        "gradient_clipping": cfg.optim.max_grad_norm or 0.0,
        "zero_allow_untested_optimizer": True,   # a plain torch AdamW: no fused-op compilation
        "bf16": {"enabled": False},
        "fp16": {"enabled": False},
        "steps_per_print": ds.get("steps_per_print", 1 << 30),
        "wall_clock_breakdown": False,
    }


def _check_batch_sizes(cfg: PPOConfig, world_size: int) -> None:
    for name in ("batch_size", "mini_batch_size"):
        if getattr(cfg, name) % world_size:
            raise ValueError(f"ppo.{name} = {getattr(cfg, name)} is not divisible by the {world_size} "
                             "processes: every process must get the same number of rollouts")


def _load_critic(rm_path: str, cfg: PPOConfig, device: str):
    from transformers import AutoModelForSequenceClassification

    classifier = AutoModelForSequenceClassification.from_pretrained(rm_path, dtype=torch.float32)
    scope = (cfg.critic_scope or cfg.scope).model_copy(update={"train_score_head": True})
    critic = ValueModel(apply_trainable_scope(classifier, scope)).to(device).eval()
    return critic


def _reward_fn(cfg: PPOConfig, rm_path: str, device: str):
    if cfg.reward.functions == ["asks_question"]:
        return asks_a_question
    return load_reward_model_fn(rm_path, device, batch_size=cfg.reward.score_batch_size,
                                max_length=cfg.reward.max_length)


def _check_same_vocab(policy_path: str, rm_path: str, tokenizer) -> None:
    from transformers import AutoTokenizer

    if AutoTokenizer.from_pretrained(rm_path).get_vocab() != tokenizer.get_vocab():
        raise ValueError(f"the reward model at {rm_path} uses a different tokenizer from the policy at "
                         f"{policy_path}; the critic (initialised from the reward model) reads the "
                         "policy's tokens, so both must share one tokenizer (HuatuoGPT: the reward "
                         "model's backbone is the SFT model)")


def build_ppo(cfg: PPOConfig, policy_path: str, rm_path: str, dist: DistInfo, device: str = "cpu") -> PPOSetup:
    """Load the models from their checkpoints and wrap the trainable ones in updaters."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _check_batch_sizes(cfg, dist.world_size)
    ds = deepspeed_config(cfg, dist.world_size) if cfg.distributed.deepspeed != "none" else None
    zero_stage = int(ds["zero_optimization"].get("stage", 0)) if ds else 0
    if zero_stage == 3 and "lora" in (cfg.scope.mode, (cfg.critic_scope or cfg.scope).mode):
        raise ValueError("ppo: LoRA with ZeRO-3 is not supported (the final merge needs whole "
                         "weights); use distributed.deepspeed=zero2 or a full / last_n_layers scope")
    tokenizer = AutoTokenizer.from_pretrained(policy_path)
    _check_same_vocab(policy_path, rm_path, tokenizer)
    reference = AutoModelForCausalLM.from_pretrained(policy_path, dtype=torch.float32).to(device).eval()
    reference.requires_grad_(False)
    policy = AutoModelForCausalLM.from_pretrained(policy_path, dtype=torch.float32)
    policy = apply_trainable_scope(policy, cfg.scope).to(device).eval()
    critic = _load_critic(rm_path, cfg, device)
    reward_fn = _reward_fn(cfg, rm_path, device)
    o = cfg.optim
    betas = (o.adam_beta1, o.adam_beta2)
    keep_alive = []
    if ds is None:
        updaters = (PlainUpdater(policy, "policy", o.learning_rate, betas, o.adam_epsilon, o.weight_decay,
                                 o.max_grad_norm, dist),
                    PlainUpdater(critic, "critic", o.critic_learning_rate, betas, o.adam_epsilon, o.weight_decay,
                                 o.max_grad_norm, dist))
    else:  # DeepSpeed: a preset or a JSON path
        from transformers.integrations import HfDeepSpeedConfig

        updaters = (DeepSpeedUpdater(policy, "policy", o.learning_rate, betas, o.adam_epsilon, o.weight_decay, ds, dist),
                    DeepSpeedUpdater(critic, "critic", o.critic_learning_rate, betas, o.adam_epsilon, o.weight_decay,
                                     ds, dist))
        # created after loading (so the frozen models are not partitioned): tells generate() that
        # ZeRO-3 is on, which turns on synced_gpus
        keep_alive.append(HfDeepSpeedConfig(ds))
    models = PPOModels(policy=updaters[0].module, policy_module=policy, reference=reference,
                       critic=updaters[1].module, reward_fn=reward_fn, tokenizer=tokenizer)
    return PPOSetup(models, updaters, zero_stage, keep_alive)


def save_policy(setup: PPOSetup, out_dir: Path, dist: DistInfo) -> None:
    """Write the trained policy (LoRA merged) + tokenizer as a plain HF checkpoint (main process).

    Under ZeRO-3 the partitioned weights are gathered first (a collective: every process calls this).
    """
    model = setup.models.policy_module
    if setup.zero_stage == 3:
        import deepspeed

        params = list(model.parameters())
        with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
            # one clone per storage, so tied weights (embeddings = lm_head) stay tied when saved
            clones: dict[int, torch.Tensor] = {}
            state = ({k: clones.setdefault(v.data_ptr(), v.detach().clone())
                      for k, v in model.state_dict().items()} if dist.is_main else None)
        if dist.is_main:
            model.save_pretrained(out_dir, state_dict=state)
    elif dist.is_main:
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
        model.save_pretrained(out_dir)
    if dist.is_main:
        setup.models.tokenizer.save_pretrained(out_dir)
