"""The PPO training loop: rollouts -> rewards -> advantages -> update, with exact resume.

    history = train_ppo(models, prompts, cfg, out=stage_dir, seed=0, dist=dist,
                        reward_stats=(mean, std), updaters=(policy_updater, critic_updater))

Each step draws ``cfg.batch_size`` prompts from a seeded order over the prompt list (a fresh
permutation per pass), each process taking its slice. Every random choice is seeded from
(run seed, purpose, step, ...), so the run is a deterministic function of its config and inputs;
a run stopped after a checkpoint and resumed ends with the same weights and metrics as one that
never stopped (tests/alignment/test_ppo_resume.py).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch

from alignment.rl.checkpoint import (find_latest_checkpoint, load_checkpoint_state, restore_rng,
                                     save_checkpoint)
from alignment.rl.controllers import make_kl_controller
from alignment.rl.experience import GuardError, PPOModels, make_experience
from alignment.rl.metrics_log import MetricsLog
from alignment.rl.optim import lr_at
from alignment.rl.parallel import DistInfo, all_reduce_sum, derived_seed
from alignment.rl.ppo_config import PPOConfig
from alignment.rl.ppo_update import ppo_update
from medalign.config import config_hash

__all__ = ["train_ppo", "prompt_order", "step_prompt_indices", "generation_seeds", "run_hash"]

log = logging.getLogger("medalign.alignment.ppo")


def prompt_order(n_prompts: int, seed: int, epoch: int) -> list[int]:
    """The seeded permutation of prompt indices for pass ``epoch`` over the prompts."""
    gen = torch.Generator().manual_seed(derived_seed(seed, "data", epoch))
    return torch.randperm(n_prompts, generator=gen).tolist()


def step_prompt_indices(n_prompts: int, batch_size: int, step: int, seed: int) -> list[int]:
    """Global prompt indices of step ``step``: positions ``step*B .. step*B+B-1`` of the stream
    made of consecutive seeded permutations (a batch may straddle two passes)."""
    out, orders = [], {}
    for pos in range(step * batch_size, (step + 1) * batch_size):
        epoch, i = divmod(pos, n_prompts)
        if epoch not in orders:
            orders[epoch] = prompt_order(n_prompts, seed, epoch)
        out.append(orders[epoch][i])
    return out


def generation_seeds(seed: int, step: int, first: int, n: int, chunk: int) -> list[int]:
    """Seeds of the generate calls of a process holding the step's prompts ``first .. first+n-1``
    in calls of ``chunk``: each seed derives from the position of the call's first prompt in the
    step's whole batch, so when ``chunk`` divides every process's share, N processes make the
    same calls with the same seeds as one process does (and sample the same tokens)."""
    return [derived_seed(seed, "generate", step, first + i) for i in range(0, n, chunk)]


def _rollout_metrics(g: dict[str, float], beta: float) -> dict[str, float]:
    """Global per-step metrics from summed rollout statistics."""
    n, tokens = g["responses"], g["tokens"]
    ret_mean, err_mean = g["returns_sum"] / tokens, g["error_sum"] / tokens
    var_ret = g["returns_sumsq"] / tokens - ret_mean ** 2
    var_err = g["error_sumsq"] / tokens - err_mean ** 2
    return {
        "reward/score_raw": g["score_raw"] / n,        # reward function / RM output, mean per response
        "reward/score": g["score"] / n,                # after normalisation, clipping, EOS penalty
        "reward/total": g["return_total"] / n,         # score + KL penalty, summed over each response
        "kl/mean": g["kl_reward"] / n,                 # KL per response (configured estimator)
        "kl/k1": g["kl_k1"] / n,
        "kl/k3": g["kl_k3"] / n,
        "kl/coef": beta,
        "entropy": g["entropy"] / tokens,              # nats per response token
        "response/length": tokens / n,
        "response/ended_frac": g["ended"] / n,         # share that ended with EOS (not cut)
        "value/mean": g["value_mean"] / tokens,
        "value/explained_variance": 1.0 - var_err / var_ret if var_ret > 0 else float("nan"),
    }


def _finite_or_none(row: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


def run_hash(cfg: PPOConfig, seed: int) -> str:
    """What a checkpoint must have been written by to be resumed: this config and seed."""
    return config_hash({"config": cfg.model_dump(mode="json"), "seed": seed})


def _resume(out: Path, cfg: PPOConfig, seed: int, updaters, ctl, dist: DistInfo) -> tuple[int, list[dict]]:
    ckpt = find_latest_checkpoint(out / "checkpoints")
    if ckpt is None:
        return 0, []
    state = load_checkpoint_state(ckpt, config_hash=run_hash(cfg, seed), dist=dist)
    for updater in updaters:
        updater.load(ckpt)
    ctl.load_state_dict(state["kl_controller"])
    restore_rng(ckpt, dist.rank)
    if state["data_position"] != state["step"] * cfg.batch_size:
        raise ValueError(f"{ckpt}: data position {state['data_position']} does not match step "
                         f"{state['step']} x batch {cfg.batch_size}")
    log.info("resuming PPO from %s (step %d of %d)", ckpt, state["step"], cfg.steps)
    return int(state["step"]), list(state["metrics"])


def train_ppo(models: PPOModels, prompts: list[list[dict]], cfg: PPOConfig, *, out: Path, seed: int,
              dist: DistInfo, reward_stats: tuple[float, float] | None, updaters: tuple,
              progress: bool = False, stop_after: int | None = None) -> list[dict]:
    """Run PPO steps until ``cfg.steps`` (resuming from ``out/checkpoints``); return all metrics rows.

    ``stop_after`` ends the run after that many completed steps (after checkpointing), as a kill
    would; tests use it to check that resuming is exact.
    """
    policy_updater, critic_updater = updaters
    ctl = make_kl_controller(cfg.kl.coef, cfg.kl.adaptive, cfg.kl.target, cfg.kl.horizon)
    start, history = _resume(out, cfg, seed, updaters, ctl, dist)
    metrics_log = MetricsLog(out, history, enabled=dist.is_main, tracking=cfg.tracking, config=cfg)
    local = cfg.batch_size // dist.world_size
    steps = range(start, cfg.steps)
    if progress and dist.is_main:
        from tqdm.auto import tqdm
        steps = tqdm(steps, desc="ppo", unit="step", initial=start, total=cfg.steps)
    try:
        for step in steps:
            t0 = time.perf_counter()
            idx = step_prompt_indices(len(prompts), cfg.batch_size, step, seed)
            mine = idx[dist.rank * local:(dist.rank + 1) * local]
            beta = ctl.value
            exp, sums, timings = make_experience(
                models, [prompts[i] for i in mine], cfg=cfg, beta=beta, reward_stats=reward_stats,
                step=step + 1, gen_seed=generation_seeds(seed, step, dist.rank * local, local,
                                                         cfg.sampling.batch_size))
            row = _rollout_metrics(all_reduce_sum(sums), beta)
            _check_kl(row["kl/mean"], cfg.kl.max_kl, step + 1)
            t1 = time.perf_counter()
            lr = lr_at(step, cfg.steps, cfg.optim.learning_rate, cfg.optim.lr_scheduler, cfg.optim.warmup_steps)
            clr = lr_at(step, cfg.steps, cfg.optim.critic_learning_rate, cfg.optim.lr_scheduler,
                        cfg.optim.warmup_steps)
            row.update(ppo_update(exp, policy_updater, critic_updater, cfg, lr=lr, critic_lr=clr,
                                  step=step, seed=seed, world_size=dist.world_size))
            ctl.update(row["kl/mean"], n_steps=cfg.batch_size)
            t2 = time.perf_counter()
            row = _finite_or_none({"step": step + 1, "lr": lr, **row,
                                   **{f"time/{k}": v for k, v in timings.items()},
                                   "time/update_s": t2 - t1, "time/step_s": t2 - t0})
            history.append(row)
            metrics_log.write(row)
            if hasattr(steps, "set_postfix"):        # shown by `medalign run`'s view of the job
                steps.set_postfix({k: f"{row[m]:.3f}" for k, m in (("score", "reward/score_raw"), ("kl", "kl/mean"))
                                   if row.get(m) is not None}, refresh=False)
            if dist.is_main and (step + 1) % cfg.log_every == 0:
                log.info("ppo step %d/%d: score %.3f, kl %.3f, entropy %.3f, length %.1f, %.2fs",
                         step + 1, cfg.steps, row["reward/score_raw"], row["kl/mean"],
                         row["entropy"], row["response/length"], row["time/step_s"])
            done = step + 1
            if done % cfg.checkpoint_every == 0 or done == cfg.steps or done == stop_after:
                state = {"data_position": done * cfg.batch_size, "kl_controller": ctl.state_dict(),
                         "metrics": history, "config_hash": run_hash(cfg, seed), "seed": seed}
                save_checkpoint(out / "checkpoints", done, state, list(updaters), dist,
                                cfg.keep_checkpoints)
            if stop_after is not None and done >= stop_after:
                break
    finally:
        metrics_log.close()
    return history


def _check_kl(kl: float, bound: float | None, step: int) -> None:
    if not math.isfinite(kl):
        raise GuardError(f"step {step}: the KL to the reference policy is {kl} (NaN/inf); stopping.")
    if bound is not None and kl > bound:
        raise GuardError(f"step {step}: mean KL(pi || pi_ref) = {kl:.3f} nats per response exceeds "
                         f"kl.max_kl = {bound}; the policy has drifted too far from the reference "
                         "(reward hacking or too high a learning rate). Lower optim.learning_rate, raise "
                         "kl.coef, or raise kl.max_kl if this drift is intended.")
