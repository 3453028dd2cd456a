"""Stage ``reward_model``: a scalar reward model on judged pairs or ranked tuples.

Inputs: ``pairs`` and ``backbone`` (the SFT checkpoint; its LM head is replaced by a 1-label score
head). ``pairs`` is either the judge stage's directory (``pairs.parquet``, margins = judge score
gaps; ``ranked.parquet`` for the listwise loss) or the data stage's directory (``preferences/``
pairs and ``ranked/`` tuples, which become every ADJACENT pair of their ranking, ChiMed-GPT's
recipe; ``ranked_pairs: best_worst`` keeps only the best against the worst, its binary doctor vs
weak-model pairs, so the two RMs of its ablation train on the same tuples and are held out alike).

Losses: ``pairwise`` is trl's RewardTrainer (Bradley-Terry, -log sigmoid(r_c - r_r - m) with
m = margin_scale x judge score gap); ``listwise`` is Plackett-Luce on whole rankings
(:mod:`alignment.stages.reward_listwise`).

Held-out pairs: for judge pairs, every pair of a prompt whose id hashes below ``heldout_fraction``
(so no prompt is in both sets); for data-stage inputs, the ``heldout_split`` files. With
``eval_every_steps`` (pairwise loss) the held-out pairs are scored during training too, and the
metrics carry both curves (``train_curve``, ``heldout_curve``: step, loss, accuracy), which show
how fast an RM saturates (ChiMed-GPT's binary RM: 98% within ~200 steps). Outputs:
``out/model`` and ``out/reward_stats.json`` (``mean`` and ``std`` of the reward over training
responses, for PPO's normalisation, plus the held-out accuracy and how the split was made, which
the eval stage reuses).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from alignment.distributed import DistributedSpec, is_main_process, maybe_launch, world_size
from alignment.scope import TrainableScope
from alignment.specs import MaxLength
from alignment.stages.inputs import Quarantine, read_pairs, read_ranked
from alignment.stages.training_args import OptimSpec, common_trainer_kwargs, logged_losses
from alignment.tracking import Tracker, TrackingSpec, check_tracking, start_tracking
from medalign.config import StrictModel
from medalign.stage import Input, StageContext

NAME = "reward_model"
INPUTS = {"pairs": Input(("judge", "data"), "judge stage directory (pairs.parquet, ranked.parquet) or data "
                                              "stage directory (preferences/, ranked/)", reads=("preferences", "ranked")),
          "backbone": Input(("sft",), "checkpoint whose LM head becomes the score head", model=True)}


class RewardModelStageConfig(StrictModel):
    """Reward model training. Optimiser defaults follow ChiMed-GPT's RM."""

    source: Literal["auto", "pairs", "preferences", "ranked", "both"] = "auto"  # auto: pairs.parquet if present, else preferences/ + ranked/
    loss: Literal["pairwise", "listwise"] = "pairwise"   # Bradley-Terry (trl) or Plackett-Luce on rankings
    ranked_pairs: Literal["adjacent", "best_worst"] = "adjacent"  # pairs of a ranking: every adjacent one, or best vs worst only
    margin_scale: float = Field(0.1, ge=0)               # margin = scale x judge score gap (0: plain Bradley-Terry)
    heldout_fraction: float = Field(0.1, ge=0, lt=1)     # judge pairs: share of prompt ids held out
    heldout_split: str = "validation"                    # data-stage inputs: the held-out split
    optim: OptimSpec = Field(default_factory=lambda: OptimSpec(
        learning_rate=5e-6, epochs=2, per_device_batch_size=8, lr_scheduler="cosine_with_min_lr",
        min_lr_ratio=0.1, warmup_ratio=0.03))           # ChiMed-GPT: 2 epochs, batch 8, cosine 5e-6 -> 10%, 3% warm-up
    scope: TrainableScope = Field(default_factory=TrainableScope)  # full / lora / last_n_layers
    max_length: MaxLength = 1024                         # pairs with a longer side are dropped (counted); scoring cap
    eval_every_steps: int | None = Field(None, ge=1)     # pairwise: score the held-out pairs every N steps (curves)
    stats_samples: int = Field(1024, ge=2)               # training responses scored for the reward mean/std
    score_batch_size: int = Field(32, ge=1)              # responses per forward when scoring held-out pairs and stats
    seed: int | None = None                              # None: the job seed
    distributed: DistributedSpec = Field(default_factory=DistributedSpec)  # processes / DeepSpeed (pairwise)
    min_train_pairs: int = Field(16, ge=1)               # fewer training pairs (listwise: tuples) used: the stage failed
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)  # TensorBoard (out/tensorboard) / W&B


    @model_validator(mode="after")
    def _curves_are_pairwise(self) -> "RewardModelStageConfig":
        if self.eval_every_steps is not None and self.loss != "pairwise":
            raise ValueError("eval_every_steps: held-out curves are measured for loss pairwise only "
                             "(the listwise loop scores the held-out pairs once, at the end)")
        return self


