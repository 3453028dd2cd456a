"""The PPO math against values worked out by hand in the comments (no model, no randomness)."""

from __future__ import annotations

import math

import pytest
import torch

from alignment.rl.controllers import AdaptiveKLController, FixedKLController, make_kl_controller
from alignment.rl.gae import gae_advantages
from alignment.rl.kl import kl_k1, kl_k2, kl_k3, per_token_kl, sequence_kl
from alignment.rl.losses import (clipped_policy_loss, clipped_value_loss, entropy_from_logits,
                                 token_logprobs)
from alignment.rl.rewards import kl_penalised_rewards, last_token_index, normalise_scores
from alignment.rl.whiten import (explained_variance, masked_mean, masked_moments, masked_var,
                                 masked_whiten, moments_to_mean_var)

T = torch.tensor


def close(a, b, tol=1e-6):
    torch.testing.assert_close(torch.as_tensor(a, dtype=torch.float64),
                               torch.as_tensor(b, dtype=torch.float64), atol=tol, rtol=0)


def test_gae_three_steps_by_hand():
    # gamma = 0.9, lambda = 0.8, so gamma * lambda = 0.72.
    # Row 0: r = [0, 0, 1], V = [0.5, 0.4, 0.6], all valid; V after the end is 0.
    #   t=2: delta = 1 + 0.9*0 - 0.6 = 0.4                    A2 = 0.4
    #   t=1: delta = 0 + 0.9*0.6 - 0.4 = 0.14                 A1 = 0.14 + 0.72*0.4 = 0.428
    #   t=0: delta = 0 + 0.9*0.4 - 0.5 = -0.14                A0 = -0.14 + 0.72*0.428 = 0.16816
    #   returns = A + V = [0.66816, 0.828, 1.0]
    # Row 1: 2 real tokens then padding (whose reward 9.9 and value 7.0 must be ignored).
    #   t=1: delta = 2 - 1 = 1.0                               A1 = 1.0
    #   t=0: delta = 0.5 + 0.9*1.0 - 1.0 = 0.4                 A0 = 0.4 + 0.72*1.0 = 1.12
    #   returns = [2.12, 2.0, 0]
    rewards = T([[0.0, 0.0, 1.0], [0.5, 2.0, 9.9]])
    values = T([[0.5, 0.4, 0.6], [1.0, 1.0, 7.0]])
    mask = T([[1, 1, 1], [1, 1, 0]])
    adv, ret = gae_advantages(rewards, values, mask, gamma=0.9, lam=0.8)
    close(adv, [[0.16816, 0.428, 0.4], [1.12, 1.0, 0.0]])
    close(ret, [[0.66816, 0.828, 1.0], [2.12, 2.0, 0.0]])


def test_gae_lambda_one_is_discounted_return_minus_value():
    # lam = 1, gamma = 1: A_t = sum of future rewards - V_t. r = [1, 2, 3] -> [6, 5, 3] - V.
    adv, ret = gae_advantages(T([[1.0, 2.0, 3.0]]), T([[1.0, 1.0, 1.0]]), T([[1, 1, 1]]), 1.0, 1.0)
    close(adv, [[5.0, 4.0, 2.0]])
    close(ret, [[6.0, 5.0, 3.0]])


def test_gae_rejects_bad_arguments():
    with pytest.raises(ValueError, match="shape"):
        gae_advantages(torch.zeros(2, 3), torch.zeros(2, 2), torch.ones(2, 3), 1.0, 1.0)
    with pytest.raises(ValueError, match="gamma"):
        gae_advantages(torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1, 1), 1.5, 1.0)


def test_kl_estimators_by_hand():
    # token 0: pi = 0.5, pi_ref = 0.25 -> log r = log(0.25/0.5) = -log 2, r = 0.5
    #   k1 = log 2 = 0.693147; k2 = (log 2)^2 / 2 = 0.240227; k3 = (0.5 - 1) + log 2 = 0.193147
    # token 1: pi = 0.2, pi_ref = 0.4 -> r = 2
    #   k1 = -log 2; k2 = 0.240227; k3 = (2 - 1) - log 2 = 0.306853
    logp, ref = torch.log(T([[0.5, 0.2]])), torch.log(T([[0.25, 0.4]]))
    ln2 = math.log(2)
    close(kl_k1(logp, ref), [[ln2, -ln2]])
    close(kl_k2(logp, ref), [[ln2 ** 2 / 2, ln2 ** 2 / 2]])
    close(kl_k3(logp, ref), [[ln2 - 0.5, 1 - ln2]])
    # mask zeroes padding; sequence KL sums the rest
    kl = per_token_kl(logp, ref, "k3", mask=T([[1, 0]]))
    close(kl, [[ln2 - 0.5, 0.0]])
    close(sequence_kl(kl_k1(logp, ref), T([[1, 1]])), [0.0])
    with pytest.raises(ValueError, match="unknown KL estimator"):
        per_token_kl(logp, ref, "k4")


