"""Exact resume: k steps, stopped or killed, then resumed to N == N steps in one go (CPU)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

RESUME_OVERRIDES = dict(
    steps=4, checkpoint_every=2, ppo_epochs=2, entropy_coef=0.01,
    kl={"adaptive": True, "target": 0.5, "horizon": 20, "coef": 0.1},        # beta changes every step
    optim={"lr_scheduler": "linear", "warmup_steps": 1, "learning_rate": 1e-3,
           "critic_learning_rate": 1e-3},                                           # lr changes every step
)


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


def _critic(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "checkpoints" / "step-00000004" / "critic.pt", weights_only=True)


def _comparable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


def _assert_same_run(a: Path, b: Path, read_metrics) -> None:
    wa, wb = _weights(a / "model"), _weights(b / "model")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"policy weight {k} differs after resume"
    ca, cb = _critic(a), _critic(b)
    for k in ca["weights"]:
        assert torch.equal(ca["weights"][k], cb["weights"][k]), f"critic weight {k} differs"
    assert ca["optimizer"]["state"].keys() == cb["optimizer"]["state"].keys()
    for k, state in ca["optimizer"]["state"].items():
        assert torch.equal(state["exp_avg_sq"], cb["optimizer"]["state"][k]["exp_avg_sq"])
    ma, mb = _comparable(read_metrics(a)), _comparable(read_metrics(b))
    assert [r["step"] for r in mb] == [1, 2, 3, 4]
    assert ma == mb


@pytest.fixture(scope="module")
def uninterrupted(ppo_inputs, tmp_path_factory):
    """The reference: 4 steps in one go."""
    import logging

    from alignment.rl.ppo_config import PPOConfig
    from alignment.stages import ppo
    from medalign.stage import StageContext

    cfg = PPOConfig.model_validate(_config_dict())
    out = tmp_path_factory.mktemp("ppo_once") / "ppo"
    metrics = ppo.run(cfg, ppo_inputs, out, StageContext(seed=0, progress=False,
                                                         logger=logging.getLogger("test")))
    return out, metrics


def _config_dict() -> dict:
    base = dict(batch_size=4, mini_batch_size=2, micro_batch_size=1, scope={"mode": "full"},
                sampling={"max_new_tokens": 12, "max_prompt_tokens": 64})
    return {**base, **RESUME_OVERRIDES}


@pytest.mark.slow
def test_stopped_then_resumed_equals_uninterrupted(uninterrupted, ppo_inputs, stage_ctx, tmp_path,
                                                   read_metrics):
    from alignment.rl.ppo_config import PPOConfig
    from alignment.stages import ppo

    reference, ref_metrics = uninterrupted
    cfg = PPOConfig.model_validate(_config_dict())
    out = tmp_path / "ppo"
    ppo.run(cfg, ppo_inputs, out, stage_ctx, stop_after=3)     # checkpoints at 2 and 3
    assert not (out / "model").exists()
    # as if killed during step 3's checkpoint: drop it, leave a half-written temp dir and a
    # higher-numbered directory without state.json; metrics.jsonl still has the step-3 row
    shutil.rmtree(out / "checkpoints" / "step-00000003")
    (out / "checkpoints" / ".tmp-step-00000003").mkdir()
    (out / "checkpoints" / "step-00000009").mkdir()
    assert len(read_metrics(out)) == 3
    metrics = ppo.run(cfg, ppo_inputs, out, stage_ctx)
    _assert_same_run(reference, out, read_metrics)
    for key in ("reward_first", "reward_last", "kl_last", "kl_mean", "steps"):
        assert metrics[key] == ref_metrics[key]


@pytest.mark.slow
def test_killed_process_resumes_exactly(uninterrupted, ppo_inputs, stage_ctx, tmp_path, read_metrics):
    """SIGKILL a real run once its first checkpoint exists, resume in-process, compare."""
    from alignment.rl.ppo_config import PPOConfig
    from alignment.stages import ppo

    reference, _ = uninterrupted
    out = tmp_path / "ppo"
    script = (
        "import json, logging, sys\n"
        "from alignment.rl.ppo_config import PPOConfig\n"
        "from alignment.stages import ppo\n"
        "from medalign.stage import StageContext\n"
        "cfg = PPOConfig.model_validate(json.loads(sys.argv[1]))\n"
        "ppo.run(cfg, json.loads(sys.argv[2]), sys.argv[3], StageContext(seed=0, progress=False))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen([sys.executable, "-c", script, json.dumps(_config_dict()),
                             json.dumps(ppo_inputs), str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    first = out / "checkpoints" / "step-00000002" / "state.json"
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert first.exists(), f"the child run never checkpointed: {err.decode()[-2000:]}"
    cfg = PPOConfig.model_validate(_config_dict())
    ppo.run(cfg, ppo_inputs, out, stage_ctx)
    _assert_same_run(reference, out, read_metrics)


@pytest.mark.slow
def test_resume_refuses_a_checkpoint_of_another_config(uninterrupted, ppo_inputs, stage_ctx, tmp_path):
    from alignment.rl.ppo_config import PPOConfig
    from alignment.stages import ppo

    reference, _ = uninterrupted
    out = tmp_path / "ppo"
    shutil.copytree(reference / "checkpoints", out / "checkpoints")
    cfg = PPOConfig.model_validate({**_config_dict(), "clip_eps": 0.3})
    with pytest.raises(ValueError, match="different PPO config"):
        ppo.run(cfg, ppo_inputs, out, stage_ctx)
