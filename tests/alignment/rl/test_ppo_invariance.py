"""Gradient accumulation invariance of the PPO losses, and on-policy consistency of the update.

Normalisation choice (see alignment/rl/losses.py): each micro-batch's loss is its token sum
divided by the token count of the WHOLE mini-batch, so every response token weighs the same
however the mini-batch is split. Micro-batches are trimmed of all-padding columns, so a batch of
1 sees no padding at all while the batch of 8 is padded to its longest row: the test also checks
that padding, masks and position ids do not leak into the loss.
"""

from __future__ import annotations

import pytest
import torch

from alignment.rl.experience import make_experience
from alignment.rl.losses import clipped_policy_loss, clipped_value_loss
from alignment.rl.ppo_config import PPOConfig
from alignment.rl.ppo_update import minibatch_backward, ppo_update
from alignment.rl.rollout import policy_logprobs


def _experience(setup, prompts, cfg: PPOConfig, seed=3):
    # 8 prompts of different lengths (zh and en); the RM-initialised critic and the RM score them
    picked = prompts[:4] + prompts[-4:]
    exp, _, _ = make_experience(setup.models, picked, cfg=cfg, beta=0.05, reward_stats=(0.0, 1.0),
                                step=1, gen_seed=seed)
    return exp


def _grads(setup):
    out = {}
    for name, updater in zip(("policy", "critic"), setup.updaters):
        for i, p in enumerate(updater.params):
            out[f"{name}.{i}"] = p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
            p.grad = None
    return out


@pytest.mark.slow
def test_batch_of_8_equals_8_accumulated_batches_of_1(ppo_setup, tiny_ppo_config, tmp_path):
    cfg8 = tiny_ppo_config(batch_size=8, mini_batch_size=8, micro_batch_size=8, entropy_coef=0.01,
                           sampling={"max_new_tokens": 16})
    cfg1 = cfg8.model_copy(update={"micro_batch_size": 1})
    setup, prompts = ppo_setup(cfg8, tmp_path)
    exp = _experience(setup, prompts, cfg8)
    lengths = exp.batch.response_mask.sum(dim=1)
    assert lengths.unique().numel() > 1, "the test needs responses of different lengths"
    rows = torch.arange(8)
    tokens = float(exp.batch.response_mask.sum())

    sums8 = minibatch_backward(exp, rows, *setup.updaters, cfg8, normaliser=tokens)
    grads8 = _grads(setup)
    sums1 = minibatch_backward(exp, rows, *setup.updaters, cfg1, normaliser=tokens)
    grads1 = _grads(setup)

    assert sums8["policy_loss"] == pytest.approx(sums1["policy_loss"], abs=1e-6)
    assert sums8["value_loss"] == pytest.approx(sums1["value_loss"], rel=1e-5, abs=1e-8)
    assert sums8["entropy_loss"] == pytest.approx(sums1["entropy_loss"], rel=1e-5)
    nonzero = 0
    for key in grads8:
        torch.testing.assert_close(grads1[key], grads8[key], rtol=1e-4, atol=1e-6, msg=key)
        nonzero += int(grads8[key].abs().sum() > 0)
    assert nonzero > len(grads8) // 2  # the comparison is not between zeros


@pytest.mark.slow
def test_per_micro_batch_normalisation_would_break_invariance(ppo_setup, tiny_ppo_config, tmp_path):
    """Control: averaging each micro-batch over its own tokens weights short responses more."""
    cfg = tiny_ppo_config(batch_size=8, mini_batch_size=8, micro_batch_size=8,
                          sampling={"max_new_tokens": 16})
    setup, prompts = ppo_setup(cfg, tmp_path)
    exp = _experience(setup, prompts, cfg)
    policy = setup.updaters[0].module
    whole = exp.rows(torch.arange(8))
    logp, _ = policy_logprobs(policy, whole.batch, 1.0)
    # make the advantages differ by row so the weighting matters
    adv = whole.advantages + torch.linspace(-1, 1, 8)[:, None]
    full = clipped_policy_loss(logp, whole.old_logp, adv, whole.batch.response_mask, 0.2).loss
    naive = 0.0
    for i in range(8):
        one = exp.rows(torch.tensor([i]))
        lp, _ = policy_logprobs(policy, one.batch, 1.0)
        a = one.advantages + torch.linspace(-1, 1, 8)[i]
        naive = naive + clipped_policy_loss(lp, one.old_logp, a, one.batch.response_mask, 0.2).loss / 8
    assert abs(full.item() - naive.item()) > 1e-4


@pytest.mark.slow
def test_first_update_pass_is_on_policy(ppo_setup, tiny_ppo_config, tmp_path):
    """With a zero learning rate every ratio pi/pi_old is 1: the update's forward (trimmed
    micro-batches) reproduces the rollout's log-probs and values exactly."""
    cfg = tiny_ppo_config(batch_size=8, mini_batch_size=4, micro_batch_size=3, ppo_epochs=2)
    setup, prompts = ppo_setup(cfg, tmp_path)
    exp = _experience(setup, prompts, cfg)
    metrics = ppo_update(exp, *setup.updaters, cfg, lr=0.0, critic_lr=0.0, step=0, seed=0, world_size=1)
    assert metrics["policy/ratio_mean"] == pytest.approx(1.0, abs=1e-5)
    assert metrics["policy/clip_frac"] == 0.0
    assert metrics["policy/approx_kl"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["value/clip_frac"] == 0.0
    # the value loss at unchanged weights is 0.5 * mean (V - R)^2 over tokens
    mask = exp.batch.response_mask
    expected = float(clipped_value_loss(exp.old_values, exp.old_values, exp.returns, mask, 0.2).loss)
    assert metrics["value/loss"] == pytest.approx(expected, rel=1e-4)
