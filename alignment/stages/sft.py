"""Stage ``sft``: supervised fine-tuning on conversations, assistant-only loss.

Inputs: ``data`` (reads ``sft/<train_split>.parquet`` and ``sft/<eval_split>.parquet``) and
``model`` (checkpoint). Output: ``out/model`` (the best checkpoint by validation loss, or the
last), ``out/quarantine.jsonl`` for refused rows. A killed run resumes from ``out/checkpoints``.

The loop is transformers' ``Trainer`` as it comes (checkpoints with exact resume, validation and
best-checkpoint keeping, gradient accumulation, DDP / DeepSpeed, TensorBoard / W&B) fed by
:mod:`alignment.stages.lm_data` (tokenisation, assistant masks, packing, batches) and the model's
own cross-entropy. It was trl's ``SFTTrainer``, which on a CPU ran at 0.1-0.3 of a bare
forward-backward loop on the same batches (profile in ``benchmarks/sft_throughput.py``): it
computes every loss through a chunked "fused" LM head that, without Triton, scores every position
in float32 tiles with entropy and top-1 accuracy metrics over the whole vocabulary (about 3/4 of
a step of the tiny model, whose LM head is most of its weights), with no setting to turn it off;
and its packing put a whole batch in one row, so the attention mask grew with the square of the
batch. The data preparation and the losses are the same (tests check it against trl).

Loss normalisation (what trl did, and what our invariance test checks): the loss of an optimizer
step is sum(token NLL over assistant tokens) / (number of assistant tokens in ALL the micro-batches
of that step, across processes). transformers' Trainer counts them (``num_items_in_batch``, over
the shifted labels) and the model divides its summed loss by it. So one batch of 8 and 8
accumulated batches of 1 give the same gradient; a mean of per-micro-batch means would not.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from alignment.distributed import DistributedSpec, checkpoint_notice, is_main_process, maybe_launch
from alignment.scope import TrainableScope
from alignment.specs import MaxLength
from alignment.stages.inputs import Quarantine, read_conversations, split_file
from alignment.stages.training_args import OptimSpec, common_trainer_kwargs, logged_losses, perplexity
from alignment.tracking import Tracker, TrackingSpec, check_tracking, start_tracking
from medalign.config import StrictModel
from medalign.stage import Input, StageContext

if TYPE_CHECKING:   # the other configs train_sft takes (their modules import this one)
    from alignment.stages.pretrain import PretrainStageConfig
    from alignment.stages.rsft import RSFTTrainSpec

NAME = "sft"
INPUTS = {"data": Input(("data",), "data stage directory (sft/ conversations)", reads=("sft",)),
          "model": Input(("pretrain", "bootstrap"), "checkpoint to fine-tune", model=True)}


class SFTStageConfig(StrictModel):
    """SFT on the data stage's ``sft/`` conversations. Defaults follow HuatuoGPT's SFT."""

    optim: OptimSpec = Field(default_factory=lambda: OptimSpec(
        learning_rate=2e-5, epochs=3, per_device_batch_size=8, weight_decay=0.0))  # HuatuoGPT: lr 2e-5, 3 epochs, batch 128
    scope: TrainableScope = Field(default_factory=TrainableScope)  # full / lora / last_n_layers
    max_length: MaxLength = 1024                    # tokens per example, longer ones are cut (HuatuoGPT: 2048)
    packing: bool = False                           # pack short examples into max_length rows (ChiMed-GPT did)
    assistant_only_loss: bool = True                # learn only the assistant turns (+ their end-of-turn)
    keep: Literal["best", "last"] = "best"          # best: lowest validation loss (HuatuoGPT); last: final step
    eval_every_steps: int | None = Field(None, ge=1)  # evaluate every N steps (None: once per epoch)
    train_split: str = "train"                      # sft/<split>.parquet to train on
    eval_split: str | None = "validation"           # sft/<split>.parquet for validation (None: no validation)
    origins: list[str] | None = Field(None, min_length=1)  # train/validate only on rows of these origins, e.g. [real_doctor] (None: all)
    max_train_examples: int | None = Field(None, ge=1)  # cap on training conversations (None: all)
    max_eval_examples: int | None = Field(512, ge=1)    # cap on validation conversations
    seed: int | None = None                         # None: the job seed
    distributed: DistributedSpec = Field(default_factory=DistributedSpec)  # processes / DeepSpeed
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)  # TensorBoard (out/tensorboard) / W&B


Config = SFTStageConfig


def run(cfg: SFTStageConfig, inputs: dict[str, str], out: Path, ctx: StageContext) -> dict:
    out = Path(out)
    check_tracking(cfg.tracking, out)
    launched = maybe_launch(NAME, cfg, inputs, out, ctx)
    if launched is not None:
        return launched
    quarantine = Quarantine()
    train_rows = read_conversations(split_file(inputs["data"], "sft", cfg.train_split), quarantine,
                                    cfg.max_train_examples, cfg.origins)
    eval_rows = []
    if cfg.eval_split:
        eval_rows = read_conversations(split_file(inputs["data"], "sft", cfg.eval_split), quarantine,
                                       cfg.max_eval_examples, cfg.origins)
    if not train_rows:
        only = f" of origins {cfg.origins}" if cfg.origins else ""
        raise ValueError(f"sft: no usable training conversations{only} in {inputs['data']} "
                         f"({len(quarantine)} quarantined: {quarantine.items[:3]})")
    with start_tracking(cfg.tracking, out, config=cfg) as tracker:
        return train_sft(inputs["model"], train_rows, eval_rows, cfg, out, ctx, quarantine, tracker)


def _training_args(cfg: SFTStageConfig | PretrainStageConfig | RSFTTrainSpec, out: Path, ctx: StageContext,
                   has_eval: bool, report_to: list[str], dist: DistributedSpec | None = None):
    from transformers import TrainingArguments

    every = getattr(cfg, "eval_every_steps", None)
    strategy = "no" if not has_eval else ("steps" if every else "epoch")
    best = has_eval and getattr(cfg, "keep", "last") == "best"
    dist = dist or getattr(cfg, "distributed", None) or DistributedSpec()
    return TrainingArguments(
        **common_trainer_kwargs(cfg.optim, out, ctx, dist, ctx.seed if cfg.seed is None else cfg.seed, report_to),
        eval_strategy=strategy, eval_steps=every,
        save_strategy=strategy if has_eval else "epoch", save_steps=every,
        load_best_model_at_end=best, metric_for_best_model="eval_loss" if best else None,
        greater_is_better=False if best else None, save_total_limit=1,
        remove_unused_columns=False,   # packed rows keep their seq_lengths for the collator
    )


def train_sft(model_ref: str, train_rows: list[dict], eval_rows: list[dict],
              cfg: SFTStageConfig | PretrainStageConfig | RSFTTrainSpec, out: Path, ctx: StageContext,
              quarantine: Quarantine | None = None, tracker: Tracker | None = None,
              tb_subdir: str | None = None, distributed: DistributedSpec | None = None) -> dict:
    """Fine-tune ``model_ref`` on ``train_rows`` and save ``out/model``; return the metrics.

    Rows are ``{"messages": [...]}`` (conversations) or ``{"text": ...}`` (language modelling).
    ``cfg`` is an :class:`SFTStageConfig` or any config with its training fields ``optim``,
    ``scope``, ``max_length``, ``packing``, ``seed`` and optionally ``assistant_only_loss``,
    ``keep``, ``eval_every_steps``, ``distributed`` (absent: off, "last", per epoch, one
    process): the ``pretrain`` and ``rsft`` stages train through here too. Rows the caller
    refused (``quarantine``) are written to ``out/quarantine.jsonl`` and counted in the metrics.
    ``tracker`` (None: no tracking) receives the trainer's logs, under ``tb_subdir`` of the
    TensorBoard folder when given (rsft: one folder per iteration). ``distributed`` (None: the
    config's own, if any) sets DeepSpeed for a config without that field (rsft's ``train``).
    """
    from transformers import Trainer

    from alignment.cpu_memory import keep_freed_memory
    from alignment.models import load_causal_lm, load_tokenizer
    from alignment.scope import apply_trainable_scope
    from alignment.stages.lm_data import LMCollator

    if ctx.device == "cpu":
        keep_freed_memory()
    tokenizer = load_tokenizer(model_ref, "model")
    model = load_causal_lm(model_ref, "model", dtype="float32").train()
    model.config.use_cache = False   # packed rows need it off (see lm_data); save_trained_model turns it back on
    model = apply_trainable_scope(model, cfg.scope)
    train_set, eval_set = _datasets(tokenizer, train_rows, eval_rows, cfg)
    tracker = tracker or Tracker(TrackingSpec(tensorboard=False), out)
    args = _training_args(cfg, out, ctx, bool(eval_rows), tracker.report_to, distributed)
    trainer = tracker.build_trainer(Trainer, tb_subdir, model=model, args=args, processing_class=tokenizer,
                                    data_collator=LMCollator(tokenizer.pad_token_id),
                                    train_dataset=train_set, eval_dataset=eval_set,
                                    callbacks=[checkpoint_notice()])   # a Ray Train group hears of each save
    result = trainer.train(resume_from_checkpoint=_last_checkpoint(out / "checkpoints"))
    metrics = _train_metrics(trainer, result, len(train_rows), len(eval_rows))
    save_trained_model(trainer, tokenizer, out / "model")
    quarantine = quarantine or Quarantine()
    if is_main_process():
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        quarantine.write(out)
    return {**metrics, "quarantined": len(quarantine)}


def _datasets(tokenizer, train_rows: list[dict], eval_rows: list[dict], cfg):
    """The training and validation (None without rows) datasets of :mod:`alignment.stages.lm_data`."""
    from alignment.stages.lm_data import lm_dataset

    assistant_only = getattr(cfg, "assistant_only_loss", False)   # pretrain: plain text, every token
    train_set = lm_dataset(tokenizer, train_rows, cfg.max_length, cfg.packing, assistant_only)
    if len(train_set) == 0:
        raise ValueError(f"no training example keeps a token to learn within max_length={cfg.max_length} "
                         "(the first max_length tokens of every conversation are prompt): raise max_length")
    eval_set = lm_dataset(tokenizer, eval_rows, cfg.max_length, cfg.packing, assistant_only) if eval_rows else None
    return train_set, eval_set


def _train_metrics(trainer, result, n_train: int, n_eval: int) -> dict:
    """Losses, steps, tokens and speed of the run; validation loss of the kept model when evaluated."""
    first, last = logged_losses(trainer.state.log_history)
    metrics = {"train_loss_start": first, "train_loss_end": last,
               "steps": trainer.state.global_step, "train_examples": n_train,
               "eval_examples": n_eval, "train_runtime_s": result.metrics.get("train_runtime"),
               "trained_tokens": trainer.state.num_input_tokens_seen}
    if metrics["trained_tokens"] and metrics["train_runtime_s"]:
        metrics["tokens_per_s"] = metrics["trained_tokens"] / metrics["train_runtime_s"]
    if n_eval:
        eval_loss = trainer.evaluate()["eval_loss"]
        metrics.update(eval_loss=eval_loss, perplexity=perplexity(eval_loss),
                       best_checkpoint=Path(trainer.state.best_model_checkpoint).name
                       if trainer.state.best_model_checkpoint else None)
    return metrics


def _last_checkpoint(ckpt_dir: Path) -> str | None:
    """The newest complete checkpoint of a killed attempt of THIS stage directory, if any (resume
    from it): ``checkpoint-<step>`` with the highest step whose ``trainer_state.json`` (written
    last) exists, so a checkpoint cut short by the kill is passed over."""
    if not ckpt_dir.is_dir():
        return None
    steps = [(int(d.name.split("-")[1]), d) for d in ckpt_dir.glob("checkpoint-*")
             if d.name.split("-")[1].isdigit() and (d / "trainer_state.json").is_file()]
    return str(max(steps)[1]) if steps else None


def save_trained_model(trainer, tokenizer, model_dir: Path) -> None:
    """Save the trained model as a plain HF checkpoint (LoRA adapters merged) + tokenizer.

    Under ZeRO-3 every rank must call it (the weights are gathered), and afterwards the model is
    no longer for forwards on one rank: load the saved checkpoint instead.
    """
    from peft import PeftModel

    model = trainer.model
    # training switches the KV cache off (train_sft, trl); a saved model should generate with it
    (model.get_base_model() if isinstance(model, PeftModel) else model).config.use_cache = True
    if isinstance(model, PeftModel):
        if is_zero3(trainer):
            raise NotImplementedError("merging LoRA adapters under ZeRO-3 is not supported; use zero2")
        if is_main_process():
            model.merge_and_unload().save_pretrained(model_dir)
            tokenizer.save_pretrained(model_dir)
        return
    trainer.save_model(str(model_dir))
    if is_main_process():
        tokenizer.save_pretrained(model_dir)
        _move_training_args_to_logs(model_dir)
    if is_zero3(trainer):
        # training is over; left set, transformers' global ZeRO-3 flag would make every later
        # from_pretrained in this process (a reward model for statistics, the next stage) partition
        # the model across ranks, and a forward on one rank would then wait for the others forever
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config

        unset_hf_deepspeed_config()


def _move_training_args_to_logs(model_dir: Path) -> None:
    """``save_model`` writes ``training_args.bin``, a pickle of the trainer's arguments holding
    this run's absolute paths. It is bookkeeping: kept in the stage's ``logs/``, out of the
    checkpoint, so the checkpoint's digest does not depend on where the run directory is."""
    args = Path(model_dir) / "training_args.bin"
    if args.is_file():
        logs = Path(model_dir).parent / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        args.replace(logs / "training_args.bin")


def is_zero3(trainer) -> bool:
    """True when the trainer runs DeepSpeed ZeRO-3: every rank holds only a shard of the weights."""
    return bool(trainer.is_deepspeed_enabled and trainer.accelerator.state.deepspeed_plugin.zero_stage == 3)
