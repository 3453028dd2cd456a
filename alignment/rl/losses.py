"""PPO losses over response tokens: clipped policy loss, clipped value loss, entropy, log-probs.

Normalisation (why ``normaliser`` exists): a loss here is a SUM over the valid tokens of the
batch it is given, divided by ``normaliser``. The trainer passes the number of valid tokens of
the whole mini-batch (over all micro-batches and all processes), so the gradient of one
mini-batch is the per-token mean over the mini-batch however it is split: 8 sequences in one
micro-batch give exactly the same gradient as 8 micro-batches of 1 accumulated (the invariance
test checks it). With the default (``normaliser=None``: this batch's own token count) a split
batch would weight the tokens of short responses more. Every token of the mini-batch counts the
same ("token-level" normalisation, as in TRL / DAPO), not every sequence.

Statistics are returned as token SUMS (e.g. the number of clipped tokens) so a caller can add
them over micro-batches and processes before dividing by the global token count.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from alignment.rl.whiten import masked_sum

__all__ = [
    "PolicyLoss", "ValueLoss", "clipped_policy_loss", "clipped_value_loss",
    "token_logprobs", "entropy_from_logits",
]


@dataclass
class PolicyLoss:
    loss: torch.Tensor            # scalar, differentiable: sum of per-token losses / normaliser
    clipped_tokens: torch.Tensor  # scalar: tokens whose clipped objective was the active one
    approx_kl_sum: torch.Tensor   # scalar: sum over tokens of k3(old || new), a drift diagnostic
    ratio_sum: torch.Tensor       # scalar: sum over tokens of pi/pi_old


@dataclass
class ValueLoss:
    loss: torch.Tensor            # scalar, differentiable
    clipped_tokens: torch.Tensor  # scalar: tokens where the clipped value error was the larger


def _normaliser(mask: torch.Tensor, normaliser: float | torch.Tensor | None) -> torch.Tensor | float:
    if normaliser is None:
        count = mask.sum()
        if count == 0:
            raise ValueError("loss over an empty mask")
        return count
    if not float(normaliser) > 0:
        raise ValueError(f"loss normaliser must be > 0, got {float(normaliser)}")
    return normaliser


def clipped_policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                        mask: torch.Tensor, clip_eps: float,
                        normaliser: float | torch.Tensor | None = None) -> PolicyLoss:
    """PPO-clip surrogate (Schulman et al., 2017, eq. 7) as a loss to minimise.

    Per token, with ``ratio = exp(logp - old_logp)``:
    ``max(-A * ratio, -A * clamp(ratio, 1 - eps, 1 + eps))``.

    Args:
        logp: ``[B, T]`` log-probs of the sampled tokens under the current policy (with grad).
        old_logp: ``[B, T]`` the same under the policy that sampled them (no grad).
        advantages: ``[B, T]`` (usually whitened).
        mask: ``[B, T]`` 1 for response tokens.
        clip_eps: the clip range epsilon (0.2 is the usual value).
        normaliser: divide the token sum by this (see the module doc); default: ``mask.sum()``.
    """
    log_ratio = logp - old_logp.detach()
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    per_token = torch.maximum(unclipped, clipped)
    with torch.no_grad():
        clipped_tokens = masked_sum((clipped > unclipped).to(logp.dtype), mask)
        approx_kl_sum = masked_sum(torch.expm1(log_ratio) - log_ratio, mask)
        ratio_sum = masked_sum(ratio, mask)
    loss = masked_sum(per_token, mask) / _normaliser(mask, normaliser)
    return PolicyLoss(loss, clipped_tokens, approx_kl_sum, ratio_sum)


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
                       mask: torch.Tensor, clip_range: float | None,
                       normaliser: float | torch.Tensor | None = None) -> ValueLoss:
    """Clipped value loss: ``0.5 * max((V - R)^2, (V_clip - R)^2)`` per token.

    ``V_clip = old_V + clamp(V - old_V, -clip_range, clip_range)`` keeps the critic from moving
    far from its rollout-time predictions in one update (as PPO does for the policy).
    ``clip_range=None`` gives the plain squared error ``0.5 * (V - R)^2``. Shapes: all ``[B, T]``.
    """
    error = (values - returns) ** 2
    if clip_range is None:
        per_token = error
        clipped_tokens = torch.zeros((), dtype=values.dtype)
    else:
        values_clipped = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
        error_clipped = (values_clipped - returns) ** 2
        per_token = torch.maximum(error, error_clipped)
        with torch.no_grad():
            clipped_tokens = masked_sum((error_clipped > error).to(values.dtype), mask)
    loss = 0.5 * masked_sum(per_token, mask) / _normaliser(mask, normaliser)
    return ValueLoss(loss, clipped_tokens)


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Log-probability of each token under ``logits``: ``[B, T, V]``, ``[B, T]`` -> ``[B, T]``.

    ``logits[:, t]`` must be the prediction for ``tokens[:, t]`` (already shifted by the caller).
    Computed in float32 for a stable log-softmax whatever the model dtype.
    """
    logits = logits.float()
    picked = torch.gather(logits, -1, tokens.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the softmax of ``logits`` per position: ``[B, T, V]`` -> ``[B, T]`` (nats)."""
    logits = logits.float()
    log_probs = torch.log_softmax(logits, dim=-1)
    return -(log_probs.exp() * log_probs).sum(dim=-1)
