"""Tokenizer + tiny model bootstrap and the chat template."""

from __future__ import annotations

import pytest

from alignment.bootstrap import ModelSpec, TokenizerSpec, bootstrap, train_tokenizer
from alignment.chat import IM_END, assistant_spans, check_messages, prompt_text


def test_checkpoint_loads_with_auto_classes(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert (model.config.hidden_size, model.config.num_hidden_layers) == (64, 2)
    assert (model.config.num_attention_heads, model.config.num_key_value_heads) == (4, 2)
    assert model.config.intermediate_size == 128 and model.config.max_position_embeddings == 1024
    assert tok.eos_token == IM_END and tok.pad_token == "<|endoftext|>"
    assert model.generation_config.eos_token_id == tok.eos_token_id
    assert model.config.pad_token_id == tok.pad_token_id
    assert model.config.vocab_size == len(tok)


def test_bootstrap_is_deterministic(tmp_path, tiny_texts):
    import torch
    from safetensors.torch import load_file

    for name in ("a", "b"):
        bootstrap(tiny_texts, tmp_path / name, TokenizerSpec(vocab_size=600), ModelSpec(), seed=3)
    assert (tmp_path / "a/tokenizer.json").read_bytes() == (tmp_path / "b/tokenizer.json").read_bytes()
    wa, wb = load_file(tmp_path / "a/model.safetensors"), load_file(tmp_path / "b/model.safetensors")
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    bootstrap(tiny_texts, tmp_path / "c", TokenizerSpec(vocab_size=600), ModelSpec(), seed=4)
    wc = load_file(tmp_path / "c/model.safetensors")
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_reloaded_tokenizer_encodes_like_the_trained_one(tmp_path, tiny_texts):
    """AutoTokenizer swaps in Qwen2Tokenizer for qwen2 checkpoints; the split must not change."""
    from transformers import AutoTokenizer

    tok = train_tokenizer(tiny_texts, TokenizerSpec(vocab_size=600))
    samples = ["医生您好，我三天前开始头痛 38.5度 ok?\n\n  Ｆｕｌｌ-width ① tabs\t\tend", "I'm fine—thanks!"]
    for arch in ("qwen2", "llama"):
        bootstrap(tiny_texts, tmp_path / arch, TokenizerSpec(vocab_size=600), ModelSpec(architecture=arch), 0)
        loaded = AutoTokenizer.from_pretrained(tmp_path / arch)
        for s in samples:
            assert loaded(s).input_ids == tok(s).input_ids, (arch, s)
            assert loaded.decode(loaded(s).input_ids) == tok.decode(tok(s).input_ids)


def test_llama_architecture(tmp_path, tiny_texts):
    from transformers import AutoModelForCausalLM

    bootstrap(tiny_texts, tmp_path / "m", TokenizerSpec(vocab_size=600),
              ModelSpec(architecture="llama", hidden_size=32, num_attention_heads=2, num_key_value_heads=1), 0)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.hidden_size == 32


def test_assistant_mask_is_exactly_the_assistant_tokens(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    messages = [{"role": "system", "content": "你是医生。"},
                {"role": "user", "content": "医生您好，我头痛。"},
                {"role": "assistant", "content": "考虑偏头痛，请问有没有恶心？"},
                {"role": "user", "content": "No."},
                {"role": "assistant", "content": " Please see neurology.\nCome back if worse."}]
    ids, mask = assistant_spans(tok, messages)
    assert len(ids) == len(mask)
    # contiguous runs of mask==1, decoded, are each assistant turn + its end-of-turn token
    runs, current = [], []
    for tid, m in zip(ids, mask):
        if m:
            current.append(tid)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    assert [tok.decode(r) for r in runs] == [messages[2]["content"] + IM_END, messages[4]["content"] + IM_END]
    # the masked-out part is everything else, in order
    context = tok.decode([t for t, m in zip(ids, mask) if not m])
    assert "医生您好" in context and "你是医生" in context and "偏头痛" not in context


def test_generation_prompt(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = prompt_text(tok, [{"role": "user", "content": "hi"}])
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    with pytest.raises(ValueError, match="end with a user turn"):
        prompt_text(tok, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])


def test_check_messages_names_the_bad_turn():
    with pytest.raises(ValueError, match=r"row 3\.messages\[1\]\.role"):
        check_messages([{"role": "user", "content": "a"}, {"role": "doctor", "content": "b"}], "row 3.messages")
    with pytest.raises(ValueError, match="content"):
        check_messages([{"role": "user", "content": None}])
    with pytest.raises(ValueError, match="empty"):
        check_messages([])


def test_model_spec_rejects_bad_heads():
    from medalign.config import ConfigError, validate_mapping

    with pytest.raises(ConfigError, match="num_key_value_heads"):
        validate_mapping({"num_attention_heads": 4, "num_key_value_heads": 3}, ModelSpec)
