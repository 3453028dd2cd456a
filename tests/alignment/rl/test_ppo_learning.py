"""PPO measurably raises a verifiable reward on the tiny SFT model while the KL stays bounded.

Reward: 1 if the response asks the patient a question ('?' / '？'), else 0 (HuatuoGPT's point:
doctors ask, distilled answers rarely do). The tiny SFT model asks in ~40% of its samples.
Measured (seeds 0, 1, 2; 30 steps of 8 rollouts, 24 new tokens, 2 PPO epochs, lr 1e-3, beta 0.05):
reward over the first 6 steps 0.46 / 0.50 / 0.42 -> last 6 steps 0.90 / 0.98 / 0.98, mean KL
5.7 / 5.5 / 5.5 nats per response (max 12). The policy also learns to answer shorter (a
24-token response has fewer chances to end badly): a known way a simple reward gets gamed.
"""

from __future__ import annotations

import pytest

from alignment.rl.reward_fn import asks_a_question


@pytest.mark.slow
def test_ppo_raises_question_asking_with_bounded_kl(ppo_inputs, tiny_ppo_config, stage_ctx, tmp_path,
                                                     read_metrics):
    from alignment.stages import ppo

    cfg = tiny_ppo_config(steps=30, batch_size=8, mini_batch_size=4, micro_batch_size=4, ppo_epochs=2,
                          sampling={"max_new_tokens": 24}, optim={"learning_rate": 1e-3, "critic_learning_rate": 1e-3},
                          reward={"normalise": False, "clip": None}, checkpoint_every=100,
                          kl={"coef": 0.05, "max_kl": 25.0})
    metrics = ppo.run(cfg, ppo_inputs, tmp_path / "ppo", stage_ctx, reward_fn=asks_a_question)
    rows = read_metrics(tmp_path / "ppo")
    assert metrics["steps"] == 30 and metrics["reward_window_steps"] == 6
    print(f"\nreward first 6 steps {metrics['reward_first']:.3f} -> last 6 {metrics['reward_last']:.3f}; "
          f"KL mean {metrics['kl_mean']:.2f}, last {metrics['kl_last']:.2f} nats")
    assert metrics["reward_first"] < 0.7
    assert metrics["reward_last"] >= metrics["reward_first"] + 0.25
    assert metrics["reward_last"] >= 0.8
    assert max(r["kl/mean"] for r in rows) < 25.0          # the guard would have stopped the run
    assert metrics["kl_mean"] < 10.0
    assert rows[0]["kl/mean"] == pytest.approx(0.0, abs=1e-4)  # step 1 samples from the reference itself
