"""PPO with the job's reward model against PPO with a perfect one, at the job's budget and a larger one.

Issue 11 asks the quickstart's PPO for a referee win rate whose 95% interval is above 0.5 while it
asks more than SFT when information is missing, and its reward model for held-out accuracy >= 0.85.
This script separates the two causes a miss can have, on one finished run directory
(``runs/quickstart`` after ``make quickstart``):

* the reward: every row trains PPO once with the job's reward model and once with
  :class:`alignment.rl.rubric_reward.RubricReward`, the local judge's own rating of each rollout
  against the prompt's reference (a reward model that agrees with the judge on every pair; the
  referee applies the same rating, so this is a ceiling, not a method);
* the budget: the job's own PPO (its steps x rollouts a step) and each ``--budget STEPSxROLLOUTS``.

Everything else is the job's: the ppo stage's resolved config and inputs (SFT policy, reward model
as critic, prompts) from its manifest, with ``steps`` and ``batch_size`` replaced; then the job's
eval stage (its config, the SFT baseline, the same 200 held-out cases at temperature 0.7) on the new
policy. ``--ask-weight W`` adds a row with the perfect reward plus W for a response that asks (the
evaluation's asking rule), the reward a team would try to keep asking up (repeatable). The perfect reward is
standardised with the judge's scores of the SFT model's samples (the judge stage's
``scores.parquet``), as the reward model's scores are with ``reward_stats.json``.

    .venv/bin/python benchmarks/ppo_reward_ceiling.py runs/quickstart --budget 60x32 --ask-weight 0.5 --ask-weight 1

Prints one row per run (reward, budget, PPO's final KL and wall time, the six clinical figures,
the referee win rate with its interval) and writes them to ``OUT/ceiling.json``; the runs' stage
directories stay under ``OUT`` (default ``RUN/../reward_ceiling``). CPU, 2 threads: about 1 minute a
row at the quickstart's budget and 2.7 minutes at 60x32 on the 2-core machine of the README.
Figures move with the run and the machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from reward_headroom import stage_dir  # noqa: E402

CLINICAL = ("diagnosis_accuracy", "department_accuracy", "asks_when_missing")


def parse_budget(text: str) -> tuple[int, int]:
    """``"60x32"`` -> (60 steps, 32 rollouts a step)."""
    try:
        steps, rollouts = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"budget {text!r}: expected STEPSxROLLOUTS, e.g. 60x32") from None
    if steps < 1 or rollouts < 1:
        raise argparse.ArgumentTypeError(f"budget {text!r}: steps and rollouts must be >= 1")
    return steps, rollouts


def manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text(encoding="utf-8"))


def judge_score_stats(judge: Path) -> tuple[float, float]:
    """Mean and standard deviation of the judge's scores of the sampled SFT responses."""
    import pandas as pd

    scores = pd.read_parquet(judge / "scores.parquet")["score"].astype(float)
    return float(scores.mean()), float(scores.std())


def run_one(name: str, reward_fn, steps: int, rollouts: int, ppo_man: dict, eval_man: dict, out: Path,
            seed: int | None = None) -> dict:
    """Train PPO (the job's config at ``steps`` x ``rollouts``; ``seed``: PPO's seed instead of the job's),
    evaluate it as the job does; one row."""
    from alignment.rl.ppo_config import PPOConfig
    from alignment.stages import eval as eval_stage
    from alignment.stages import ppo
    from medalign.stage import StageContext

    log = logging.getLogger("ppo_reward_ceiling")
    config = {**ppo_man["config"], "steps": steps, "batch_size": rollouts}
    if seed is not None:
        config["seed"] = seed
    if rollouts % config["mini_batch_size"]:
        config["mini_batch_size"] = rollouts
    inputs = {k: v["path"] for k, v in ppo_man["inputs"].items()}
    t0 = time.perf_counter()
    metrics = ppo.run(PPOConfig.model_validate(config), inputs, out / "ppo", StageContext(
        job="ppo_reward_ceiling", stage="ppo", seed=ppo_man["seed"], progress=False, logger=log),
        reward_fn=reward_fn)
    ppo_s = time.perf_counter() - t0
    eval_inputs = {k: v["path"] for k, v in eval_man["inputs"].items()}
    eval_inputs["policy"] = str(out / "ppo" / "model")
    ev = eval_stage.run(eval_stage.Config.model_validate(eval_man["config"]), eval_inputs, out / "eval",
                        StageContext(job="ppo_reward_ceiling", stage="eval", seed=eval_man["seed"],
                                     progress=False, logger=log))
    row = {"reward": name, "steps": steps, "rollouts_per_step": rollouts, "seed": ppo_man["seed"] if seed is None else seed,
           "ppo_s": round(ppo_s, 1),
           "kl_last": metrics.get("kl_last"), "referee_win_rate": ev.get("referee_win_rate"),
           "referee_win_rate_ci": ev.get("referee_win_rate_ci")}
    for key in CLINICAL:
        for who in ("policy", "baseline"):
            row[f"{key}_{who}"] = ev.get(f"clinical_{key}_{who}")
    return row


