"""The optimiser/schedule block every Trainer-based stage shares, and reading its logged losses.

    cfg.optim = OptimSpec(learning_rate=2e-5, epochs=3)          # in a stage Config
    args = RewardConfig(**common_trainer_kwargs(cfg.optim, out, ctx, cfg.distributed, seed), ...)

The sft, pretrain and rsft stages pass them to transformers' ``TrainingArguments``, the trl
stages (reward_model, dpo, online_rl) to their trl config.

CPU runs need ``bf16=False`` and ``gradient_checkpointing=False`` (trl defaults to both on);
they are set here from the device, so no stage forgets them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import Field

from alignment.distributed import DistributedSpec, trainer_kwargs
from medalign.config import StrictModel

Scheduler = Literal["linear", "cosine", "cosine_with_min_lr", "constant", "constant_with_warmup"]


class OptimSpec(StrictModel):
    """AdamW, learning-rate schedule, batch and length of training (transformers Trainer terms)."""

    optimizer: Literal["adamw_torch", "sgd"] = "adamw_torch"  # sgd: plain gradient steps (tests, debugging)
    learning_rate: float = Field(2e-5, gt=0)       # peak learning rate
    epochs: float = Field(3.0, gt=0)               # passes over the training set (ignored if max_steps > 0)
    max_steps: int = -1                            # > 0: stop after this many optimizer steps
    per_device_batch_size: int = Field(8, ge=1)    # examples per process per micro-batch
    gradient_accumulation_steps: int = Field(1, ge=1)  # micro-batches per optimizer step
    lr_scheduler: Scheduler = "cosine"             # schedule after warm-up
    min_lr_ratio: float = Field(0.1, ge=0, le=1)   # cosine_with_min_lr: floor as a fraction of the peak
    warmup_ratio: float = Field(0.03, ge=0, lt=1)  # linear warm-up over this fraction of the steps
    weight_decay: float = Field(0.0, ge=0)         # AdamW decoupled weight decay
    adam_beta1: float = Field(0.9, ge=0, lt=1)     # AdamW beta1
    adam_beta2: float = Field(0.999, ge=0, lt=1)   # AdamW beta2 (ChiMed-GPT: 0.95)
    adam_epsilon: float = Field(1e-8, gt=0)        # AdamW epsilon
    max_grad_norm: float = Field(1.0, ge=0)        # gradient clipping (0 = off)
    logging_steps: int = Field(10, ge=1)           # log the training loss every N optimizer steps
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # auto: bf16 mixed precision on GPU, fp32 on CPU


def common_trainer_kwargs(optim: OptimSpec, out: Path, ctx, dist: DistributedSpec, seed: int,
                          report_to: list[str] | None = None) -> dict:
    """Arguments every trl config of ours takes (output under ``out/checkpoints``).

    ``report_to``: the trackers (``Tracker.report_to`` of :mod:`alignment.tracking`; None: none).
    """
    bf16 = optim.dtype == "bfloat16" or (optim.dtype == "auto" and ctx.device.startswith("cuda"))
    sched_kwargs = {"min_lr_rate": optim.min_lr_ratio} if optim.lr_scheduler == "cosine_with_min_lr" else None
    return dict(
        output_dir=str(Path(out) / "checkpoints"),
        optim=optim.optimizer, learning_rate=optim.learning_rate, num_train_epochs=optim.epochs, max_steps=optim.max_steps,
        per_device_train_batch_size=optim.per_device_batch_size,
        per_device_eval_batch_size=optim.per_device_batch_size,
        gradient_accumulation_steps=optim.gradient_accumulation_steps,
        lr_scheduler_type=optim.lr_scheduler, lr_scheduler_kwargs=sched_kwargs,
        warmup_steps=optim.warmup_ratio, weight_decay=optim.weight_decay,
        adam_beta1=optim.adam_beta1, adam_beta2=optim.adam_beta2, adam_epsilon=optim.adam_epsilon,
        max_grad_norm=optim.max_grad_norm, logging_steps=optim.logging_steps, logging_first_step=True,
        bf16=bf16, fp16=False, gradient_checkpointing=False, report_to=list(report_to or []), seed=seed,
        disable_tqdm=not ctx.progress, dataloader_num_workers=0, save_only_model=False,
        include_num_input_tokens_seen="non_padding",  # -> trainer.state.num_input_tokens_seen (all ranks)
        **trainer_kwargs(dist, ctx.device),
    )


def logged_losses(log_history: list[dict], key: str = "loss") -> tuple[float | None, float | None]:
    """The first and last logged value of ``key`` (the training loss at start and end)."""
    values = [h[key] for h in log_history if key in h and h[key] is not None]
    return (values[0], values[-1]) if values else (None, None)


def perplexity(loss: float | None) -> float | None:
    """exp(loss), or None when the loss is missing or too large to exponentiate."""
    if loss is None or not math.isfinite(loss) or loss > 50:
        return None
    return math.exp(loss)