Config = RewardModelStageConfig


def accept(cfg: RewardModelStageConfig, metrics: dict) -> list[str]:
    """A reward model trained on a handful of pairs is a failure, however good its loss looks."""
    name = "train_tuples" if cfg.loss == "listwise" else "train_pairs_used"
    used = metrics.get(name, metrics.get("train_pairs"))
    if used is None or used >= cfg.min_train_pairs:
        return []
    return [f"trained on {used} {'ranked tuples' if cfg.loss == 'listwise' else 'pairs'}, fewer than "
            f"min_train_pairs {cfg.min_train_pairs}: too few judged or preference pairs reached it"]


def is_heldout(prompt_id: str, fraction: float) -> bool:
    """Deterministic split by prompt id (sha256), the same on every machine and run."""
    h = int(hashlib.sha256(str(prompt_id).encode("utf-8")).hexdigest()[:8], 16)
    return h / 2**32 < fraction


def ranked_to_adjacent_pairs(row: dict, which: str = "adjacent") -> list[dict]:
    """Every (better, next-worse) pair of a ranking; ties are not pairs. Margin None.

    ranks [0, 1, 1, 2] -> (0 > 1a), (0 > 1b), (1a > 2), (1b > 2). ``which="best_worst"``: only
    the best level against the worst, (0 > 2) (ChiMed-GPT's binary doctor vs weak-model pairs).
    """
    levels = sorted(set(row["ranks"]))
    if which == "adjacent":
        steps = list(zip(levels, levels[1:]))
    else:
        steps = [(levels[0], levels[-1])] if len(levels) > 1 else []
    pairs = []
    for better, worse in steps:
        for i, ri in enumerate(row["ranks"]):
            for j, rj in enumerate(row["ranks"]):
                if ri == better and rj == worse:
                    pairs.append({"prompt_id": row["prompt_id"], "messages": row["messages"],
                                  "chosen": row["responses"][i], "rejected": row["responses"][j], "margin": None})
    return pairs


def resolve_source(source: str, base: Path) -> str:
    """``source`` itself, or for ``auto``: ``pairs`` when ``base/pairs.parquet`` exists, else the
    data stage's ``preferences`` / ``ranked`` train splits that exist (``both`` when both do)."""
    if source != "auto":
        return source
    if (base / "pairs.parquet").is_file():
        return "pairs"
    have = [k for k in ("preferences", "ranked") if (base / k / "train.parquet").is_file()]
    if not have:
        raise FileNotFoundError(f"reward_model: input 'pairs' ({base}) has neither pairs.parquet (judge stage) "
                                "nor preferences/ or ranked/ train splits (data stage)")
    return "both" if len(have) == 2 else have[0]