def fmt(row: dict) -> str:
    ci = row["referee_win_rate_ci"] or (None, None)
    cells = [f"{row['reward']:22s}", f"{row['steps']:>4d}x{row['rollouts_per_step']:<3d}",
             f"{row['kl_last']:6.2f}", f"{row['ppo_s']:6.0f}"]
    cells += [f"{row[f'{k}_policy']:.2f}/{row[f'{k}_baseline']:.2f}".rjust(10) for k in CLINICAL]
    cells.append(f"{row['referee_win_rate']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]")
    return " ".join(cells)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a finished job's run directory (runs/quickstart)")
    p.add_argument("--budget", type=parse_budget, action="append", default=[],
                   help="STEPSxROLLOUTS to run besides the job's own budget (repeatable)")
    p.add_argument("--ask-weight", type=float, action="append", default=[],
                   help="also run the perfect reward + this much for asking, at the largest budget (repeatable)")
    p.add_argument("--ask-only", action="store_true",
                   help="run only the --ask-weight rows (at the largest --budget)")
    p.add_argument("--seed", type=int, default=None, help="PPO's seed (default: the job's)")
    p.add_argument("--out", type=Path, default=None, help="where the runs go (default RUN/../reward_ceiling)")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    import torch

    from alignment.rl.rubric_reward import RubricReward

    torch.set_num_threads(a.threads)
    logging.basicConfig(level=logging.WARNING)
    ppo_dir, eval_dir, judge = stage_dir(a.run, "ppo"), stage_dir(a.run, "eval"), stage_dir(a.run, "judge")
    ppo_man, eval_man = manifest(ppo_dir), manifest(eval_dir)
    out = a.out or a.run.parent / "reward_ceiling"
    data = Path(ppo_man["inputs"]["data"]["path"])
    mean, std = judge_score_stats(judge)
    prompts = data / "prompts" / f"{ppo_man['config']['split']}.parquet"
    perfect = RubricReward.from_prompts(prompts, mean, std)
    own = (ppo_man["config"]["steps"], ppo_man["config"]["batch_size"])
    budgets = [own] + [b for b in a.budget if b != own]
    # (row name, directory name, reward function (None: the job's reward model), budget)
    runs = [] if a.ask_only else [(name, slug, fn, b) for b in budgets for name, slug, fn in (
        ("reward model", "reward", None), ("perfect (judge rubric)", "perfect", perfect))]
    largest = max(budgets, key=lambda b: b[0] * b[1])
    runs += [(f"perfect + {w:g} x asks", f"perfect-{w:g}ask", RubricReward.from_prompts(prompts, mean, std, w),
              largest) for w in a.ask_weight]
    print(f"run {a.run} (ppo {ppo_dir.name}, eval {eval_dir.name}); perfect reward standardised with the judge's "
          f"SFT-sample scores: mean {mean:.2f}, std {std:.2f}")
    print(f"{'reward':22s} {'budget':>8s} {'KL':>6s} {'ppo s':>6s} " + " ".join(
        f"{k.replace('_accuracy', '').replace('_when_missing', ''):>10s}" for k in CLINICAL)
        + "  referee win rate [95% CI]   (clinical: policy/SFT)")
    rows = []
    for name, slug, fn, (steps, rollouts) in runs:
        slug = f"{slug}-{steps}x{rollouts}" + ("" if a.seed is None else f"-seed{a.seed}")
        shutil.rmtree(out / slug, ignore_errors=True)   # measure afresh: no resume from an earlier run
        row = run_one(name, fn, steps, rollouts, ppo_man, eval_man, out / slug, a.seed)
        rows.append(row)
        print(fmt(row), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    name = "ceiling" + ("-ask" if a.ask_only else "") + ("" if a.seed is None else f"-seed{a.seed}") + ".json"
    (out / name).write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
