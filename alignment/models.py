"""Loading checkpoints for the stages: tokenizer, causal LM, reward model; dtype and device.

A model input is a checkpoint directory (an upstream stage's ``out/model``) or a hub id / path the
user gave (CONTRACTS.md). Errors say which input failed and why, e.g.
``model input 'policy' (/runs/x/sft-ab12/model): no config.json``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

log = logging.getLogger("medalign.alignment.models")

DType = Literal["auto", "float32", "bfloat16", "float16"]


def resolve_dtype(dtype: DType, device: str):
    """The torch dtype for ``dtype``; ``auto`` is bfloat16 on CUDA and float32 on CPU."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def _check_ref(ref: str, role: str) -> None:
    p = Path(ref)
    looks_local = p.is_absolute() or ref.startswith((".", "~")) or p.exists()
    if looks_local and not p.is_dir():
        raise FileNotFoundError(f"model input {role!r} ({ref}): no such checkpoint directory")
    if looks_local and not (p / "config.json").is_file():
        raise FileNotFoundError(f"model input {role!r} ({ref}): no config.json (not a Hugging Face checkpoint)")


def load_tokenizer(ref: str, role: str = "model"):
    """The tokenizer of a checkpoint; it must have a pad token and a chat template."""
    from transformers import AutoTokenizer

    _check_ref(ref, role)
    tok = AutoTokenizer.from_pretrained(ref)
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ValueError(f"model input {role!r} ({ref}): tokenizer has neither pad nor eos token")
        log.warning("model input %r: tokenizer has no pad token; using eos %r", role, tok.eos_token)
        tok.pad_token = tok.eos_token
    if not tok.chat_template:
        raise ValueError(f"model input {role!r} ({ref}): tokenizer has no chat template; "
                         "bootstrap a model with `medalign bootstrap` or pick an instruct checkpoint")
    return tok


def load_causal_lm(ref: str, role: str = "policy", device: str = "cpu", dtype: DType = "auto"):
    """``AutoModelForCausalLM`` on ``device`` in ``dtype`` (eval mode)."""
    from transformers import AutoModelForCausalLM

    _check_ref(ref, role)
    model = AutoModelForCausalLM.from_pretrained(ref, dtype=resolve_dtype(dtype, device))
    return model.to(device).eval()


def load_reward_model(ref: str, role: str = "reward_model", device: str = "cpu", dtype: DType = "auto"):
    """A sequence classifier with one label (the scalar reward) on ``device`` (eval mode)."""
    from transformers import AutoModelForSequenceClassification

    _check_ref(ref, role)
    model = AutoModelForSequenceClassification.from_pretrained(ref, dtype=resolve_dtype(dtype, device))
    if model.config.num_labels != 1:
        raise ValueError(f"model input {role!r} ({ref}): a reward model has 1 label, "
                         f"this one has {model.config.num_labels}")
    return model.to(device).eval()


def sequence_classifier_from_lm(ref: str, tokenizer, role: str = "backbone", dtype: DType = "auto",
                                device: str = "cpu"):
    """A 1-label sequence classifier whose backbone is the causal LM at ``ref`` (new score head).

    ``pad_token_id`` is set so the classifier finds the last real token of right-padded rows.
    """
    from transformers import AutoModelForSequenceClassification

    _check_ref(ref, role)
    model = AutoModelForSequenceClassification.from_pretrained(
        ref, num_labels=1, pad_token_id=tokenizer.pad_token_id, dtype=resolve_dtype(dtype, device))
    return model.to(device)
