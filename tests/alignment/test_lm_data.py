"""Token rows and batches of the sft / pretrain / rsft training: labels, packing, masks.

The losses must be the ones trl's SFTTrainer computed before (``test_sft_matches_trl_sft_trainer``
in test_sft.py trains both); here the pieces are checked by hand.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from alignment.models import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


def test_conversation_labels_are_its_assistant_tokens(tok, tiny_chat_dataset):
    from alignment.chat import IM_END, assistant_spans
    from alignment.stages.lm_data import IGNORE_INDEX, tokenize_example

    row = tiny_chat_dataset[0]
    ids, mask = assistant_spans(tok, row["messages"])
    ex = tokenize_example(tok, row, assistant_only_loss=True)
    assert ex["input_ids"] == ids
    assert ex["labels"] == [t if m else IGNORE_INDEX for t, m in zip(ids, mask)]
    answer = row["messages"][-1]["content"] + IM_END        # the last answer and its end-of-turn are targets
    assert tok.decode([t for t in ex["labels"] if t != IGNORE_INDEX]).endswith(answer)
    assert ex["labels"][0] == IGNORE_INDEX
    assert tokenize_example(tok, row, assistant_only_loss=False)["labels"] == ids


def test_text_gets_end_of_turn_and_every_token_is_a_label(tok):
    from alignment.stages.lm_data import tokenize_example

    ex = tokenize_example(tok, {"text": "头痛三天"}, assistant_only_loss=False)
    assert ex["input_ids"][-1] == tok.eos_token_id and ex["labels"] == ex["input_ids"]
    assert tokenize_example(tok, {"text": "头痛三天" + tok.eos_token}, False) == ex   # not appended twice


def test_conversation_without_assistant_tokens_is_an_error(tok):
    from alignment.stages.lm_data import tokenize_example

    with pytest.raises(ValueError, match="no assistant token"):
        tokenize_example(tok, {"messages": [{"role": "user", "content": "hi"}]}, assistant_only_loss=True)


def test_truncation_keeps_the_start_and_drops_examples_left_without_labels(tok, tiny_chat_dataset):
    from alignment.stages.lm_data import IGNORE_INDEX, lm_dataset, tokenize_example

    rows = [{"messages": r["messages"]} for r in tiny_chat_dataset[:8]]
    full = [tokenize_example(tok, r, True) for r in rows]
    first = [next(i for i, t in enumerate(f["labels"]) if t != IGNORE_INDEX) for f in full]
    assert len(lm_dataset(tok, rows, min(first), packing=False, assistant_only_loss=True)) == 0
    cut = sorted(first)[len(first) // 2] + 1
    ds = lm_dataset(tok, rows, cut, packing=False, assistant_only_loss=True)
    kept = [f for f, i in zip(full, first) if i < cut]
    assert 0 < len(ds) == len(kept)
    assert ds["input_ids"] == [f["input_ids"][:cut] for f in kept] and ds["labels"] == [f["labels"][:cut] for f in kept]


def test_packed_position_ids_by_hand():
    from alignment.stages.lm_data import packed_position_ids

    assert packed_position_ids([3, 2], 7).tolist() == [0, 1, 2, 0, 1, 0, 1]
    assert packed_position_ids([4], 4).tolist() == [0, 1, 2, 3]


def test_padded_batch_by_hand():
    from alignment.stages.lm_data import LMCollator

    batch = LMCollator(pad_token_id=0)([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]},
                                        {"input_ids": [8], "labels": [8]}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert "position_ids" not in batch


def test_packing_keeps_every_example_whole_and_within_max_length(tok, tiny_chat_dataset):
    from alignment.stages.lm_data import lm_dataset, tokenize_example

    rows = [{"messages": r["messages"]} for r in tiny_chat_dataset[:20]]
    ds = lm_dataset(tok, rows, 128, packing=True, assistant_only_loss=True)
    assert len(ds) < len(rows) and all(len(x) <= 128 for x in ds["input_ids"])
    assert all(sum(lengths) == len(x) for lengths, x in zip(ds["seq_lengths"], ds["input_ids"]))
    packed = sorted(tuple(row[s: s + n]) for row, lengths in zip(ds["input_ids"], ds["seq_lengths"])
                    for s, n in zip([sum(lengths[:i]) for i in range(len(lengths))], lengths))
    assert packed == sorted(tuple(tokenize_example(tok, r, True)["input_ids"][:128]) for r in rows)


def test_packed_row_logits_equal_each_example_alone(tok, tiny_model_dir, tiny_chat_dataset):
    """Collated packed rows (block-diagonal attention from the position ids, no attention mask):
    each example's logits equal its logits run alone, and the first token of an example and the
    padding are not targets. Without the position ids (a plain causal row) they would differ."""
    import torch

    from alignment.models import load_causal_lm
    from alignment.stages.lm_data import IGNORE_INDEX, LMCollator, lm_dataset

    rows = [{"messages": r["messages"]} for r in tiny_chat_dataset[:12]]
    ds = lm_dataset(tok, rows, 160, packing=True, assistant_only_loss=True)
    examples = [ds[i] for i in range(2)]
    assert len(examples[0]["seq_lengths"]) >= 2 and len({len(e["input_ids"]) for e in examples}) == 2
    batch = LMCollator(tok.pad_token_id)(examples)
    assert set(batch) == {"input_ids", "position_ids", "labels"}
    model = load_causal_lm(str(tiny_model_dir), dtype="float32")
    with torch.no_grad():
        logits = model(**batch, use_cache=False).logits
        causal = model(input_ids=batch["input_ids"], use_cache=False).logits
    for row, e in enumerate(examples):
        start = 0
        for n in e["seq_lengths"]:
            alone = model(input_ids=torch.tensor([e["input_ids"][start: start + n]]), use_cache=False).logits[0]
            torch.testing.assert_close(logits[row, start: start + n], alone, atol=1e-4, rtol=1e-4)
            assert batch["labels"][row, start] == IGNORE_INDEX
            start += n
        assert (batch["labels"][row, start:] == IGNORE_INDEX).all()
    second = examples[0]["seq_lengths"][0]
    assert not torch.allclose(causal[0, second: second + 4], logits[0, second: second + 4], atol=1e-4)
