"""Fixtures for the PPO tests (the tiny models and data come from tests/alignment/conftest.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from alignment.rl.ppo_config import PPOConfig


@pytest.fixture(scope="session")
def ppo_inputs(tiny_data_dir, tiny_sft_model_dir, tiny_reward_model_dir, tmp_path_factory) -> dict[str, str]:
    """The ppo stage's inputs: data dir, SFT policy, reward model (with reward_stats.json beside it)."""
    import shutil

    rm_stage = tmp_path_factory.mktemp("rm_stage")
    shutil.copytree(tiny_reward_model_dir, rm_stage / "model")
    (rm_stage / "reward_stats.json").write_text(json.dumps({"mean": 0.5, "std": 2.0}))
    return {"data": str(tiny_data_dir), "policy": str(tiny_sft_model_dir),
            "reward_model": str(rm_stage / "model")}


@pytest.fixture
def stage_ctx():
    from medalign.stage import StageContext

    return StageContext(job="test", stage="ppo", seed=0, progress=False,
                        logger=logging.getLogger("medalign.test.ppo"))


@pytest.fixture
def tiny_ppo_config():
    """A PPO config small enough for seconds on CPU: batch 4, 12 new tokens, full fine-tuning."""
    from alignment.rl.ppo_config import PPOConfig

    def make(**overrides):
        base = dict(steps=3, batch_size=4, mini_batch_size=2, micro_batch_size=1, ppo_epochs=2,
                    scope={"mode": "full"}, sampling={"max_new_tokens": 12, "max_prompt_tokens": 64},
                    optim={"learning_rate": 1e-3, "critic_learning_rate": 1e-3}, checkpoint_every=2, kl={"coef": 0.05})
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key] = {**base[key], **value}
            else:
                base[key] = value
        return PPOConfig.model_validate(base)

    return make


@pytest.fixture
def read_metrics():
    def read(out: Path) -> list[dict]:
        return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return read


@pytest.fixture
def ppo_setup(ppo_inputs):
    """``make(cfg) -> (setup, prompts)``: models + updaters built like the stage builds them.

    Torch runs on one thread meanwhile, as the stage does with one CPU (a tiny model gains
    nothing from more, and on a busy machine loses a lot)."""
    import torch

    from alignment.rl.parallel import DistInfo
    from alignment.rl.setup import build_ppo
    from alignment.stages.ppo import load_prompts

    def make(cfg: PPOConfig, tmp: Path):
        prompts, _ = load_prompts(Path(ppo_inputs["data"]) / "prompts" / "train.parquet", None,
                                  tmp / "quarantine.jsonl")
        return build_ppo(cfg, ppo_inputs["policy"], ppo_inputs["reward_model"], DistInfo()), prompts

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield make
    torch.set_num_threads(threads)