def test_k3_is_non_negative_and_unbiased_in_expectation():
    # For p = [0.7, 0.3], q = [0.4, 0.6]: KL(p||q) = 0.7 ln(0.7/0.4) + 0.3 ln(0.3/0.6).
    # E_p[k1] and E_p[k3] (exact expectations over the 2 outcomes) both equal it.
    p, q = T([0.7, 0.3]), T([0.4, 0.6])
    exact = float((p * (p / q).log()).sum())
    k1, k3 = kl_k1(p.log(), q.log()), kl_k3(p.log(), q.log())
    assert (k3 >= 0).all()
    close((p * k1).sum(), exact)
    close((p * k3).sum(), exact)


def test_masked_stats_and_whiten_by_hand():
    # valid entries 1, 2, 3, 4: mean 2.5, unbiased var = (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3
    x = T([[1.0, 2.0, 3.0], [4.0, 100.0, float("nan")]])
    mask = T([[1, 1, 1], [1, 0, 0]])
    close(masked_mean(x, mask), 2.5)
    close(masked_mean(x, mask, dim=1), [2.0, 4.0])
    close(masked_var(x, mask), 5 / 3)
    close(masked_var(x, mask, unbiased=False), 1.25)
    s = math.sqrt(5 / 3)
    close(masked_whiten(x, mask), [[-1.5 / s, -0.5 / s, 0.5 / s], [1.5 / s, 0.0, 0.0]], tol=1e-5)
    close(masked_whiten(x, mask, shift_mean=True)[0, 0], -1.5 / s + 2.5, tol=1e-5)
    # moments of two halves summed == moments of the whole (what all_reduce relies on)
    parts = masked_moments(x[:1], mask[:1]) + masked_moments(x[1:], mask[1:])
    mean, var = moments_to_mean_var(parts)
    close(mean, 2.5)
    close(var, 5 / 3)
    with pytest.raises(ValueError, match="selects no entries"):
        masked_mean(x, torch.zeros_like(mask))


def test_explained_variance_by_hand():
    # returns [1, 2, 3] (var 2/3), errors [0, 0, 1] (var 2/9) -> 1 - (2/9)/(2/3) = 2/3
    close(explained_variance(T([[1.0, 2.0, 2.0]]), T([[1.0, 2.0, 3.0]]), T([[1, 1, 1]])), 2 / 3)
    assert torch.isnan(explained_variance(T([[0.0, 1.0]]), T([[1.0, 1.0]]), T([[1, 1]])))


def test_clipped_policy_loss_by_hand():
    # eps = 0.2, old log-probs 0 so ratio = exp(logp).
    # tok0: A= 1, ratio 1.5: unclipped -1.5, clipped -1.2 -> max -1.2 (clip active)
    # tok1: A=-1, ratio 0.5: unclipped  0.5, clipped  0.8 -> max  0.8 (clip active)
    # tok2: A= 2, ratio 1.1: both -2.2                    -> -2.2 (not clipped)
    # tok3: padding with absurd values -> ignored
    # loss = (-1.2 + 0.8 - 2.2) / 3 = -0.866667; grad wrt logp: 0, 0, -A*ratio/3 = -2.2/3
    logp = torch.log(T([[1.5, 0.5, 1.1, 1e6]])).requires_grad_()
    out = clipped_policy_loss(logp, torch.zeros(1, 4), T([[1.0, -1.0, 2.0, 1e9]]),
                              T([[1, 1, 1, 0]]), clip_eps=0.2)
    close(out.loss, -2.6 / 3)
    close(out.clipped_tokens, 2.0)
    close(out.ratio_sum, 3.1)
    # k3(old||new) per token = (ratio - 1) - log(ratio)
    close(out.approx_kl_sum, sum(r - 1 - math.log(r) for r in (1.5, 0.5, 1.1)), tol=1e-5)
    out.loss.backward()
    close(logp.grad, [[0.0, 0.0, -2.2 / 3, 0.0]], tol=1e-6)
    # an explicit normaliser divides the same token sum
    out2 = clipped_policy_loss(logp.detach(), torch.zeros(1, 4), T([[1.0, -1.0, 2.0, 0.0]]),
                               T([[1, 1, 1, 0]]), clip_eps=0.2, normaliser=10)
    close(out2.loss, -2.6 / 10)


