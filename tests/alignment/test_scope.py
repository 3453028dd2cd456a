"""Trainable scope: full, last N layers, LoRA; causal LM and sequence classifier."""

from __future__ import annotations

import pytest

from alignment.scope import TrainableScope, apply_trainable_scope, count_parameters, decoder_layers


def _lm(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir)


def _trainable_names(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_full_trains_everything(tiny_model_dir):
    model = apply_trainable_scope(_lm(tiny_model_dir), TrainableScope(mode="full"))
    trainable, total = count_parameters(model)
    assert trainable == total > 0


def test_last_n_layers_trains_only_the_last_blocks(tiny_model_dir):
    model = _lm(tiny_model_dir)
    model = apply_trainable_scope(model, TrainableScope(mode="last_n_layers", n_layers=1))
    names = _trainable_names(model)
    assert names and all(n.startswith("model.layers.1.") or n == "model.norm.weight" for n in names)
    assert "model.norm.weight" in names
    block = decoder_layers(model)[1]
    assert count_parameters(model)[0] == sum(p.numel() for p in block.parameters()) + model.model.norm.weight.numel()
    # with embeddings: the tied embedding / lm_head matrix trains too
    model = apply_trainable_scope(_lm(tiny_model_dir), TrainableScope(
        mode="last_n_layers", n_layers=1, train_embeddings=True, train_final_norm=False))
    assert "model.embed_tokens.weight" in _trainable_names(model)
    assert "model.norm.weight" not in _trainable_names(model)


def test_last_n_layers_rejects_too_many(tiny_model_dir):
    with pytest.raises(ValueError, match="n_layers=5 but the model has 2 blocks"):
        apply_trainable_scope(_lm(tiny_model_dir), TrainableScope(mode="last_n_layers", n_layers=5))


def test_lora_returns_peft_model_with_only_adapters(tiny_model_dir):
    from peft import PeftModel

    model = apply_trainable_scope(_lm(tiny_model_dir), TrainableScope(mode="lora"))
    assert isinstance(model, PeftModel)
    names = _trainable_names(model)
    assert names and all("lora_" in n for n in names)
    trainable, total = count_parameters(model)
    assert 0 < trainable < total


def test_sequence_classifier_score_head(tiny_reward_model_dir):
    from transformers import AutoModelForSequenceClassification

    rm = AutoModelForSequenceClassification.from_pretrained(tiny_reward_model_dir)
    rm = apply_trainable_scope(rm, TrainableScope(mode="last_n_layers", n_layers=1))
    assert "score.weight" in _trainable_names(rm)
    rm = AutoModelForSequenceClassification.from_pretrained(tiny_reward_model_dir)
    rm = apply_trainable_scope(rm, TrainableScope(mode="lora"))
    names = _trainable_names(rm)
    assert any("score" in n for n in names) and any("lora_" in n for n in names)
    rm = AutoModelForSequenceClassification.from_pretrained(tiny_reward_model_dir)
    rm = apply_trainable_scope(rm, TrainableScope(mode="last_n_layers", n_layers=1, train_score_head=False))
    assert not any("score" in n for n in _trainable_names(rm))
