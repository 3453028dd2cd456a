"""The PPO update: epochs over one step's experience, in mini-batches, accumulated micro-batches.

Gradient normalisation (see :mod:`alignment.rl.losses`): every micro-batch's loss is its token
SUM divided by the number of response tokens in the whole mini-batch over all processes, so the
accumulated gradient is the per-token mean over the mini-batch whatever the micro-batch size or
the number of processes (tested: 1 x 8 == 8 x 1).
"""

from __future__ import annotations

import torch

from alignment.rl.experience import Experience, GuardError
from alignment.rl.losses import clipped_policy_loss, clipped_value_loss
from alignment.rl.parallel import all_reduce_sum, derived_seed
from alignment.rl.ppo_config import PPOConfig
from alignment.rl.rollout import policy_logprobs
from alignment.rl.whiten import masked_sum

__all__ = ["minibatch_backward", "ppo_update"]


def minibatch_backward(exp: Experience, rows: torch.Tensor, policy, critic, cfg: PPOConfig,
                       normaliser: float) -> dict[str, float]:
    """Forward/backward the mini-batch ``rows`` in micro-batches; gradients accumulate.

    ``policy`` / ``critic`` are updaters (``.module`` for the forward, ``.backward(loss)``).
    Returns sums of the per-micro-batch statistics (losses are already divided by ``normaliser``).
    """
    sums = {"policy_loss": 0.0, "value_loss": 0.0, "entropy_loss": 0.0, "clipped": 0.0,
            "value_clipped": 0.0, "approx_kl": 0.0, "ratio": 0.0}
    for chunk in rows.split(cfg.micro_batch_size):
        sub = exp.rows(chunk)
        mask = sub.batch.response_mask
        logp, entropy = policy_logprobs(policy.module, sub.batch, cfg.sampling.temperature,
                                        with_entropy=cfg.entropy_coef > 0)
        pl = clipped_policy_loss(logp, sub.old_logp, sub.advantages, mask, cfg.clip_eps, normaliser)
        loss = pl.loss
        if entropy is not None:
            entropy_term = masked_sum(entropy, mask) / normaliser
            loss = loss - cfg.entropy_coef * entropy_term
            sums["entropy_loss"] += entropy_term.item()
        policy.backward(loss)
        values = critic.module(sub.batch.sequences, sub.batch.attention_mask, sub.batch.prompt_len)
        vl = clipped_value_loss(values, sub.old_values, sub.returns, mask, cfg.value_clip, normaliser)
        critic.backward(vl.loss)
        sums["policy_loss"] += pl.loss.item()
        sums["value_loss"] += vl.loss.item()
        sums["clipped"] += float(pl.clipped_tokens)
        sums["value_clipped"] += float(vl.clipped_tokens)
        sums["approx_kl"] += float(pl.approx_kl_sum)
        sums["ratio"] += float(pl.ratio_sum)
    return sums


def ppo_update(exp: Experience, policy, critic, cfg: PPOConfig, *, lr: float, critic_lr: float, step: int,
               seed: int, world_size: int) -> dict[str, float]:
    """``cfg.ppo_epochs`` passes over ``exp`` in shuffled mini-batches. Returns global metrics.

    Each process holds ``batch_size / world_size`` rows and takes ``mini_batch_size / world_size``
    of them per mini-batch (the same count everywhere, so optimizer steps line up).
    """
    n_local = exp.batch.sequences.shape[0]
    mb_local = cfg.mini_batch_size // world_size
    totals: dict[str, float] = {}
    n_minibatches = 0
    for epoch in range(cfg.ppo_epochs):
        gen = torch.Generator().manual_seed(derived_seed(seed, "minibatch", step, epoch))
        order = torch.randperm(n_local, generator=gen)
        for start in range(0, n_local, mb_local):
            rows = order[start:start + mb_local]
            tokens = all_reduce_sum({"t": float(exp.batch.response_mask[rows].sum())})["t"]
            policy.begin(lr)
            critic.begin(critic_lr)
            sums = minibatch_backward(exp, rows, policy, critic, cfg, normaliser=tokens)
            _check_losses(sums, step)  # before the optimizer step: NaN never reaches the weights
            sums["grad_norm_policy"] = policy.finish()
            sums["grad_norm_critic"] = critic.finish()
            sums["tokens"] = tokens
            for k in ("policy_loss", "value_loss", "entropy_loss"):
                sums[k] *= tokens  # token-weighted, so the reported loss is a mean over all tokens
            for k, v in sums.items():
                totals[k] = totals.get(k, 0.0) + v
            n_minibatches += 1
    return _update_metrics(totals, n_minibatches)


def _update_metrics(totals: dict[str, float], n_minibatches: int) -> dict[str, float]:
    """Per-token means over every token of every mini-batch and epoch (grad norms: per step)."""
    local = {k: v for k, v in totals.items() if k not in ("tokens", "grad_norm_policy", "grad_norm_critic")}
    g = all_reduce_sum(local)  # loss terms are per-process shares of each global mini-batch loss
    tokens = totals["tokens"]  # already global
    return {
        "policy/loss": g["policy_loss"] / tokens,
        "policy/entropy_bonus": g["entropy_loss"] / tokens,
        "policy/clip_frac": g["clipped"] / tokens,
        "policy/approx_kl": g["approx_kl"] / tokens,
        "policy/ratio_mean": g["ratio"] / tokens,
        "policy/grad_norm": totals["grad_norm_policy"] / n_minibatches,
        "value/loss": g["value_loss"] / tokens,
        "value/clip_frac": g["value_clipped"] / tokens,
        "value/grad_norm": totals["grad_norm_critic"] / n_minibatches,
    }


def _check_losses(sums: dict[str, float], step: int) -> None:
    """GuardError on every process when the mini-batch loss is NaN/inf on any of them."""
    g = all_reduce_sum({"policy": sums["policy_loss"], "value": sums["value_loss"]})
    for name, value in g.items():
        if not torch.isfinite(torch.tensor(value)):
            raise GuardError(f"step {step}: the {name} loss is {value} (NaN/inf); stopping before the "
                             "optimizer step. Lower the learning rate or check the rewards; the run "
                             "resumes from its last checkpoint.")
