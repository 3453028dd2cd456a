"""Reward model: Plackett-Luce by hand, ranked tuples -> pairs, held-out split, stage learning."""

from __future__ import annotations

import json
import math

import pytest

from alignment.stages.reward_model import is_heldout, ranked_to_adjacent_pairs
from medalign.stage import StageContext


def test_plackett_luce_by_hand():
    import torch

    from alignment.stages.reward_listwise import plackett_luce_loss

    s = torch.tensor([[2.0, 1.0, 0.0], [0.5, -1.0, 3.0]])
    ranks = torch.tensor([[0, 1, 2], [1, 1, 0]])
    valid = torch.tensor([[True, True, True], [True, True, False]])
    lse = lambda *xs: math.log(sum(math.exp(x) for x in xs))  # noqa: E731
    nll0 = -((2 - lse(2, 1, 0)) + (1 - lse(1, 0)) + 0.0)
    # second tuple: the third response is padding; the two valid ones tie -> shared denominator
    nll1 = -((0.5 - lse(0.5, -1.0)) + (-1.0 - lse(0.5, -1.0)))
    assert plackett_luce_loss(s, ranks, valid).item() == pytest.approx((nll0 + nll1) / 2, rel=1e-6)
    # a perfectly separated ranking has a loss near zero; reversed scores a large one
    big = torch.tensor([[30.0, 15.0, 0.0]])
    assert plackett_luce_loss(big, torch.tensor([[0, 1, 2]]), torch.ones(1, 3, dtype=torch.bool)).item() < 1e-5
    assert plackett_luce_loss(big, torch.tensor([[2, 1, 0]]), torch.ones(1, 3, dtype=torch.bool)).item() > 40


def test_ranked_to_adjacent_pairs_with_ties():
    row = {"prompt_id": "p", "messages": [{"role": "user", "content": "q"}],
           "responses": ["a", "b1", "b2", "c"], "ranks": [0, 1, 1, 2]}
    pairs = [(p["chosen"], p["rejected"]) for p in ranked_to_adjacent_pairs(row)]
    assert pairs == [("a", "b1"), ("a", "b2"), ("b1", "c"), ("b2", "c")]


def test_heldout_split_is_by_prompt_and_deterministic():
    ids = [f"p{i}" for i in range(2000)]
    held = [i for i in ids if is_heldout(i, 0.1)]
    assert 150 < len(held) < 250
    assert held == [i for i in ids if is_heldout(i, 0.1)]
    assert not any(is_heldout(i, 0.0) for i in ids)


def test_scoring_tokenizes_like_trl(tiny_reward_model_dir):
    """Our scorer must read the reward at the same tokens trl's RewardTrainer trained on."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from alignment.reward_scoring import render_conversation, score_responses

    tok = AutoTokenizer.from_pretrained(tiny_reward_model_dir)
    rm = AutoModelForSequenceClassification.from_pretrained(tiny_reward_model_dir)
    prompt = [{"role": "user", "content": "医生您好，我头痛。"}]
    conv = prompt + [{"role": "assistant", "content": "考虑偏头痛。"}]
    trl_ids = tok.apply_chat_template(conv, tokenize=True, return_dict=True)["input_ids"]
    assert tok(render_conversation(tok, prompt, "考虑偏头痛。"), add_special_tokens=False)["input_ids"] == trl_ids
    with torch.no_grad():
        direct = rm(input_ids=torch.tensor([trl_ids])).logits[0, 0].item()
    batched = score_responses(rm, tok, [prompt, prompt], ["考虑偏头痛。", "a much longer answer " * 5], batch_size=2)
    assert batched[0] == pytest.approx(direct, abs=1e-5)


def test_pairwise_rm_beats_chance_on_heldout_judge_pairs(tiny_trained_reward_model_dir):
    """The fixture runs the reward_model stage (30 steps) on judge-like pairs; check what it wrote."""
    from transformers import AutoModelForSequenceClassification

    stats = json.loads((tiny_trained_reward_model_dir.parent / "reward_stats.json").read_text())
    assert stats["heldout_pairs"] >= 20 and stats["heldout_accuracy"] >= 0.8
    low, high = stats["heldout_accuracy_ci"]
    assert 0 <= low <= stats["heldout_accuracy"] <= high <= 1
    assert stats["std"] > 0 and math.isfinite(stats["mean"]) and stats["settings"]["source"] == "pairs"
    assert sum(b["n"] for b in stats["accuracy_by_margin"].values()) == stats["heldout_pairs"]
    rm = AutoModelForSequenceClassification.from_pretrained(tiny_trained_reward_model_dir)
    assert rm.config.num_labels == 1 and rm.config.pad_token_id is not None


@pytest.mark.slow
def test_listwise_rm_on_ranked_tuples(tmp_path, tiny_data_dir, tiny_sft_model_dir):
    from alignment.stages import reward_model

    cfg = reward_model.Config(loss="listwise", source="ranked",
                              optim={"learning_rate": 1e-3, "max_steps": 15, "per_device_batch_size": 4,
                                     "lr_scheduler": "constant", "warmup_ratio": 0.0},
                              max_length=256, stats_samples=32)
    m = reward_model.run(cfg, {"pairs": str(tiny_data_dir), "backbone": str(tiny_sft_model_dir)}, tmp_path,
                         StageContext(progress=False))
    assert m["train_tuples"] == 128 and m["heldout_pairs"] == 32      # 16 validation tuples x 2 adjacent pairs
    assert m["train_loss_start"] == pytest.approx(math.log(6), abs=0.3)   # 3 responses: log 3! at init
    assert m["heldout_accuracy"] > 0.7
    from alignment.tracking import read_scalars

    curves = read_scalars(tmp_path / "tensorboard")["."]        # our own loop logs like trl's trainers
    assert [s for s, _ in curves["train/loss"]] == [1, 10, 15]
    assert curves["train/loss"][0][1] == pytest.approx(m["train_loss_start"], rel=1e-5)
