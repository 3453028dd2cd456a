"""Masked statistics: mean, variance, whitening and explained variance over valid tokens.

Every function takes ``x`` and a ``mask`` of the same shape ``[B, T]`` (1/True = a real response
token, 0/False = padding) and ignores the masked-out entries entirely, so padding never shifts a
statistic. For data parallel training the first and second moments can be summed across processes
with :func:`masked_moments` (one all-reducible tensor) and turned back into mean and variance with
:func:`moments_to_mean_var`, which makes whitening over 2 processes equal to whitening over the
concatenated batch.
"""

from __future__ import annotations

import torch

__all__ = [
    "masked_sum",
    "masked_mean",
    "masked_var",
    "masked_moments",
    "moments_to_mean_var",
    "masked_whiten",
    "explained_variance",
]


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Sum of ``x`` over entries where ``mask`` is set. Shapes: x, mask ``[B, T]``."""
    x = torch.where(mask.bool(), x, torch.zeros_like(x))  # where, not x*mask: a NaN in padding stays out
    return x.sum() if dim is None else x.sum(dim=dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over entries where ``mask`` is set (over all of them when ``dim`` is None).

    Raises ValueError when the mask selects nothing (a mean of no tokens is not a number).
    """
    count = mask.sum() if dim is None else mask.sum(dim=dim)
    if (count == 0).any():
        raise ValueError("masked_mean: the mask selects no entries")
    return masked_sum(x, mask, dim) / count.to(x.dtype)


def masked_moments(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[sum(x), sum(x**2), count]`` over masked entries, as one float64 tensor of shape ``[3]``.

    Sum these across processes (``all_reduce``) before :func:`moments_to_mean_var` to get the
    statistics of the global batch.
    """
    xm = torch.where(mask.bool(), x, torch.zeros_like(x)).double()
    return torch.stack([xm.sum(), (xm * xm).sum(), mask.sum().double()])


def moments_to_mean_var(moments: torch.Tensor, unbiased: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, variance) from :func:`masked_moments` output; Bessel-corrected when ``unbiased``."""
    total, total_sq, count = moments.unbind()
    if count < 1 or (unbiased and count < 2):
        raise ValueError(f"cannot take a {'n-1 ' if unbiased else ''}variance of {int(count)} entries")
    mean = total / count
    var = (total_sq / count - mean * mean).clamp_min(0.0)
    if unbiased:
        var = var * count / (count - 1)
    return mean, var


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of ``x`` over all masked entries (a scalar), Bessel-corrected when ``unbiased``."""
    mean = masked_mean(x, mask)
    count = mask.sum()
    if unbiased and count < 2:
        raise ValueError(f"masked_var: an unbiased variance needs >= 2 entries, got {int(count)}")
    var = masked_sum((x - mean) ** 2, mask) / count.to(x.dtype)
    return var * count / (count - 1) if unbiased else var


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = False,
                  moments: torch.Tensor | None = None, eps: float = 1e-8) -> torch.Tensor:
    """``(x - mean) / sqrt(var + eps)`` over masked entries; masked-out entries become 0.

    Args:
        x, mask: ``[B, T]``.
        shift_mean: add the mean back after scaling (keeps the sign information of rewards).
        moments: global :func:`masked_moments` (summed over processes); default: this batch's.
    Returns ``[B, T]``, same dtype as ``x``.
    """
    if moments is None:
        moments = masked_moments(x, mask)
    mean, var = moments_to_mean_var(moments, unbiased=True)
    mean, var = mean.to(x.dtype), var.to(x.dtype)
    out = (x - mean) * torch.rsqrt(var + eps)
    if shift_mean:
        out = out + mean
    return torch.where(mask.bool(), out, torch.zeros_like(out))


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``1 - Var(returns - values) / Var(returns)`` over masked entries (a scalar).

    1 = the critic predicts the returns perfectly, 0 = no better than their mean, < 0 = worse.
    NaN when the returns are constant (nothing to explain).
    """
    var_returns = masked_var(returns, mask, unbiased=False)
    var_error = masked_var(returns - values, mask, unbiased=False)
    if var_returns == 0:
        return torch.tensor(float("nan"), dtype=values.dtype)
    return 1.0 - var_error / var_returns
