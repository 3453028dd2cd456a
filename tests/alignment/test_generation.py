"""Batched, left-padded, seeded generation."""

from __future__ import annotations

import pytest

from alignment.generation import SamplingSpec, _response_mask, encode_prompts, generate_responses, generate_tokens


@pytest.fixture(scope="module")
def sft_model(tiny_sft_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_sft_model_dir), AutoTokenizer.from_pretrained(tiny_sft_model_dir)


def _prompts(tiny_chat_dataset, n):
    return [row["messages"][:1] for row in tiny_chat_dataset[:n]]


def test_response_mask_by_hand():
    import torch

    eos = 7
    ids = torch.tensor([[5, 7, 0, 0], [5, 6, 6, 6], [7, 0, 0, 0]])
    mask, finished = _response_mask(ids, eos)
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert finished.tolist() == [True, False, True]


def test_prompts_are_left_padded(sft_model, tiny_chat_dataset):
    _, tok = sft_model
    prompts = [[{"role": "user", "content": "hi"}], tiny_chat_dataset[0]["messages"][:1]]
    ids, mask = encode_prompts(tok, prompts, max_prompt_tokens=512)
    assert mask[0, 0] == 0 and mask[0, -1] == 1 and mask[1].all()
    assert ids[0, 0] == tok.pad_token_id
    assert tok.decode(ids[0][mask[0] == 1]).endswith("<|im_start|>assistant\n")


def test_k_samples_seeded_and_in_order(sft_model, tiny_chat_dataset):
    import torch

    model, tok = sft_model
    prompts = _prompts(tiny_chat_dataset, 5)
    spec = SamplingSpec(max_new_tokens=12, batch_size=2, temperature=1.0)
    rng_before = torch.get_rng_state()
    a = generate_responses(model, tok, prompts, spec, k=3, seed=11)
    assert torch.equal(rng_before, torch.get_rng_state())      # caller's RNG untouched
    b = generate_responses(model, tok, prompts, spec, k=3, seed=11)
    c = generate_responses(model, tok, prompts, spec, k=3, seed=12)
    assert [len(x) for x in a] == [3] * 5
    assert [[g.text for g in x] for x in a] == [[g.text for g in x] for x in b]
    assert [[g.text for g in x] for x in a] != [[g.text for g in x] for x in c]
    assert all(1 <= g.n_tokens <= 12 for x in a for g in x)
    assert all(g.finished or g.n_tokens == 12 for x in a for g in x)


def test_greedy_batch_equals_one_by_one(sft_model, tiny_chat_dataset):
    """Left padding must not change what a prompt generates."""
    model, tok = sft_model
    prompts = [tiny_chat_dataset[i]["messages"][:1] for i in (0, 9, 3)]  # zh and en: different lengths
    spec = SamplingSpec(max_new_tokens=10, temperature=0, batch_size=8)
    batched = [x[0].text for x in generate_responses(model, tok, prompts, spec)]
    single = [generate_responses(model, tok, [p], spec)[0][0].text for p in prompts]
    assert batched == single


def test_token_batch_shapes(sft_model, tiny_chat_dataset):
    model, tok = sft_model
    batch = generate_tokens(model, tok, _prompts(tiny_chat_dataset, 3), SamplingSpec(max_new_tokens=8), k=2)
    assert batch.prompt_ids.shape[0] == batch.response_ids.shape[0] == 6
    assert batch.response_ids.shape[1] <= 8
    assert (batch.response_ids[batch.response_mask == 0] == tok.pad_token_id).all()


def test_greedy_decoding_with_k_samples_gives_k_copies_of_the_one_answer(sft_model):
    """transformers refuses num_return_sequences > 1 without sampling: greedy runs once, repeated."""
    model, tok = sft_model
    prompts = [[{"role": "user", "content": "头痛三天"}], [{"role": "user", "content": "I have a cough."}]]
    spec = SamplingSpec(temperature=0, max_new_tokens=8)
    three = generate_responses(model, tok, prompts, spec, k=3, seed=0)
    one = generate_responses(model, tok, prompts, spec, k=1, seed=0)
    assert [[g.text for g in row] for row in three] == [[row[0].text] * 3 for row in one]
