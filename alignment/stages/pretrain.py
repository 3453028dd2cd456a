"""Stage ``pretrain``: continued pretraining on plain text (ChiMed-GPT's first stage).

Inputs: ``data`` (reads ``pretrain/<train_split>.parquet``, column ``text``, and the validation
split when present) and ``model``. Every token is a target; documents are packed into rows of
``max_length`` tokens (an end-of-text token between documents). Output: ``out/model``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from alignment.distributed import DistributedSpec, maybe_launch
from alignment.scope import TrainableScope
from alignment.specs import MaxLength
from alignment.stages.inputs import Quarantine, read_texts, split_file
from alignment.stages.sft import train_sft
from alignment.stages.training_args import OptimSpec
from alignment.tracking import TrackingSpec, check_tracking, start_tracking
from medalign.config import StrictModel
from medalign.stage import Input, StageContext

NAME = "pretrain"
INPUTS = {"data": Input(("data",), "data stage directory (pretrain/ text)", reads=("pretrain",)),
          "model": Input(("bootstrap",), "checkpoint to continue pretraining", model=True)}


class PretrainStageConfig(StrictModel):
    """Continued pretraining. Defaults follow ChiMed-GPT: AdamW (0.9, 0.95), lr 5e-5, wd 0.1, clip 1.0."""

    renamed = {"max_train_texts": "max_train_examples", "max_eval_texts": "max_eval_examples"}

    optim: OptimSpec = Field(default_factory=lambda: OptimSpec(
        learning_rate=5e-5, epochs=1, adam_beta2=0.95, weight_decay=0.1, max_grad_norm=1.0))  # ChiMed-GPT
    scope: TrainableScope = Field(default_factory=TrainableScope)  # full / lora / last_n_layers
    max_length: MaxLength = 1024                 # tokens per packed row (ChiMed-GPT: 4096)
    packing: bool = True                         # pack documents into full rows (no padding)
    keep: Literal["best", "last"] = "last"       # best: lowest validation loss; last: final step
    eval_every_steps: int | None = Field(None, ge=1)  # evaluate every N steps (None: once per epoch)
    train_split: str = "train"                   # pretrain/<split>.parquet to train on
    eval_split: str | None = "validation"        # validation split, used when the file exists
    max_train_examples: int | None = Field(None, ge=1)  # cap on training documents (None: all)
    max_eval_examples: int | None = Field(512, ge=1)    # cap on validation documents
    seed: int | None = None                      # None: the job seed
    distributed: DistributedSpec = Field(default_factory=DistributedSpec)  # processes / DeepSpeed
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)  # TensorBoard (out/tensorboard) / W&B


Config = PretrainStageConfig


def run(cfg: PretrainStageConfig, inputs: dict[str, str], out: Path, ctx: StageContext) -> dict:
    out = Path(out)
    check_tracking(cfg.tracking, out)
    launched = maybe_launch(NAME, cfg, inputs, out, ctx)
    if launched is not None:
        return launched
    quarantine = Quarantine()
    texts = read_texts(split_file(inputs["data"], "pretrain", cfg.train_split), quarantine, cfg.max_train_examples)
    if not texts:
        raise ValueError(f"pretrain: no usable text in {inputs['data']}/pretrain/{cfg.train_split}.parquet")
    eval_texts = []
    eval_file = Path(inputs["data"]) / "pretrain" / f"{cfg.eval_split}.parquet"
    if cfg.eval_split and eval_file.is_file():
        eval_texts = read_texts(eval_file, quarantine, cfg.max_eval_examples)
    with start_tracking(cfg.tracking, out, config=cfg) as tracker:
        return train_sft(inputs["model"], [{"text": t} for t in texts], [{"text": t} for t in eval_texts],
                         cfg, out, ctx, quarantine, tracker)
