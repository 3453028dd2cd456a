"""Worker for test_ppo_distributed.py, launched by torchrun (not a test module itself).

    torchrun --nproc_per_node 2 ppo_dp_worker.py CONFIG_JSON INPUTS_JSON OUT_DIR MODES_JSON

For each mode in MODES (``none`` = plain data parallel, ``zero2``, ``zero3``), in OUT_DIR/<mode>/:

1. Builds the PPO models, samples ONE experience of 8 rollouts (same seed on every rank, so all
   ranks hold the same 8), gives each rank its half, runs one ppo_update, and saves every rank's
   trainable weights to ``update-rank<r>.pt`` (the test compares them with a single-process
   update on all 8 rows).
2. Runs the ppo stage into ``stage/``; for DeepSpeed modes also into ``resumed/``, stopped after
   step 1 and resumed (the test checks both end with the same weights and metrics).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from alignment.rl.ppo_config import PPOConfig


def trainable_state(updater, zero3: bool) -> dict[str, torch.Tensor]:
    module = updater.engine.module if hasattr(updater, "engine") else updater.module
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    if zero3:
        import deepspeed

        with deepspeed.zero.GatheredParameters([p for _, p in named], modifier_rank=None):
            return {n: p.detach().clone() for n, p in named}
    return {n: p.detach().clone() for n, p in named}


def one_update(cfg: PPOConfig, inputs: dict, out: Path, dist) -> None:
    from alignment.rl.experience import make_experience
    from alignment.rl.ppo_update import ppo_update
    from alignment.rl.setup import build_ppo
    from alignment.stages import ppo

    prompts, _ = ppo.load_prompts(Path(inputs["data"]) / "prompts" / "train.parquet", None,
                                  out / f"quarantine-{dist.rank}.jsonl")
    setup = build_ppo(cfg, inputs["policy"], inputs["reward_model"], dist)
    exp, _, _ = make_experience(setup.models, prompts[:4] + prompts[-4:], cfg=cfg, beta=0.05,
                                reward_stats=None, step=1, gen_seed=123)
    half = exp.rows(torch.arange(dist.rank * 4, dist.rank * 4 + 4))
    metrics = ppo_update(half, *setup.updaters, cfg, lr=cfg.optim.learning_rate,
                         critic_lr=cfg.optim.critic_learning_rate, step=0, seed=0, world_size=dist.world_size)
    zero3 = cfg.distributed.deepspeed == "zero3"
    torch.save({"policy": trainable_state(setup.updaters[0], zero3),
                "critic": trainable_state(setup.updaters[1], zero3), "metrics": metrics},
               out / f"update-rank{dist.rank}.pt")


def main() -> None:
    from alignment.distributed import leave_process_group
    from alignment.rl.parallel import init_distributed
    from alignment.rl.ppo_config import PPOConfig
    from alignment.stages import ppo
    from medalign.stage import StageContext

    base = json.loads(sys.argv[1])
    inputs = json.loads(sys.argv[2])
    root = Path(sys.argv[3])
    torch.set_num_threads(1)
    dist = init_distributed()
    ctx = StageContext(seed=0, progress=False, logger=logging.getLogger("worker"))
    try:
        for mode in json.loads(sys.argv[4]):
            cfg = PPOConfig.model_validate({**base, "distributed": {"deepspeed": mode}})
            out = root / mode
            out.mkdir(parents=True, exist_ok=True)
            one_update(cfg, inputs, out, dist)
            stage_cfg = cfg.model_copy(update={"whiten_advantages": True})
            result = ppo.run(stage_cfg, inputs, out / "stage", ctx)
            if mode != "none":
                ppo.run(stage_cfg, inputs, out / "resumed", ctx, stop_after=1)
                ppo.run(stage_cfg, inputs, out / "resumed", ctx)
            if dist.is_main:
                (out / "stage_metrics.json").write_text(json.dumps(result))
    finally:
        leave_process_group()


if __name__ == "__main__":
    main()
