"""One PPO step's experience: rollouts, their log-probs, values, rewards and advantages.

    exp, sums, timings = make_experience(models, prompts, cfg=cfg, beta=0.05, ...)

Everything here runs without gradients. Per process the tensors have B_local rows; the
statistics that must be global (advantage whitening, means for metrics) are summed across
processes with :mod:`alignment.rl.parallel`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields

import torch

from alignment.rl.gae import gae_advantages
from alignment.rl.kl import per_token_kl, sequence_kl
from alignment.rl.parallel import all_reduce_sum, all_reduce_sum_
from alignment.rl.ppo_config import PPOConfig
from alignment.rl.rewards import kl_penalised_rewards, normalise_scores
from alignment.rl.rollout import (RolloutBatch, concat_rollouts, decode_responses, policy_logprobs,
                                  sample_rollout)
from alignment.rl.whiten import masked_moments, masked_sum, masked_whiten

__all__ = ["Experience", "PPOModels", "make_experience", "GuardError"]


class GuardError(RuntimeError):
    """PPO stopped on purpose: a non-finite number or a KL past its bound. The message says which."""


@dataclass
class PPOModels:
    """What a PPO step uses. ``policy`` / ``critic`` are what the updaters train (maybe engines)."""

    policy: object              # causal LM being trained (module or DeepSpeed engine)
    policy_module: object       # the underlying HF model (for generate)
    reference: object           # frozen copy of the initial policy
    critic: object              # ValueModel (module or DeepSpeed engine)
    reward_fn: object           # RewardFn
    tokenizer: object


@dataclass
class Experience:
    """Per-process rollouts of one step. Per-token tensors are ``[B, R]``, per-response ``[B]``."""

    batch: RolloutBatch
    old_logp: torch.Tensor      # log pi_old(a_t | s_t)
    ref_logp: torch.Tensor      # log pi_ref(a_t | s_t)
    old_values: torch.Tensor    # V_old(s_t)
    kl: torch.Tensor            # per-token KL estimate used in the reward
    rewards: torch.Tensor       # -beta * kl_t (+ score at the last token)
    advantages: torch.Tensor    # GAE, whitened if configured
    returns: torch.Tensor       # GAE returns (critic targets)
    entropy: torch.Tensor       # policy entropy per position (nats), at rollout time
    raw_scores: torch.Tensor    # [B] reward function output
    scores: torch.Tensor        # [B] normalised, clipped (and EOS-penalised) score

    def rows(self, index: torch.Tensor) -> Experience:
        """Sub-batch of rows ``index`` with all-padding columns trimmed (both ends)."""
        batch = self.batch.rows(index)
        keep_r = int(batch.response_mask.sum(dim=0).nonzero().max()) + 1
        prompt_cols = batch.attention_mask[:, :batch.prompt_len].sum(dim=0)
        drop_p = int((prompt_cols == 0).long().cumprod(0).sum())
        trimmed = RolloutBatch(batch.sequences[:, drop_p:batch.prompt_len + keep_r],
                               batch.attention_mask[:, drop_p:batch.prompt_len + keep_r],
                               batch.response_mask[:, :keep_r], batch.prompt_len - drop_p, batch.ended)
        values = {}
        for f in fields(self):
            if f.name == "batch":
                continue
            t = getattr(self, f.name)[index]
            values[f.name] = t[:, :keep_r] if t.dim() == 2 else t
        return Experience(batch=trimmed, **values)


@torch.no_grad()
def _score_in_chunks(models: PPOModels, batch: RolloutBatch, chunk: int, temperature: float):
    """Old log-probs + entropy (policy), reference log-probs, values (critic); [B, R] each."""
    parts = {"old_logp": [], "entropy": [], "ref_logp": [], "values": []}
    timings = {"policy_s": 0.0, "reference_s": 0.0, "critic_s": 0.0}
    for start in range(0, batch.sequences.shape[0], chunk):
        sub = batch.rows(slice(start, start + chunk))
        t0 = time.perf_counter()
        logp, ent = policy_logprobs(models.policy, sub, temperature, with_entropy=True)
        t1 = time.perf_counter()
        ref_logp, _ = policy_logprobs(models.reference, sub, temperature)
        t2 = time.perf_counter()
        values = models.critic(sub.sequences, sub.attention_mask, sub.prompt_len)
        t3 = time.perf_counter()
        for k, v in (("old_logp", logp), ("entropy", ent), ("ref_logp", ref_logp), ("values", values)):
            parts[k].append(v.float())
        timings["policy_s"] += t1 - t0
        timings["reference_s"] += t2 - t1
        timings["critic_s"] += t3 - t2
    return {k: torch.cat(v) for k, v in parts.items()}, timings


def _check_finite(name: str, tensor: torch.Tensor, mask: torch.Tensor | None, step: int) -> None:
    """Raise GuardError on every rank if any process saw a NaN/inf in ``tensor`` (masked part)."""
    bad = ~torch.isfinite(tensor)
    if mask is not None:
        bad = bad & mask.bool()
    count = all_reduce_sum({"bad": float(bad.sum())})["bad"]
    if count:
        raise GuardError(f"step {step}: {int(count)} non-finite value(s) (NaN/inf) in {name}; stopping. "
                         "Check the reward function / model outputs and lower the learning rate; "
                         "the run resumes from its last checkpoint.")


def make_experience(models: PPOModels, prompts: list[list[dict]], *, cfg: PPOConfig, beta: float,
                    reward_stats: tuple[float, float] | None, step: int, gen_seed: int | list[int]):
    """Sample, score and turn one step's prompts into an :class:`Experience`.

    ``cfg`` is the :class:`~alignment.rl.ppo_config.PPOConfig`; ``beta`` the current KL
    coefficient; ``reward_stats`` the (mean, std) to normalise scores with, or None.
    Prompts are sampled in generate calls of ``cfg.sampling.batch_size``; ``gen_seed`` gives
    each call's seed (an int ``s``: ``s, s + 1, ...``).
    Returns ``(experience, sums, timings)``: ``sums`` are this process's statistics as sums (to be
    added over processes before dividing), ``timings`` seconds per phase on this process.
    """
    t0 = time.perf_counter()
    chunk = cfg.sampling.batch_size
    starts = range(0, len(prompts), chunk)
    seeds = [gen_seed + i for i in range(len(starts))] if isinstance(gen_seed, int) else list(gen_seed)
    if len(seeds) != len(starts):
        raise ValueError(f"{len(seeds)} generation seeds for {len(starts)} generate calls")
    batch = concat_rollouts([
        sample_rollout(models.policy_module, models.tokenizer, prompts[i:i + chunk],
                       max_new_tokens=cfg.sampling.max_new_tokens,
                       max_prompt_tokens=cfg.sampling.max_prompt_tokens,
                       temperature=cfg.sampling.temperature, seed=s)
        for i, s in zip(starts, seeds)], models.tokenizer.pad_token_id)
    t_gen = time.perf_counter() - t0
    scored, timings = _score_in_chunks(models, batch, cfg.micro_batch_size, cfg.sampling.temperature)
    mask = batch.response_mask
    t1 = time.perf_counter()
    raw = models.reward_fn(prompts, decode_responses(models.tokenizer, batch)).float().reshape(-1)
    timings["reward_s"] = time.perf_counter() - t1
    if raw.shape[0] != len(prompts):
        raise ValueError(f"reward function returned {raw.shape[0]} scores for {len(prompts)} responses")
    _check_finite("the reward scores", raw, None, step)
    for name in ("old_logp", "ref_logp", "values"):
        _check_finite(f"rollout {name}", scored[name], mask, step)
    scores = raw
    if reward_stats is not None or cfg.reward.clip is not None:
        mean, std = reward_stats if reward_stats is not None else (0.0, 1.0)
        scores = normalise_scores(raw, mean, std, cfg.reward.clip)
    if cfg.reward.missing_eos_penalty is not None:
        scores = scores - cfg.reward.missing_eos_penalty * (~batch.ended).float()
    kl = per_token_kl(scored["old_logp"], scored["ref_logp"], cfg.kl.estimator, mask)
    rewards, _ = kl_penalised_rewards(scores, kl, mask, beta)
    advantages, returns = gae_advantages(rewards, scored["values"], mask, cfg.gamma, cfg.lam)
    if cfg.whiten_advantages:
        moments = all_reduce_sum_(masked_moments(advantages, mask))
        advantages = masked_whiten(advantages, mask, moments=moments)
    exp = Experience(batch, scored["old_logp"], scored["ref_logp"], scored["values"], kl, rewards,
                     advantages, returns, scored["entropy"], raw, scores)
    timings["generate_s"] = t_gen
    return exp, _rollout_sums(exp), timings


def _rollout_sums(exp: Experience) -> dict[str, float]:
    """Per-process sums for the step's metrics (divided by global counts after all_reduce)."""
    mask = exp.batch.response_mask
    k1 = per_token_kl(exp.old_logp, exp.ref_logp, "k1", mask)
    k3 = per_token_kl(exp.old_logp, exp.ref_logp, "k3", mask)
    ret_m = masked_moments(exp.returns, mask)
    err_m = masked_moments(exp.returns - exp.old_values, mask)
    return {
        "returns_sum": float(ret_m[0]), "returns_sumsq": float(ret_m[1]),
        "error_sum": float(err_m[0]), "error_sumsq": float(err_m[1]),
        "responses": float(mask.shape[0]),
        "tokens": float(mask.sum()),
        "score_raw": float(exp.raw_scores.sum()),
        "score": float(exp.scores.sum()),
        "return_total": float(masked_sum(exp.rewards, mask)),
        "kl_k1": float(sequence_kl(k1, mask).sum()),
        "kl_k3": float(sequence_kl(k3, mask).sum()),
        "kl_reward": float(sequence_kl(exp.kl, mask).sum()),
        "entropy": float(masked_sum(exp.entropy, mask)),
        "ended": float(exp.batch.ended.float().sum()),
        "value_mean": float(masked_sum(exp.old_values, mask)),
    }
