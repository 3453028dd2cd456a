"""The planner's model-state figures agree with DeepSpeed's own estimators within 10%.

``estimate_zero2_model_states_mem_needs_all_cold`` and ``estimate_zero3_model_states_mem_needs_all_cold``
(DeepSpeed, pinned) for Llama-2 7B, 13B and 70B on 1 x 1 to 4 x 8 GPUs, with and without CPU offload;
and the largest-layer count ZeRO-3 needs equals DeepSpeed's ``model_to_params`` on a real model.
"""

from __future__ import annotations

import pytest

from alignment.capacity.deepspeed_check import compare_with_deepspeed
from alignment.capacity.shapes import known_shape, largest_layer_params, shape_from_config, total_params

MODELS = ["meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-13b-hf", "meta-llama/Llama-2-70b-hf"]
LAYOUTS = [(1, 1), (8, 1), (8, 2), (4, 4), (8, 4)]   # (GPUs per node, nodes)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("per_node,nodes", LAYOUTS)
def test_model_states_agree_with_deepspeed(name, per_node, nodes):
    rows = compare_with_deepspeed(known_shape(name), per_node, nodes)
    settings = {r["setting"] for r in rows}
    assert settings == {"ZeRO-2", "ZeRO-2 + offload optimizer", "ZeRO-3", "ZeRO-3 + offload optimizer",
                        "ZeRO-3 + offload optimizer/params"}
    for r in rows:
        assert abs(r["delta"]) < 0.10, r


def test_largest_layer_equals_deepspeed_model_to_params():
    import torch
    from deepspeed.runtime.zero.stage3 import model_to_params
    from transformers import AutoModelForCausalLM, Qwen2Config

    config = {"model_type": "qwen2", "hidden_size": 16, "intermediate_size": 48, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 40, "tie_word_embeddings": False}
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(Qwen2Config(**{k: v for k, v in config.items() if k != "model_type"}))
    shape = shape_from_config(config, "tiny")
    assert model_to_params(model) == (total_params(shape, "lm"), largest_layer_params(shape, "lm"))
