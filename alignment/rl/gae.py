"""Generalised advantage estimation (Schulman et al., 2016) over right-padded responses.

For one response with per-token rewards ``r_t`` and critic values ``V_t`` (t = 0..L-1; the
episode ends after the last token, so ``V_L = 0``):

    delta_t = r_t + gamma * V_{t+1} - V_t
    A_t     = delta_t + gamma * lam * A_{t+1}          (A_L = 0)
    R_t     = A_t + V_t                                  (the critic's regression target)

Padding after a response is treated as "after the end": its value and advantage are 0, so the
recursion restarts cleanly at each row's last real token.
"""

from __future__ import annotations

import torch

__all__ = ["gae_advantages"]


def gae_advantages(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor,
                   gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns, both ``[B, T]`` with 0 on padding.

    Args:
        rewards: ``[B, T]`` per-token rewards (see :func:`alignment.rl.rewards.kl_penalised_rewards`).
        values: ``[B, T]`` critic values ``V(s_t)`` recorded at rollout time.
        mask: ``[B, T]`` 1 for response tokens, 0 for padding; each row's ones come first.
        gamma: discount factor in [0, 1].
        lam: GAE lambda in [0, 1] (0 = one-step TD, 1 = Monte-Carlo return minus V).
    """
    if not (rewards.shape == values.shape == mask.shape):
        raise ValueError(f"shape mismatch: rewards {tuple(rewards.shape)}, values "
                         f"{tuple(values.shape)}, mask {tuple(mask.shape)}")
    if not (0.0 <= gamma <= 1.0 and 0.0 <= lam <= 1.0):
        raise ValueError(f"gamma and lam must be in [0, 1], got gamma={gamma}, lam={lam}")
    valid = mask.to(values.dtype)
    values = values * valid
    rewards = rewards * valid
    steps = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    next_adv = torch.zeros_like(rewards[:, 0])
    next_value = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(steps)):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        adv_t = (delta + gamma * lam * next_adv) * valid[:, t]
        advantages[:, t] = adv_t
        next_adv, next_value = adv_t, values[:, t]
    returns = (advantages + values) * valid
    return advantages, returns
