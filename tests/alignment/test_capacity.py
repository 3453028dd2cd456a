"""alignment/capacity: parameter counts, model states, activations, KV cache, FLOPs.

Hand-computed values on a tiny config, Korthikanti et al.'s GPT formula, and every model of
sizes.yaml built by transformers on the meta device (no weights, no download).
"""

from __future__ import annotations

import dataclasses

import pytest

from alignment.capacity.memory import (ModelOnGpu, Zero, kv_cache_bytes, layer_activation_bytes, logits_bytes,
                                       model_states, training_activation_bytes)
from alignment.capacity.shapes import (block_params, find_gpu, known_shape, largest_layer_params, matmul_params,
                                       shape_from_config, sizes_table, total_params, trainable_params)
from alignment.capacity.throughput import forward_flops_per_token, training_flops_per_token
from alignment.scope import LoraSpec, TrainableScope

TINY = {"model_type": "llama", "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 32, "tie_word_embeddings": False}


@pytest.fixture(scope="module")
def tiny():
    return shape_from_config(TINY, "tiny")


def test_tiny_parameter_counts_by_hand(tiny):
    # block: q 8x8 + k 8x4 + v 8x4 + o 8x8 = 192; MLP 3 x 8 x 16 = 384; two RMSNorms 16
    assert block_params(tiny) == 592
    # embeddings 32 x 8, two blocks, final norm 8, lm_head 32 x 8
    assert total_params(tiny, "lm") == 256 + 2 * 592 + 8 + 256 == 1704
    assert total_params(tiny, "score") == 256 + 2 * 592 + 8 + 8 == 1456
    assert largest_layer_params(tiny) == 256
    assert matmul_params(tiny, "lm") == 2 * 592 + 256


def _meta_models(config: dict):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    kwargs = {k: v for k, v in config.items() if k != "model_type"}
    cfg = AutoConfig.for_model(config["model_type"], num_labels=1, **kwargs)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(cfg), AutoModelForSequenceClassification.from_config(cfg)


def _largest_module(model) -> int:
    """DeepSpeed's stage3.model_to_params definition (it dedups by data_ptr, which meta lacks)."""
    return max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())


@pytest.mark.parametrize("name", [*sorted(sizes_table().models), "tiny"])
def test_counts_equal_transformers(name):
    config = TINY if name == "tiny" else sizes_table().models[name]
    shape = shape_from_config(config, name)
    lm, classifier = _meta_models(config)
    assert total_params(shape, "lm") == sum(p.numel() for p in lm.parameters())
    assert total_params(shape, "score") == sum(p.numel() for p in classifier.parameters())
    assert largest_layer_params(shape, "lm") == _largest_module(lm)


def test_aliases_and_unknown_names():
    assert known_shape("bigscience/bloomz-7b1-mt").hidden == 4096
    assert known_shape("QWEN/qwen2-7b").layers == 28
    assert known_shape("org/not-a-model") is None
    with pytest.raises(ValueError, match="model_type 'gpt_neox' is not one of"):
        shape_from_config({"model_type": "gpt_neox", "hidden_size": 8}, "x")
    assert find_gpu("a100")[0] == "A100-80GB"
    assert find_gpu("TPU") is None


