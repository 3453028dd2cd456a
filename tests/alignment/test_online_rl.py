"""GRPO and RLOO (trl) as the ``online_rl`` stage: config checks, reward adapter, learning.

Learning test: the tiny SFT model asks the patient a question in ~40% of its samples; GRPO with
the programmatic ``asks_question`` reward (1 if the response contains '?') raises that rate within
a few dozen steps. Numbers measured on this machine are in the test's docstring.
"""

from __future__ import annotations

import json
import logging

import pytest
import torch

from alignment.stages import online_rl
from medalign.stage import StageContext


def _ctx() -> StageContext:
    return StageContext(job="test", stage="online_rl", seed=0, progress=False,
                        logger=logging.getLogger("medalign.test.online_rl"))


def test_config_refuses_incomplete_groups_and_mismatched_weights():
    with pytest.raises(ValueError, match="not a multiple of k = 3"):
        online_rl.Config(k=3, optim={"per_device_batch_size": 8})
    with pytest.raises(ValueError, match="2 entries for 1 functions"):
        online_rl.Config(reward={"functions": ["asks_question"], "weights": [1.0, 2.0]})
    with pytest.raises(ValueError, match="twice"):
        online_rl.Config(reward={"functions": ["asks_question", "asks_question"]})
    with pytest.raises(ValueError, match="lora with distributed.deepspeed=zero3"):
        online_rl.Config(scope={"mode": "lora"}, distributed={"deepspeed": "zero3"})
    cfg = online_rl.Config()
    assert (cfg.kl.coef, cfg.scope.mode, cfg.scope.n_layers, cfg.optim.learning_rate) == \
        (0.05, "last_n_layers", 2, 8e-6)


def test_config_fields_reach_trl_under_trl_names(tmp_path):
    """Our names (as in the ppo stage) -> trl's GRPOConfig / RLOOConfig arguments."""
    cfg = online_rl.Config.model_validate({
        "k": 4, "kl": {"coef": 0.02}, "ppo_epochs": 2, "clip_eps": 0.3,
        "sampling": {"temperature": 0.9, "top_p": 0.95, "top_k": 20, "max_new_tokens": 40},
        "reward": {"functions": ["reward_model", "asks_question"], "weights": [0.5, 2.0], "missing_eos_penalty": 1.0},
        "rloo": {"whiten_advantages": True}})
    args = online_rl._trainer_args(cfg, tmp_path, _ctx(), seed=0)
    assert (args.num_generations, args.beta, args.num_iterations, args.epsilon) == (4, 0.02, 2, 0.3)
    assert (args.temperature, args.top_p, args.top_k, args.max_completion_length) == (0.9, 0.95, 20, 40)
    assert args.reward_weights == [0.5, 2.0, 1.0]        # + the missing-EOS penalty, weight 1
    assert online_rl.reward_names(cfg) == ["reward_model", "asks_question", "missing_eos"]
    rloo = online_rl._trainer_args(cfg.model_copy(update={"algorithm": "rloo"}), tmp_path, _ctx(), seed=0)
    assert rloo.normalize_advantages is True
    with pytest.raises(ValueError, match="sampling.temperature must be > 0"):
        online_rl.Config(sampling={"temperature": 0})
    with pytest.raises(ValueError, match="sampling.batch_size does not apply"):
        online_rl.Config(sampling={"batch_size": 8})


def test_missing_eos_penalty_hits_completions_cut_at_the_cap():
    from alignment.rl.trl_rewards import MissingEosPenalty

    penalty = MissingEosPenalty(0.5, {2, 0})            # eos 2, pad 0
    assert penalty.__name__ == "missing_eos"
    ids = [[5, 6, 2], [5, 6, 7], [9, 0], []]
    assert penalty(prompts=[[]] * 4, completions=[""] * 4, completion_ids=ids) == [0.0, -0.5, 0.0, 0.0]


def test_reward_model_input_is_required_only_for_the_rm_reward(tmp_path):
    with pytest.raises(ValueError, match=r"missing inputs \['reward_model'\]"):
        online_rl.run(online_rl.Config(), {"data": "d", "policy": "p"}, tmp_path, _ctx())
    with pytest.raises(ValueError, match=r"missing inputs \['policy'\]"):
        online_rl.run(online_rl.Config(reward={"functions": ["asks_question"]}), {"data": "d"}, tmp_path, _ctx())


def test_trl_reward_adapter_normalises_and_refuses_nan():
    from alignment.rl.trl_rewards import TrlReward

    prompts = [[{"role": "user", "content": "q"}]] * 3
    completions = [[{"role": "assistant", "content": c}] for c in ("a?", "b", "c？")]
    fixed = lambda p, r: torch.tensor([1.0, 3.0, 11.0])  # noqa: E731
    # (score - 1) / 2, clipped to [-4, 4]: 0, 1, 5 -> 4
    assert TrlReward("rm", fixed, stats=(1.0, 2.0), clip=4.0)(prompts, completions) == [0.0, 1.0, 4.0]
    from alignment.rl.reward_fn import asks_a_question

    asks = TrlReward("asks_question", asks_a_question)
    assert asks.__name__ == "asks_question"
    assert asks(prompts=prompts, completions=completions, trainer_state=None) == [1.0, 0.0, 1.0]
    assert asks(prompts, ["plain?", "text"][:2] + ["x"]) == [1.0, 0.0, 0.0]   # non-conversational prompts
    nan = TrlReward("rm", lambda p, r: torch.tensor([0.0, float("nan"), 1.0]))
    with pytest.raises(FloatingPointError, match="rm: 1 non-finite"):
        nan(prompts, completions)