def test_clipped_value_loss_by_hand():
    # clip 0.2. tok0: V=1, old=0.5, R=2: (1-2)^2 = 1; V_clip = 0.5+0.2 = 0.7 -> (0.7-2)^2 = 1.69
    #   max = 1.69 (clip active). tok1: V=2=old, R=0: both 4. loss = 0.5*(1.69+4)/2 = 1.4225
    values = T([[1.0, 2.0, 5.0]]).requires_grad_()
    out = clipped_value_loss(values, T([[0.5, 2.0, 0.0]]), T([[2.0, 0.0, 0.0]]),
                             T([[1, 1, 0]]), clip_range=0.2)
    close(out.loss, 1.4225)
    close(out.clipped_tokens, 1.0)
    out.loss.backward()
    # clipped branch has no gradient wrt V; tok1: 0.5 * 2 * (2 - 0) / 2 = 1.0
    close(values.grad, [[0.0, 1.0, 0.0]])
    plain = clipped_value_loss(values.detach(), T([[0.5, 2.0, 0.0]]), T([[2.0, 0.0, 0.0]]),
                               T([[1, 1, 0]]), clip_range=None)
    close(plain.loss, 0.5 * (1 + 4) / 2)


def test_entropy_and_token_logprobs_by_hand():
    # uniform over 4 -> log 4; probs [0.25, 0.75] -> -(0.25 ln 0.25 + 0.75 ln 0.75) = 0.562335
    logits = T([[[0.0, 0.0, 0.0, 0.0], [0.0, math.log(3), -1e9, -1e9]]])
    close(entropy_from_logits(logits), [[math.log(4), 0.562335]], tol=1e-6)
    close(token_logprobs(logits, torch.tensor([[2, 1]])), [[math.log(0.25), math.log(0.75)]])


def test_kl_penalised_rewards_by_hand():
    # beta 0.5. Row 0 (3 tokens, score 2): [-0.05, -0.1, -0.15 + 2] = [-0.05, -0.1, 1.85]
    # Row 1 (2 tokens, score -1): [-0.2, -0.25 - 1, 0 (pad)] = [-0.2, -1.25, 0]
    kl = T([[0.1, 0.2, 0.3], [0.4, 0.5, 9.0]])
    mask = T([[1, 1, 1], [1, 1, 0]])
    rewards, penalty = kl_penalised_rewards(T([2.0, -1.0]), kl, mask, beta=0.5)
    close(rewards, [[-0.05, -0.1, 1.85], [-0.2, -1.25, 0.0]])
    close(penalty, [[-0.05, -0.1, -0.15], [-0.2, -0.25, 0.0]])
    close(last_token_index(mask), [2, 1])
    with pytest.raises(ValueError, match="no tokens"):
        last_token_index(T([[1, 0], [0, 0]]))
    with pytest.raises(ValueError, match="shape mismatch"):
        kl_penalised_rewards(T([1.0]), kl, mask, 0.1)


def test_normalise_scores_by_hand():
    # (s - 1) / 2 clipped to +-1.5: [3, -5, 1] -> [1, -3 -> -1.5, 0]
    close(normalise_scores(T([3.0, -5.0, 1.0]), mean=1.0, std=2.0, clip=1.5), [1.0, -1.5, 0.0])
    with pytest.raises(ValueError, match="std"):
        normalise_scores(T([1.0]), std=0.0)


def test_adaptive_kl_controller_by_hand():
    # target 6, horizon 10000, beta 0.1.
    # KL 9 -> error = min(9/6 - 1, 0.2) = 0.2; beta = 0.1 * (1 + 0.2 * 256/10000) = 0.100512
    # KL 3 -> error = max(3/6 - 1, -0.2) = -0.2; beta = 0.100512 * (1 - 0.2 * 100/10000)
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=10000)
    ctl.update(9.0, 256)
    close(ctl.value, 0.100512, tol=1e-12)
    ctl.update(3.0, 100)
    close(ctl.value, 0.100512 * 0.998, tol=1e-12)
    # small error stays proportional: KL 6.6 -> error 0.1; beta *= 1 + 0.1 * 0.5
    ctl2 = AdaptiveKLController(1.0, target=6.0, horizon=10)
    ctl2.update(6.6, 5)
    close(ctl2.value, 1.05, tol=1e-12)
    # state round trip
    restored = make_kl_controller(0.5, adaptive=True, target=1.0, horizon=1)
    restored.load_state_dict(ctl.state_dict())
    assert restored.value == ctl.value and restored.target == 6.0
    with pytest.raises(ValueError, match="kind"):
        FixedKLController(0.1).load_state_dict(ctl.state_dict())


def test_fixed_kl_controller_stays():
    ctl = make_kl_controller(0.05, adaptive=False)
    ctl.update(100.0, 1000)
    assert ctl.value == 0.05
    with pytest.raises(ValueError, match="target and horizon"):
        make_kl_controller(0.05, adaptive=True)
