"""Data parallel PPO on CPU: 2 processes (gloo) with plain gradient sums and with DeepSpeed ZeRO.

For each of plain DP, ZeRO-2 and ZeRO-3 (one torchrun launch runs all three, to pay the start-up
once): one update of 8 rollouts split 4 + 4 over 2 processes must give the weights a single
process gets on all 8 (losses are normalised by the global token count and gradients summed);
every rank must end with the same weights; the ppo stage must run end to end under torchrun;
under DeepSpeed a run stopped after step 1 and resumed must equal a straight run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ppo_dp_worker.py")
MODES = ["none", "zero2", "zero3"]

# one mini-batch per epoch, so the split over processes cannot change which rows go together;
# no advantage whitening in the update comparison (every rank holds the whole experience there);
# Adam eps = 1 makes the step ~ lr * m (not lr * sign(g) for a tiny g), so float noise in a
# near-zero gradient is not blown up into a full lr-sized difference in the weights
CONFIG = dict(steps=2, batch_size=8, mini_batch_size=8, micro_batch_size=2, ppo_epochs=2,
              whiten_advantages=False, scope={"mode": "full"}, checkpoint_every=1,
              sampling={"max_new_tokens": 12, "max_prompt_tokens": 64},
              optim={"learning_rate": 1e-2, "critic_learning_rate": 1e-2, "max_grad_norm": 0.5, "adam_epsilon": 1.0})


def _torchrun(inputs: dict, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "DS_ACCELERATOR": "cpu", "DS_BUILD_OPS": "0", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", "0", "--rdzv_backend", "c10d",
           "--rdzv_endpoint", "127.0.0.1:0", str(WORKER),
           json.dumps(CONFIG), json.dumps(inputs), str(out), json.dumps(MODES)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)


def _single_process_update(ppo_setup, tmp_path: Path) -> dict:
    from alignment.rl.experience import make_experience
    from alignment.rl.ppo_config import PPOConfig
    from alignment.rl.ppo_update import ppo_update

    config = PPOConfig.model_validate(CONFIG)
    setup, prompts = ppo_setup(config, tmp_path)
    exp, _, _ = make_experience(setup.models, prompts[:4] + prompts[-4:], cfg=config, beta=0.05,
                                reward_stats=None, step=1, gen_seed=123)
    metrics = ppo_update(exp, *setup.updaters, config, lr=config.optim.learning_rate,
                         critic_lr=config.optim.critic_learning_rate, step=0, seed=0, world_size=1)
    state = {name: {n: p.detach().clone() for n, p in u.module.named_parameters() if p.requires_grad}
             for name, u in zip(("policy", "critic"), setup.updaters)}
    return {**state, "metrics": metrics}


def _metrics_rows(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


def _check_update(mode: str, out: Path, single: dict) -> None:
    ranks = [torch.load(out / f"update-rank{r}.pt", weights_only=True) for r in (0, 1)]
    for model in ("policy", "critic"):
        assert ranks[0][model].keys() == single[model].keys()
        for name, ref in single[model].items():
            torch.testing.assert_close(ranks[0][model][name], ref, rtol=1e-4, atol=1e-6,
                                       msg=f"{mode}: {model}.{name} differs from the 1-process update")
            torch.testing.assert_close(ranks[1][model][name], ranks[0][model][name], rtol=0, atol=1e-7,
                                       msg=f"{mode}: ranks disagree on {model}.{name}")
    for key in ("policy/loss", "value/loss", "policy/clip_frac"):
        assert ranks[0]["metrics"][key] == pytest.approx(single["metrics"][key], rel=1e-4, abs=1e-6)


def _check_stage(mode: str, out: Path, inputs: dict) -> None:
    from safetensors.torch import load_file

    stage = json.loads((out / "stage_metrics.json").read_text())
    assert stage["world_size"] == 2 and stage["steps"] == 2
    rows = _metrics_rows(out / "stage" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    straight = load_file(str(out / "stage" / "model" / "model.safetensors"))
    initial = load_file(str(Path(inputs["policy"]) / "model.safetensors"))
    assert {k: v.shape for k, v in straight.items()} == {k: v.shape for k, v in initial.items()}, mode
    assert any(not torch.equal(straight[k], initial[k]) for k in initial)  # whole, trained weights
    if mode == "none":
        return
    resumed = load_file(str(out / "resumed" / "model" / "model.safetensors"))
    for name, tensor in straight.items():
        assert torch.equal(resumed[name], tensor), f"{mode}: {name} differs after resume"
    assert _metrics_rows(out / "resumed" / "metrics.jsonl") == rows


@pytest.mark.slow
def test_two_processes_plain_zero2_zero3_match_one_process(ppo_inputs, ppo_setup, tmp_path):
    proc = _torchrun(ppo_inputs, tmp_path)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stderr[-5000:]}"
    single = _single_process_update(ppo_setup, tmp_path)
    for mode in MODES:
        _check_update(mode, tmp_path / mode, single)
        _check_stage(mode, tmp_path / mode, ppo_inputs)
