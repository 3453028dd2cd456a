"""The guards stop PPO with a clear error: NaN/inf rewards, and a KL past its bound."""

from __future__ import annotations

import pytest
import torch

from alignment.rl.experience import GuardError


def nan_reward(prompts, responses):
    scores = torch.ones(len(responses))
    scores[0] = float("nan")
    return scores


@pytest.mark.slow
def test_nan_reward_stops_with_a_clear_error(ppo_inputs, tiny_ppo_config, stage_ctx, tmp_path):
    from alignment.stages import ppo

    with pytest.raises(GuardError, match=r"step 1: 1 non-finite value\(s\) \(NaN/inf\) in the reward scores"):
        ppo.run(tiny_ppo_config(steps=2), ppo_inputs, tmp_path / "ppo", stage_ctx, reward_fn=nan_reward)
    assert not (tmp_path / "ppo" / "model").exists()


@pytest.mark.slow
def test_kl_past_its_bound_stops_with_a_clear_error(ppo_inputs, tiny_ppo_config, stage_ctx, tmp_path):
    from alignment.rl.reward_fn import asks_a_question
    from alignment.stages import ppo

    # a large learning rate moves the policy far from the reference after one update
    cfg = tiny_ppo_config(steps=4, optim={"learning_rate": 2e-2, "critic_learning_rate": 1e-3}, kl={"max_kl": 0.5},
                          checkpoint_every=1)
    with pytest.raises(GuardError, match=r"mean KL\(pi \|\| pi_ref\) = .* exceeds kl.max_kl = 0.5"):
        ppo.run(cfg, ppo_inputs, tmp_path / "ppo", stage_ctx, reward_fn=asks_a_question)
    # the steps before the drift were checkpointed: a rerun with a looser bound resumes from them
    assert (tmp_path / "ppo" / "checkpoints" / "step-00000001" / "state.json").exists()


def test_inf_loss_guard_fires_before_the_optimizer_step():
    from alignment.rl.ppo_update import _check_losses

    _check_losses({"policy_loss": 0.1, "value_loss": 2.0}, step=3)
    with pytest.raises(GuardError, match="step 3: the value loss is inf"):
        _check_losses({"policy_loss": 0.1, "value_loss": float("inf")}, step=3)
