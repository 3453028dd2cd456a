"""The per-token PPO reward: a KL penalty on every token plus the reward-model score at the end.

HuatuoGPT (following InstructGPT) optimises ``r = r_RM - beta * KL(pi || pi_0)``. The KL term is
spread over the response as a per-token penalty ``-beta * kl_t`` and the (normalised, clipped)
sequence score is added at the last real token of each response, where the episode ends:

    rewards[b, t] = -beta * kl[b, t] + (t == last[b]) * score[b]      for t < len[b]
    rewards[b, t] = 0                                                  for padding

Responses are right-padded (generated tokens first, padding after EOS), so ``last[b]`` is
``mask[b].sum() - 1``.
"""

from __future__ import annotations

import torch

__all__ = ["normalise_scores", "last_token_index", "kl_penalised_rewards"]


def normalise_scores(scores: torch.Tensor, mean: float = 0.0, std: float = 1.0,
                     clip: float | None = None) -> torch.Tensor:
    """``clamp((scores - mean) / std, -clip, clip)``. Shape ``[B]`` -> ``[B]``.

    ``mean``/``std`` are the reward model's score statistics on its training data (the
    reward_model stage's ``reward_stats.json``), so a score of 1 means "one RM standard deviation
    above the typical response". Clipping bounds the damage of a reward-model outlier.
    """
    if not std > 0:
        raise ValueError(f"reward std must be > 0, got {std}")
    out = (scores - mean) / std
    if clip is not None:
        if not clip > 0:
            raise ValueError(f"reward clip must be > 0, got {clip}")
        out = out.clamp(-clip, clip)
    return out


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last valid token of each right-padded row: ``[B, T]`` -> ``[B]`` (long).

    Raises ValueError if a row has no valid token (an empty response has nowhere to put a reward).
    """
    lengths = mask.long().sum(dim=-1)
    if (lengths == 0).any():
        rows = torch.nonzero(lengths == 0).flatten().tolist()
        raise ValueError(f"responses {rows} have no tokens; cannot place their reward")
    return lengths - 1


def kl_penalised_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor,
                         beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards for PPO.

    Args:
        scores: ``[B]`` sequence scores (already normalised/clipped).
        kl: ``[B, T]`` per-token KL estimates (see :mod:`alignment.rl.kl`).
        mask: ``[B, T]`` 1 for response tokens, 0 for padding (right padded).
        beta: KL coefficient (from the KL controller).
    Returns:
        (rewards ``[B, T]``, kl_penalty ``[B, T]`` = ``-beta * kl`` on valid tokens).
    """
    if scores.shape != kl.shape[:1] or kl.shape != mask.shape:
        raise ValueError(f"shape mismatch: scores {tuple(scores.shape)}, kl {tuple(kl.shape)}, "
                         f"mask {tuple(mask.shape)}; expected [B], [B, T], [B, T]")
    valid = mask.bool()
    kl_penalty = torch.where(valid, -beta * kl, torch.zeros_like(kl))
    rewards = kl_penalty.clone()
    rows = torch.arange(scores.shape[0], device=scores.device)
    rewards[rows, last_token_index(mask)] += scores.to(rewards.dtype)
    return rewards, kl_penalty