def load_preference_data(pairs_dir: str | Path, source: str, heldout_fraction: float, heldout_split: str,
                         quarantine: Quarantine, ranked_pairs: str = "adjacent") -> dict:
    """``{"source", "train_pairs", "heldout_pairs", "train_tuples", "heldout_tuples"}``.

    ``source`` is ``auto`` (see :func:`resolve_source`), ``pairs``, ``preferences``, ``ranked`` or
    ``both``; ``ranked_pairs`` which pairs a data-stage ranking gives (see
    :func:`ranked_to_adjacent_pairs`). The eval stage calls this with the settings recorded in
    ``reward_stats.json`` to score the same held-out pairs.
    """
    base = Path(pairs_dir)
    source = resolve_source(source, base)
    data = {"source": source, "train_pairs": [], "heldout_pairs": [], "train_tuples": [], "heldout_tuples": []}
    if source == "pairs":
        for p in read_pairs(base / "pairs.parquet", quarantine):
            data["heldout_pairs" if is_heldout(p["prompt_id"], heldout_fraction) else "train_pairs"].append(p)
        ranked = base / "ranked.parquet"
        if ranked.is_file():
            for t in read_ranked(ranked, quarantine):
                data["heldout_tuples" if is_heldout(t["prompt_id"], heldout_fraction) else "train_tuples"].append(t)
        return data
    for split, key in (("train", "train"), (heldout_split, "heldout")):
        if source in ("preferences", "both") and (base / "preferences" / f"{split}.parquet").is_file():
            data[f"{key}_pairs"] += read_pairs(base / "preferences" / f"{split}.parquet", quarantine)
        if source in ("ranked", "both") and (base / "ranked" / f"{split}.parquet").is_file():
            tuples = read_ranked(base / "ranked" / f"{split}.parquet", quarantine)
            data[f"{key}_tuples"] += tuples
            data[f"{key}_pairs"] += [p for t in tuples for p in ranked_to_adjacent_pairs(t, ranked_pairs)]
    return data


def _trl_rows(pairs: list[dict], margin_scale: float) -> list[dict]:
    """RewardTrainer's conversational rows (a ``margin`` column only when margins are used)."""
    rows = [{"prompt": p["messages"], "chosen": [{"role": "assistant", "content": p["chosen"]}],
             "rejected": [{"role": "assistant", "content": p["rejected"]}],
             "margin": margin_scale * (p["margin"] or 0.0)} for p in pairs]
    return [{k: v for k, v in r.items() if k != "margin"} for r in rows] if margin_scale == 0 else rows


def training_curves(log_history: list[dict]) -> tuple[list[dict], list[dict]]:
    """(train curve, held-out curve) from a trl log history: ``{"step", "loss", "accuracy"}`` per
    logged step (training: the mean over the logging window; held-out: every held-out pair)."""
    train = [{"step": h["step"], "loss": h["loss"], "accuracy": h.get("accuracy")}
             for h in log_history if "loss" in h and "step" in h]
    held = [{"step": h["step"], "loss": h["eval_loss"], "accuracy": h.get("eval_accuracy")}
            for h in log_history if "eval_loss" in h and "step" in h]
    return train, held