@pytest.mark.parametrize("scope", [
    TrainableScope(mode="full"),
    TrainableScope(mode="last_n_layers", n_layers=1),
    TrainableScope(mode="last_n_layers", n_layers=2, train_final_norm=False, train_lm_head=True),
    TrainableScope(mode="lora", lora=LoraSpec(r=2)),
    TrainableScope(mode="lora", lora=LoraSpec(r=4, target_modules=["q_proj", "v_proj"]), train_embeddings=True),
], ids=["full", "last1", "last2_head", "lora", "lora_qv_emb"])
@pytest.mark.parametrize("head", ["lm", "score"])
def test_trainable_counts_equal_apply_trainable_scope(scope, head):
    """What the planner counts as trainable is what alignment.scope actually makes trainable."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, Qwen2Config

    from alignment.scope import apply_trainable_scope, count_parameters

    config = {**TINY, "model_type": "qwen2"}      # qwen2: biases on q/k/v
    cfg = Qwen2Config(**{k: v for k, v in config.items() if k != "model_type"}, num_labels=1, pad_token_id=0)
    torch.manual_seed(0)
    cls = AutoModelForCausalLM if head == "lm" else AutoModelForSequenceClassification
    model = apply_trainable_scope(cls.from_config(cfg), scope)
    trainable, _ = count_parameters(model)
    assert trainable_params(shape_from_config(config, "tiny"), head, scope) == trainable


def test_model_states_by_hand():
    P, N = 1000, 4
    assert model_states(P, P, N, Zero(0)).total == 4 * P + 4 * P + 8 * P              # torch autocast, replicated
    assert model_states(P, P, N, Zero(1)).total == 2 * P + (2 * P + 4 * P / N) + 12 * P / N
    z2 = model_states(P, P, N, Zero(2))
    assert (z2.weights, z2.gradients, z2.optimizer) == (2 * P, 6 * P / N, 12 * P / N)  # = 2P + 18P/N
    assert model_states(P, P, N, Zero(2, offload_optimizer=True)).total == 2 * P
    z3 = model_states(P, P, N, Zero(3), largest_layer=100)
    assert z3.total == 4 * 100 + 18 * P / N                                             # DeepSpeed's ZeRO-3 count
    assert model_states(P, P, N, Zero(3, offload_optimizer=True), largest_layer=100).total == 400 + 2 * P / N
    assert model_states(P, P, N, Zero(3, True, True), largest_layer=100).total == 400
    # frozen parameters only have weights: last-N scope under ZeRO-2, 100 of 1000 train
    assert model_states(P, 100, N, Zero(2)).total == 2 * P + 18 * 100 / N
    # fp32 (ppo's engines): 4-byte weights, no separate fp32 gradient; ZeRO-2 clones the partition
    assert model_states(P, P, N, Zero(2), "fp32").total == 4 * P + 4 * P / N + 12 * P / N
    assert model_states(P, P, N, Zero(3), "fp32", largest_layer=100).total == 8 * 100 + (4 + 4 + 8) * P / N


def test_frozen_model_on_gpu(tiny):
    ref = ModelOnGpu("reference", tiny, "lm", "fp32")
    assert ref.states(8).total == 4 * 1704
    sharded = dataclasses.replace(ref, precision="bf16", zero=Zero(3))
    assert sharded.states(8).total == 2 * 1704 / 8 + 2 * 256


def test_activations_reproduce_korthikanti_gpt_formula():
    """A GPT block (i = 4h, no GQA, dropout, no fused attention) keeps 34sbh + 5as^2b bytes."""
    bloom = sizes_table().families["bloom"]
    gpt = shape_from_config({"model_type": "bloom", "hidden_size": 64, "n_layer": 2, "n_head": 4,
                             "vocab_size": 100}, "gpt")
    assert gpt.spec == bloom and gpt.intermediate == 256
    s, b, h, a = 32, 3, 64, 4
    assert layer_activation_bytes(gpt, b, s, dropout=True, flash=False) == 34 * s * b * h + 5 * a * s * s * b


def test_activations_kv_and_logits_by_hand(tiny):
    # s=4, b=2 (8 tokens), h=8, q=8, kv=4, i=16, a=2, fused attention:
    # attention 2*8*(2*8 + 2*4 + 8) = 512, log-sum-exp 4*2*8 = 64, MLP 2*8*8 + 2*8*16*4 = 1152, norms 256
    assert layer_activation_bytes(tiny, 2, 4) == 512 + 64 + 1152 + 256 == 1984
    assert training_activation_bytes(tiny, 2, 4, layers=2, checkpointing=False) == 2 * 1984
    assert training_activation_bytes(tiny, 2, 4, layers=2, checkpointing=True) == 2 * (2 * 8 * 8) + 1984
    assert training_activation_bytes(tiny, 2, 4, layers=0, checkpointing=False) == 0
    assert kv_cache_bytes(tiny, rows=3, tokens=10) == 2 * 2 * 4 * 3 * 10 * 2
    assert logits_bytes(2, 4, 32, act_bytes=2, training=True) == 2 * 4 * 32 * (2 + 4 + 4)
    assert logits_bytes(2, 4, 32, act_bytes=4, training=False) == 2 * 4 * 32 * (4 + 4)


def test_training_flops(tiny):
    s = 16
    n, attention = matmul_params(tiny, "lm"), 4 * tiny.layers * tiny.q_width * s
    full = TrainableScope(mode="full")
    assert forward_flops_per_token(tiny, "lm", s) == 2 * n + attention
    assert training_flops_per_token(tiny, "lm", s, full) == 6 * n + 3 * attention           # PaLM: 6N + 12Lhs
    # checkpointing recomputes the blocks' forward (not the head's)
    recompute = 2 * tiny.layers * block_params(tiny) + attention
    assert training_flops_per_token(tiny, "lm", s, full, checkpointing=True) == 6 * n + 3 * attention + recompute
    last1 = training_flops_per_token(tiny, "lm", s, TrainableScope(mode="last_n_layers", n_layers=1))
    lora = training_flops_per_token(tiny, "lm", s, TrainableScope(mode="lora", lora=LoraSpec(r=1)))
    assert 2 * n + attention < last1 < lora < 6 * n + 3 * attention


@pytest.mark.parametrize("family", sorted(sizes_table().families))
def test_family_tie_default_is_transformers(family):
    from transformers import AutoConfig

    assert AutoConfig.for_model(family).tie_word_embeddings == sizes_table().families[family].tie_word_embeddings
