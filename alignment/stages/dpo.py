"""Stage ``dpo``: Direct Preference Optimisation on judged pairs (trl DPOTrainer), the cheap offline
alternative to reward model + PPO.

Inputs: ``pairs`` (judge stage directory with ``pairs.parquet``, or the data stage's directory
with ``preferences/`` / ``ranked/``; read exactly as the reward_model stage reads them, with the
same held-out split) and ``policy`` (the SFT checkpoint; a frozen copy is the reference model).
Output: ``out/model``. Metrics: training loss, implicit-reward accuracy and margin at start and end
(trl's ``rewards/accuracies``, ``rewards/margins``), and the same on the held-out pairs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from alignment.distributed import DistributedSpec, maybe_launch
from alignment.scope import TrainableScope
from alignment.specs import MaxLength
from alignment.stages.inputs import Quarantine
from alignment.stages.reward_model import load_preference_data
from alignment.stages.training_args import OptimSpec, common_trainer_kwargs, logged_losses
from alignment.tracking import Tracker, TrackingSpec, check_tracking, start_tracking
from medalign.config import StrictModel
from medalign.stage import Input, StageContext

NAME = "dpo"
INPUTS = {"pairs": Input(("judge", "data"), "judge stage directory (pairs.parquet) or data stage directory "
                                              "(preferences/, ranked/)", reads=("preferences", "ranked")),
          "policy": Input(("sft",), "checkpoint to optimise (also the frozen reference)", model=True)}


class DPOStageConfig(StrictModel):
    """DPO settings (trl names); defaults are trl's / the DPO paper's."""

    beta: float = Field(0.1, gt=0)                         # trl's DPO beta (implicit-reward scale), not a KL weight like kl.coef
    loss_type: Literal["sigmoid", "ipo", "hinge", "robust"] = "sigmoid"  # sigmoid = the DPO paper's loss
    label_smoothing: float = Field(0.0, ge=0, lt=0.5)      # robust DPO: assumed label-flip probability
    source: Literal["auto", "pairs", "preferences", "ranked", "both"] = "auto"  # as in the reward_model stage
    heldout_fraction: float = Field(0.1, ge=0, lt=1)       # judge pairs: share of prompt ids held out
    heldout_split: str = "validation"                      # data-stage inputs: the held-out split
    optim: OptimSpec = Field(default_factory=lambda: OptimSpec(
        learning_rate=1e-6, epochs=1, per_device_batch_size=8, lr_scheduler="linear", warmup_ratio=0.1))  # trl defaults
    scope: TrainableScope = Field(default_factory=TrainableScope)  # full / lora / last_n_layers
    max_length: MaxLength = 1024                           # prompt + response tokens
    seed: int | None = None                                # None: the job seed
    distributed: DistributedSpec = Field(default_factory=DistributedSpec)  # processes / DeepSpeed
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)  # TensorBoard (out/tensorboard) / W&B


Config = DPOStageConfig


def _rows(pairs: list[dict]) -> list[dict]:
    return [{"prompt": p["messages"], "chosen": [{"role": "assistant", "content": p["chosen"]}],
             "rejected": [{"role": "assistant", "content": p["rejected"]}]} for p in pairs]


def _train_and_evaluate(cfg: DPOStageConfig, model, tokenizer, data: dict, out: Path, ctx: StageContext, seed: int,
                        tracker: Tracker):
    """Train with trl's DPOTrainer, evaluate on the held-out pairs; return (trainer, metrics)."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(**common_trainer_kwargs(cfg.optim, out, ctx, cfg.distributed, seed, tracker.report_to),
                     beta=cfg.beta, loss_type=[cfg.loss_type], label_smoothing=cfg.label_smoothing,
                     max_length=cfg.max_length, save_strategy="no", eval_strategy="no")
    heldout = Dataset.from_list(_rows(data["heldout_pairs"])) if data["heldout_pairs"] else None
    trainer = tracker.build_trainer(DPOTrainer, model=model, args=args, processing_class=tokenizer,
                                    train_dataset=Dataset.from_list(_rows(data["train_pairs"])), eval_dataset=heldout)
    trainer.train()
    history = trainer.state.log_history
    metrics = {"train_loss_start": logged_losses(history)[0], "train_loss_end": logged_losses(history)[1],
               "reward_accuracy_start": logged_losses(history, "rewards/accuracies")[0],
               "reward_accuracy_end": logged_losses(history, "rewards/accuracies")[1],
               "reward_margin_end": logged_losses(history, "rewards/margins")[1],
               "steps": trainer.state.global_step, "train_pairs": len(data["train_pairs"]),
               "heldout_pairs": len(data["heldout_pairs"]), "source": data["source"]}
    if heldout is not None:
        ev = trainer.evaluate()
        metrics.update(heldout_loss=ev.get("eval_loss"), heldout_reward_accuracy=ev.get("eval_rewards/accuracies"),
                       heldout_reward_margin=ev.get("eval_rewards/margins"))
    return trainer, metrics


def run(cfg: DPOStageConfig, inputs: dict[str, str], out: Path, ctx: StageContext) -> dict:
    from alignment.distributed import is_main_process
    from alignment.models import load_causal_lm, load_tokenizer
    from alignment.scope import apply_trainable_scope
    from alignment.stages.sft import save_trained_model

    out = Path(out)
    check_tracking(cfg.tracking, out)
    launched = maybe_launch(NAME, cfg, inputs, out, ctx)
    if launched is not None:
        return launched
    quarantine = Quarantine()
    data = load_preference_data(inputs["pairs"], cfg.source, cfg.heldout_fraction, cfg.heldout_split, quarantine)
    if not data["train_pairs"]:
        raise ValueError(f"dpo: no training pairs in {inputs['pairs']} (source {data['source']})")
    tokenizer = load_tokenizer(inputs["policy"], "policy")
    model = apply_trainable_scope(load_causal_lm(inputs["policy"], "policy", dtype="float32").train(), cfg.scope)
    seed = ctx.seed if cfg.seed is None else cfg.seed
    with start_tracking(cfg.tracking, out, config=cfg) as tracker:
        trainer, metrics = _train_and_evaluate(cfg, model, tokenizer, data, out, ctx, seed, tracker)
    save_trained_model(trainer, tokenizer, out / "model")
    if is_main_process():
        quarantine.write(out)
    return {**metrics, "quarantined": len(quarantine)}
