"""The ``ppo`` stage: PPO with a KL penalty to the SFT policy (HuatuoGPT's RLAIF step).

Inputs (docs/CONTRACTS.md): ``data`` (the data stage dir: prompts from ``prompts/<split>.parquet``),
``policy`` (the SFT checkpoint: trained policy and frozen reference), ``reward_model`` (the
reward_model stage's ``model/``: the critic starts from it and, unless ``reward.functions`` says
otherwise, it scores responses; ``reward_stats.json`` beside it normalises the scores).

Outputs in ``out/``: ``model/`` (final policy, LoRA merged, + tokenizer), ``metrics.jsonl`` (one
row per step), ``tensorboard/``, ``checkpoints/`` (resumable; a rerun continues from the newest
complete one), ``quarantine.jsonl`` (prompt rows that could not be used, with the reason).

Distributed: ``distributed.nproc: 2`` spawns ``torchrun`` (alignment/distributed.py) whose ranks
run this stage data parallel (gloo on CPU, NCCL on GPU); ``distributed.deepspeed: zero2 | zero3 |
path.json`` wraps the policy and the critic in DeepSpeed ZeRO engines. Under an existing torchrun /
Ray Train group (WORLD_SIZE > 1) the stage joins it instead of spawning.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from alignment.rl.ppo_config import PPOConfig
from medalign.stage import Input, StageContext

NAME = "ppo"
INPUTS = {"data": Input(("data",), "data stage directory (prompts/)", reads=("prompts",)),
          "policy": Input(("sft",), "checkpoint to optimise (also the frozen reference)", model=True),
          "reward_model": Input(("reward_model",), "reward model checkpoint (reward_stats.json beside it)", model=True)}
Config = PPOConfig

__all__ = ["NAME", "Config", "run", "load_prompts", "load_reward_stats", "summarise"]


def load_prompts(path: Path, max_prompts: int | None, quarantine: Path) -> tuple[list[list[dict]], dict]:
    """Deduplicated prompt conversations of a ``prompts/`` parquet file, and counts.

    A row whose ``messages`` are malformed or do not end with a user turn goes to ``quarantine``
    (JSONL: file, row, prompt_id, reason) and is counted; duplicates (same messages) are counted.
    """
    import pandas as pd

    from alignment.chat import check_messages, conversation_key

    if not path.is_file():
        raise FileNotFoundError(f"ppo: prompts file {path} not found (the data stage writes "
                                "prompts/<split>.parquet; check split)")
    frame = pd.read_parquet(path)
    if "messages" not in frame.columns:
        raise ValueError(f"{path}: no 'messages' column (columns: {list(frame.columns)})")
    seen, prompts, bad = set(), [], []
    duplicates = 0
    for row, record in enumerate(frame.to_dict("records")):
        pid = record.get("prompt_id")
        try:
            messages = check_messages(record["messages"], where=f"{path}: row {row} ({pid}): messages")
            if messages[-1]["role"] != "user":
                raise ValueError(f"{path}: row {row} ({pid}): messages: the last turn is "
                                 f"{messages[-1]['role']!r}, a prompt must end with a user turn")
        except ValueError as e:
            bad.append({"file": str(path), "row": row, "prompt_id": pid, "reason": str(e)})
            continue
        key = conversation_key(messages)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        prompts.append(messages)
    if bad:
        with open(quarantine, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(b, ensure_ascii=False) + "\n" for b in bad)
    if max_prompts is not None:
        prompts = prompts[:max_prompts]
    if not prompts:
        raise ValueError(f"{path}: no usable prompts ({len(bad)} quarantined, {duplicates} duplicates)")
    return prompts, {"prompts_used": len(prompts), "prompts_quarantined": len(bad),
                     "prompts_duplicate": duplicates}


def load_reward_stats(rm_path: str) -> tuple[float, float] | None:
    """(mean, std) from the reward_model stage's ``reward_stats.json`` (beside or inside the
    model dir), or None when there is none (e.g. a user-provided reward model)."""
    for candidate in (Path(rm_path).parent / "reward_stats.json", Path(rm_path) / "reward_stats.json"):
        if candidate.is_file():
            stats = json.loads(candidate.read_text(encoding="utf-8"))
            try:
                mean, std = float(stats["mean"]), float(stats["std"])
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"{candidate}: expected numeric 'mean' and 'std' fields, got "
                                 f"{sorted(stats) if isinstance(stats, dict) else type(stats).__name__}") from None
            if not std > 0:
                raise ValueError(f"{candidate}: std must be > 0, got {std}")
            return mean, std
    return None


def _count_long_prompts(tokenizer, prompts: list[list[dict]], limit: int) -> int:
    """Prompts longer than ``limit`` tokens (generation keeps their last ``limit`` tokens)."""
    from alignment.chat import prompt_text

    return sum(len(tokenizer(prompt_text(tokenizer, p), add_special_tokens=False)["input_ids"]) > limit
               for p in prompts)


def summarise(history: list[dict]) -> dict:
    """Stage metrics: reward over the first and last steps (window = a fifth, 1..10 steps), KL."""
    n = len(history)
    window = max(1, min(10, n // 5))

    def mean(key: str, rows: list[dict]) -> float | None:
        values = [r[key] for r in rows if r.get(key) is not None]
        return sum(values) / len(values) if values else None

    return {
        "steps": n,
        "reward_window_steps": window,
        "reward_first": mean("reward/score_raw", history[:window]),
        "reward_last": mean("reward/score_raw", history[-window:]),
        "kl_last": history[-1]["kl/mean"] if history else None,
        "kl_mean": mean("kl/mean", history),
        "entropy_first": mean("entropy", history[:window]),
        "entropy_last": mean("entropy", history[-window:]),
        "response_length_last": mean("response/length", history[-window:]),
    }


def run(cfg: PPOConfig, inputs: dict[str, str], out: Path, ctx: StageContext, reward_fn=None,
        stop_after: int | None = None) -> dict:
    """Train with PPO; see the module doc. ``reward_fn`` overrides the configured reward
    (a programmatic :class:`~alignment.rl.reward_fn.RewardFn`); ``stop_after`` stops early
    after a checkpoint (tests of resume)."""
    import torch

    missing = {"data", "policy", "reward_model"} - set(inputs)
    if missing:
        raise ValueError(f"ppo: missing inputs {sorted(missing)} (needs data, policy, reward_model)")
    threads = torch.get_num_threads()
    if ctx.device == "cpu":
        # the CPUs granted to this stage; on a busy machine extra intra-op threads of a tiny model
        # mostly wait for each other (benchmarks/ppo_step.py: 1 thread several times faster than 2)
        torch.set_num_threads(max(1, ctx.num_cpus))
    try:
        return _run(cfg, inputs, Path(out), ctx, reward_fn, stop_after)
    finally:
        torch.set_num_threads(threads)


def _run(cfg: PPOConfig, inputs: dict[str, str], out: Path, ctx: StageContext, reward_fn,
         stop_after: int | None) -> dict:
    from alignment.distributed import maybe_launch
    from alignment.rl.parallel import init_distributed
    from alignment.rl.ppo_loop import train_ppo
    from alignment.rl.setup import build_ppo, save_policy
    from alignment.tracking import check_tracking

    t0 = time.perf_counter()
    check_tracking(cfg.tracking, out)
    out.mkdir(parents=True, exist_ok=True)
    if reward_fn is None and stop_after is None:
        launched = maybe_launch(NAME, cfg, inputs, out, ctx)  # distributed.nproc > 1: torchrun
        if launched is not None:
            return launched
    dist = init_distributed()
    seed = cfg.seed if cfg.seed is not None else ctx.seed
    prompts, counts = load_prompts(Path(inputs["data"]) / "prompts" / f"{cfg.split}.parquet",
                                   cfg.max_prompts, out / "quarantine.jsonl")
    # the RM's score statistics apply to RM scores only, not to a programmatic reward
    uses_rm = reward_fn is None and cfg.reward.functions == ["reward_model"]
    stats = load_reward_stats(inputs["reward_model"]) if cfg.reward.normalise and uses_rm else None
    if cfg.reward.normalise and uses_rm and stats is None:
        ctx.logger.warning("ppo: no reward_stats.json next to %s; scores are not normalised",
                           inputs["reward_model"])
    setup = build_ppo(cfg, inputs["policy"], inputs["reward_model"], dist, ctx.device)
    counts["prompts_truncated"] = _count_long_prompts(setup.models.tokenizer, prompts,
                                                      cfg.sampling.max_prompt_tokens)
    if reward_fn is not None:
        setup.models.reward_fn = reward_fn
    history = train_ppo(setup.models, prompts, cfg, out=out, seed=seed, dist=dist, reward_stats=stats,
                        updaters=setup.updaters, progress=ctx.progress, stop_after=stop_after)
    if len(history) == cfg.steps:
        save_policy(setup, out / "model", dist)
    return {**summarise(history), **counts, "world_size": dist.world_size,
            "reward_normalisation": list(stats) if stats else None,
            "wall_time_s": time.perf_counter() - t0}
