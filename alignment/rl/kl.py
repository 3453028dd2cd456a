"""Per-token estimators of KL(pi || pi_ref) from the log-probs of sampled tokens.

The response tokens were sampled from the policy pi, so for each token we know
``logp = log pi(a_t | s_t)`` and ``ref_logp = log pi_ref(a_t | s_t)``. With the log-ratio
``log r = ref_logp - logp`` (Schulman, "Approximating KL divergence", 2020):

* k1 = ``-log r = logp - ref_logp``: unbiased, high variance, negative on some tokens.
* k2 = ``(log r)**2 / 2``: biased, low variance, >= 0.
* k3 = ``(r - 1) - log r``: unbiased and >= 0 (the gap of log's tangent line), low variance.

Summing a per-token estimate over the response gives an estimate of the sequence-level KL.
InstructGPT / HuatuoGPT-style rewards use k1 per token; k3 is the usual choice when the KL
must be non-negative token by token (e.g. for a bound check or as a loss term).
"""

from __future__ import annotations

from typing import Literal

import torch

from alignment.rl.whiten import masked_sum

__all__ = ["KLEstimator", "kl_k1", "kl_k2", "kl_k3", "per_token_kl", "sequence_kl"]

KLEstimator = Literal["k1", "k2", "k3"]


def kl_k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k1 = logp - ref_logp, per token. Shapes ``[B, T]`` -> ``[B, T]``."""
    return logp - ref_logp


def kl_k2(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k2 = 0.5 * (logp - ref_logp)**2, per token. Shapes ``[B, T]`` -> ``[B, T]``."""
    return 0.5 * (logp - ref_logp) ** 2


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k3 = exp(ref_logp - logp) - 1 - (ref_logp - logp), per token. ``[B, T]`` -> ``[B, T]``.

    ``expm1`` keeps precision when the two log-probs are close (the usual case).
    """
    log_ratio = ref_logp - logp
    return torch.expm1(log_ratio) - log_ratio


_ESTIMATORS = {"k1": kl_k1, "k2": kl_k2, "k3": kl_k3}


def per_token_kl(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: KLEstimator = "k1",
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-token KL estimate ``[B, T]``; entries outside ``mask`` (padding) are set to 0."""
    try:
        fn = _ESTIMATORS[estimator]
    except KeyError:
        raise ValueError(f"unknown KL estimator {estimator!r}; expected one of {sorted(_ESTIMATORS)}") from None
    kl = fn(logp, ref_logp)
    if mask is not None:
        kl = torch.where(mask.bool(), kl, torch.zeros_like(kl))
    return kl


def sequence_kl(kl: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of a per-token KL over each response's valid tokens: ``[B, T]`` -> ``[B]``."""
    return masked_sum(kl, mask, dim=-1)