def train_pairwise(model, tokenizer, pairs: list[dict], cfg: RewardModelStageConfig, out: Path,
                   ctx: StageContext, seed: int, tracker: Tracker, heldout: list[dict] | None = None):
    """Train ``model`` on ``pairs`` with trl's RewardTrainer; return (the trainer, metrics).
    With ``cfg.eval_every_steps`` and ``heldout`` pairs, those are scored every N steps (curves)."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    evaluate = bool(cfg.eval_every_steps and heldout)
    args = RewardConfig(**common_trainer_kwargs(cfg.optim, out, ctx, cfg.distributed, seed, tracker.report_to),
                        max_length=cfg.max_length, save_strategy="no",
                        eval_strategy="steps" if evaluate else "no", eval_steps=cfg.eval_every_steps if evaluate else None)
    eval_set = Dataset.from_list(_trl_rows(heldout, cfg.margin_scale)) if evaluate else None
    trainer = tracker.build_trainer(RewardTrainer, model=model, args=args, processing_class=tokenizer,
                                    train_dataset=Dataset.from_list(_trl_rows(pairs, cfg.margin_scale)),
                                    eval_dataset=eval_set)
    # the held-out curve starts at step 0, before any training (train() starts a new log history)
    before = [{"step": 0, **trainer.evaluate()}] if evaluate else []
    trainer.train()
    first, last = logged_losses(trainer.state.log_history)
    acc_first, acc_last = logged_losses(trainer.state.log_history, "accuracy")
    train_curve, heldout_curve = training_curves(before + trainer.state.log_history)
    return trainer, {"train_loss_start": first, "train_loss_end": last, "train_accuracy_end": acc_last,
                     "train_accuracy_start": acc_first, "steps": trainer.state.global_step,
                     "train_pairs_used": len(trainer.train_dataset), "train_curve": train_curve,
                     **({"heldout_curve": heldout_curve} if evaluate else {})}


def _train_and_save(model, tokenizer, data: dict, cfg: RewardModelStageConfig, inputs: dict[str, str], out: Path,
                    ctx: StageContext, seed: int, tracker: Tracker):
    """Train with the configured loss and save ``out/model``; return (a model to score with, metrics)."""
    from alignment.cpu_memory import keep_freed_memory
    from alignment.models import load_reward_model
    from alignment.stages.reward_listwise import train_listwise
    from alignment.stages.sft import is_zero3, save_trained_model

    source = data["source"]
    if ctx.device == "cpu":
        keep_freed_memory()
    if cfg.loss == "pairwise":
        if not data["train_pairs"]:
            raise ValueError(f"reward_model: no training pairs from {inputs['pairs']} (source {source})")
        trainer, metrics = train_pairwise(model, tokenizer, data["train_pairs"], cfg, out, ctx, seed, tracker,
                                          data["heldout_pairs"])
        save_trained_model(trainer, tokenizer, out / "model")
        model = trainer.model
        if is_zero3(trainer) and is_main_process():
            # the weights are sharded across ranks: a forward on rank 0 alone would wait forever for
            # the others, so the statistics below score the whole model rank 0 just saved
            model = load_reward_model(str(out / "model"), "reward_model", device=ctx.device, dtype="float32")
    else:
        if not data["train_tuples"]:
            raise ValueError(f"reward_model: loss=listwise needs ranked tuples; none in {inputs['pairs']} "
                             f"(source {source})")
        metrics = train_listwise(model, tokenizer, data["train_tuples"], cfg.optim, cfg.max_length, seed, ctx.progress,
                                 log=tracker.log)
        model = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
        model.save_pretrained(out / "model")
        tokenizer.save_pretrained(out / "model")
    return model, metrics


def run(cfg: RewardModelStageConfig, inputs: dict[str, str], out: Path, ctx: StageContext) -> dict:
    from alignment.models import load_tokenizer, sequence_classifier_from_lm
    from alignment.scope import apply_trainable_scope

    out = Path(out)
    check_tracking(cfg.tracking, out)
    if cfg.loss == "pairwise":
        launched = maybe_launch(NAME, cfg, inputs, out, ctx)
        if launched is not None:
            return launched
    elif world_size() > 1:
        raise ValueError("reward_model: loss=listwise trains in one process; run it with "
                         "resources.num_workers: 1 (and distributed.nproc: 1)")
    quarantine = Quarantine()
    data = load_preference_data(inputs["pairs"], cfg.source, cfg.heldout_fraction, cfg.heldout_split, quarantine,
                                cfg.ranked_pairs)
    source = data["source"]
    seed = ctx.seed if cfg.seed is None else cfg.seed
    tokenizer = load_tokenizer(inputs["backbone"], "backbone")
    import transformers

    transformers.set_seed(seed)  # the new score head's initialisation
    model = sequence_classifier_from_lm(inputs["backbone"], tokenizer, dtype="float32")
    model = apply_trainable_scope(model, cfg.scope)
    with start_tracking(cfg.tracking, out, config=cfg) as tracker:
        model, metrics = _train_and_save(model, tokenizer, data, cfg, inputs, out, ctx, seed, tracker)
        if not is_main_process():
            return metrics
        stats = _reward_stats(model, tokenizer, data, cfg, source, seed, ctx)
        tracker.log({"eval/heldout_accuracy": stats["heldout_accuracy"],
                     "eval/heldout_reward_gap": stats.get("heldout_reward_gap")}, step=metrics["steps"])
    (out / "reward_stats.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
    quarantine.write(out)
    write_pair_lineage(out, data)
    return {**metrics, **{k: v for k, v in stats.items() if k != "settings"}, "quarantined": len(quarantine),
            "train_pairs": len(data["train_pairs"]), "train_tuples": len(data["train_tuples"])}


def write_pair_lineage(out: Path, data: dict) -> None:
    """``pair_lineage.jsonl``: one line per training / held-out pair with the prompt and, for judge
    pairs, the response ids and judgment ids it came from (``medalign audit show`` finds them)."""
    from alignment.stages.inputs import PAIR_LINEAGE

    with open(out / "pair_lineage.jsonl", "w", encoding="utf-8") as f:
        for split in ("train", "heldout"):
            for p in data[f"{split}_pairs"]:
                line = {"split": split, "prompt_id": p["prompt_id"],
                        **{k: p[k] for k in PAIR_LINEAGE if k in p}}
                f.write(json.dumps(line, ensure_ascii=False) + "\n")


def heldout_metrics(model, tokenizer, pairs: list[dict], batch_size: int, max_length: int,
                    progress: bool = False) -> dict:
    """Held-out pairwise accuracy (ties count half) with its 95% bootstrap interval over pairs,
    accuracy by judge-margin bucket, mean reward gap."""
    from alignment.metrics.stats import mean_with_ci
    from alignment.reward_scoring import accuracy_by_margin, pairwise_accuracy, score_responses

    if not pairs:
        return {"heldout_pairs": 0, "heldout_accuracy": None, "accuracy_by_margin": {}}
    prompts = [p["messages"] for p in pairs]
    chosen = score_responses(model, tokenizer, prompts, [p["chosen"] for p in pairs], batch_size, max_length, progress)
    rejected = score_responses(model, tokenizer, prompts, [p["rejected"] for p in pairs], batch_size, max_length,
                               progress)
    outcomes = [1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected)]
    ci = mean_with_ci(outcomes, seed=0)
    return {"heldout_pairs": len(pairs), "heldout_accuracy": pairwise_accuracy(chosen, rejected),
            "heldout_accuracy_ci": [ci["ci_low"], ci["ci_high"]],
            "accuracy_by_margin": accuracy_by_margin(chosen, rejected, [p["margin"] for p in pairs]),
            "heldout_reward_gap": sum(c - r for c, r in zip(chosen, rejected)) / len(pairs)}


def _reward_stats(model, tokenizer, data: dict, cfg: RewardModelStageConfig, source: str, seed: int,
                  ctx: StageContext) -> dict:
    import random

    from alignment.reward_scoring import mean_std, score_responses

    responses = [(p["messages"], r) for p in data["train_pairs"] for r in (p["chosen"], p["rejected"])]
    responses += [(t["messages"], r) for t in data["train_tuples"] for r in t["responses"]]
    random.Random(seed).shuffle(responses)
    responses = responses[: cfg.stats_samples]
    scores = score_responses(model, tokenizer, [m for m, _ in responses], [r for _, r in responses],
                             cfg.score_batch_size, cfg.max_length, ctx.progress)
    mean, std = mean_std(scores)
    held = heldout_metrics(model, tokenizer, data["heldout_pairs"], cfg.score_batch_size, cfg.max_length, ctx.progress)
    return {"mean": mean, "std": std, "n": len(scores), **held,
            "settings": {"source": source, "heldout_fraction": cfg.heldout_fraction,
                         "heldout_split": cfg.heldout_split, "loss": cfg.loss, "ranked_pairs": cfg.ranked_pairs}}