def _config(algorithm: str, steps: int, **extra):
    base = {"algorithm": algorithm, "kl": {"coef": 0.05}, "k": 4,
            "sampling": {"max_new_tokens": 24, "max_prompt_tokens": 64}, "scope": {"mode": "full"}, "seed": 0,
            "reward": {"functions": ["asks_question"]},
            "optim": {"learning_rate": 5e-4, "max_steps": steps, "per_device_batch_size": 16,
                      "lr_scheduler": "constant", "warmup_ratio": 0.0, "logging_steps": 1}}
    return online_rl.Config.model_validate({**base, **extra})


@pytest.fixture
def one_thread():
    """The stage on one torch thread: a tiny model gains nothing from more on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_grpo_raises_question_asking(tmp_path, tiny_data_dir, tiny_sft_model_dir, one_thread):
    """Measured (30 steps of 4 prompts x 4 completions, 24 new tokens, lr 5e-4, beta 0.05, seeds 0/1/2):
    reward over the first 6 steps 0.26 / 0.40 / 0.32 -> last 6 steps 0.95 / 0.92 / 0.81, GRPO's
    per-token KL (k3) 0.73 / 0.49 / 0.43 at the end; 11-25 s on this shared 2-core machine.
    RLOO with the same settings: 0.26 / 0.40 -> 0.93 / 0.92."""
    from transformers import AutoModelForCausalLM

    inputs = {"data": str(tiny_data_dir), "policy": str(tiny_sft_model_dir)}   # no RM: the question reward only
    m = online_rl.run(_config("grpo", 30), inputs, tmp_path, _ctx())
    print(f"\ngrpo: asks_question reward first {m['reward_first']:.3f} -> last {m['reward_last']:.3f} "
          f"(window {m['reward_window_steps']} steps); KL first {m['kl_first']:.3f} last {m['kl_last']:.3f}; "
          f"length {m['completion_length_first']:.1f} -> {m['completion_length_last']:.1f}; {m['wall_time_s']:.1f}s")
    assert m["steps"] == 30 and m["logged_steps"] == 30 and m["algorithm"] == "grpo"
    assert m["reward_first"] < 0.6
    assert m["reward_last"] >= m["reward_first"] + 0.3
    assert m["reward_last"] >= 0.75
    assert m["reward_asks_question_last"] == pytest.approx(m["reward_last"])
    assert 0 < m["kl_last"] < 3.0
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert sum("reward" in r for r in rows) == 30
    AutoModelForCausalLM.from_pretrained(tmp_path / "model")


@pytest.mark.slow
def test_rloo_with_normalised_rm_trains_only_the_last_layer(tmp_path, tiny_data_dir, tiny_sft_model_dir,
                                                            tiny_reward_model_dir, one_thread):
    """RLOO on the reward model (normalised with reward_stats.json) plus the question reward;
    scope: the last block only, so every other weight of the saved policy is unchanged."""
    import shutil

    from safetensors.torch import load_file

    rm_stage = tmp_path / "rm_stage"
    shutil.copytree(tiny_reward_model_dir, rm_stage / "model")
    # an absurd mean makes normalisation visible: every normalised RM score is about -1000
    (rm_stage / "reward_stats.json").write_text(json.dumps({"mean": 1000.0, "std": 1.0}))
    inputs = {"data": str(tiny_data_dir), "policy": str(tiny_sft_model_dir), "reward_model": str(rm_stage / "model")}
    cfg = _config("rloo", 3, scope={"mode": "last_n_layers", "n_layers": 1, "train_final_norm": False},
                  reward={"functions": ["reward_model", "asks_question"], "weights": [0.5, 1.0], "clip": None},
                  optim={"learning_rate": 1e-3, "max_steps": 3, "per_device_batch_size": 8,
                         "lr_scheduler": "constant", "warmup_ratio": 0.0, "logging_steps": 1})
    m = online_rl.run(cfg, inputs, tmp_path / "out", _ctx())
    assert m["steps"] == 3 and m["algorithm"] == "rloo"
    assert -1010 < m["reward_reward_model_first"] < -990
    # the logged total is the weighted sum of the two functions
    assert m["reward_first"] == pytest.approx(0.5 * m["reward_reward_model_first"] + m["reward_asks_question_first"],
                                              abs=1e-3)
    before = load_file(tiny_sft_model_dir / "model.safetensors")
    after = load_file(tmp_path / "out" / "model" / "model.safetensors")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("model.layers.1.") for k in changed), sorted(changed)
