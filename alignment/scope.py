"""Which parameters train: the whole model, LoRA adapters, or only the last N transformer blocks.

    model = apply_trainable_scope(model, TrainableScope(mode="last_n_layers", n_layers=2))

HuatuoGPT's PPO updated only the last two layers of BLOOMZ-7b; LoRA is the cheap default for
large models; ``full`` is what the tiny CPU model uses. The same scope applies to causal LMs
(policy) and to sequence classifiers (reward model, critic), whose ``score`` head is the one new
module: it is trainable unless ``train_score_head`` is false.
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import Field

from medalign.config import StrictModel

log = logging.getLogger("medalign.alignment.scope")

_SCORE_HEADS = ("score", "classifier", "v_head", "value_head")


class LoraSpec(StrictModel):
    """LoRA adapter shape (peft)."""

    r: int = Field(8, ge=1)                  # adapter rank
    alpha: int = Field(16, ge=1)             # scaling numerator: the update is scaled by alpha / r
    dropout: float = Field(0.05, ge=0, lt=1)  # dropout on the adapter input
    target_modules: list[str] = Field(        # module names (suffixes) that get adapters
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])


class TrainableScope(StrictModel):
    """What trains. ``full`` trains every parameter; the flags below refine lora / last_n_layers."""

    mode: Literal["full", "lora", "last_n_layers"] = "full"  # whole model, LoRA adapters, or last blocks
    n_layers: int = Field(2, ge=1)          # last_n_layers: how many final blocks train (HuatuoGPT PPO: 2)
    lora: LoraSpec = Field(default_factory=LoraSpec)  # lora: adapter shape
    train_embeddings: bool = False          # lora / last_n_layers: also train the input embeddings
    train_lm_head: bool = False             # lora / last_n_layers: also train lm_head (tied: = embeddings)
    train_final_norm: bool = True           # last_n_layers: also train the norm after the last block
    train_score_head: bool = True           # sequence classifiers: train the new score head


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts; tied weights are counted once."""
    seen, trainable, total = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total


def decoder_layers(model):
    """The ``nn.ModuleList`` of transformer blocks of a HF decoder (Qwen2, Llama, ...)."""
    base = getattr(model, getattr(model, "base_model_prefix", "model"), None) or model
    layers = getattr(base, "layers", None) or getattr(base, "h", None)
    if layers is None:
        raise ValueError(f"cannot find the transformer blocks of {type(model).__name__} "
                         "(expected .model.layers or .transformer.h)")
    return layers


def _is_sequence_classifier(model) -> bool:
    return type(model).__name__.endswith("ForSequenceClassification")


def _set_named(model, names: tuple[str, ...], flag: bool) -> None:
    for name, p in model.named_parameters():
        parts = name.split(".")
        if any(n in parts for n in names):
            p.requires_grad_(flag)


def _extras(model, scope: TrainableScope) -> None:
    """Apply the embedding / lm_head / score-head flags after freezing."""
    if scope.train_embeddings:
        model.get_input_embeddings().weight.requires_grad_(True)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if scope.train_lm_head and head is not None:
        head.weight.requires_grad_(True)
    if _is_sequence_classifier(model):
        _set_named(model, _SCORE_HEADS, scope.train_score_head)


def _apply_last_n(model, scope: TrainableScope) -> None:
    layers = decoder_layers(model)
    if scope.n_layers > len(layers):
        raise ValueError(f"trainable scope: n_layers={scope.n_layers} but the model has {len(layers)} blocks")
    model.requires_grad_(False)
    for block in list(layers)[-scope.n_layers:]:
        block.requires_grad_(True)
    if scope.train_final_norm:
        base = getattr(model, model.base_model_prefix)
        norm = getattr(base, "norm", None) or getattr(base, "ln_f", None)
        if norm is not None:
            norm.requires_grad_(True)
    _extras(model, scope)


def _apply_lora(model, scope: TrainableScope):
    from peft import LoraConfig, TaskType, get_peft_model

    seq_cls = _is_sequence_classifier(model)
    to_save = []
    if seq_cls and scope.train_score_head:
        to_save.append("score")
    if scope.train_embeddings:
        to_save.append("embed_tokens")
    if scope.train_lm_head and not seq_cls:
        to_save.append("lm_head")
    config = LoraConfig(
        r=scope.lora.r, lora_alpha=scope.lora.alpha, lora_dropout=scope.lora.dropout,
        target_modules=list(scope.lora.target_modules), modules_to_save=to_save or None,
        task_type=TaskType.SEQ_CLS if seq_cls else TaskType.CAUSAL_LM,
    )
    return get_peft_model(model, config)


def apply_trainable_scope(model, scope: TrainableScope):
    """Set ``requires_grad`` per ``scope``; return the model (a ``PeftModel`` for ``lora``).

    Logs the trainable / total parameter counts.
    """
    if scope.mode == "full":
        model.requires_grad_(True)
    elif scope.mode == "last_n_layers":
        _apply_last_n(model, scope)
    else:
        model = _apply_lora(model, scope)
    trainable, total = count_parameters(model)
    if trainable == 0:
        raise ValueError(f"trainable scope {scope.model_dump()} leaves no parameter trainable")
    log.info("trainable scope %s: %d of %d parameters train (%.2f%%)", scope.mode, trainable, total,
             100.0 * trainable / total)
    return model
