"""Rejection-sampling fine-tuning: selection by hand, and the mean RM score rises."""

from __future__ import annotations

import json

import pytest

from alignment.stages.rsft import select_top
from medalign.stage import StageContext


def test_select_top_by_hand():
    prompts = [{"prompt_id": "a", "messages": [{"role": "user", "content": "q1"}]},
               {"prompt_id": "b", "messages": [{"role": "user", "content": "q2"}]}]
    responses = [["r1", "r2", " ", "r4"], ["s1", "s2", "s3", "s4"]]
    scores = [[0.1, 0.9, 5.0, -1.0], [-2.0, -3.0, -1.5, -0.5]]
    kept = select_top(prompts, responses, scores, keep_top=2, min_score=0.0)
    # the blank response is never kept even with the best score; prompt b has nothing >= 0
    assert [(k["prompt_id"], k["messages"][-1]["content"], k["score"]) for k in kept] == [("a", "r2", 0.9),
                                                                                        ("a", "r1", 0.1)]
    assert kept[0]["messages"][0] == prompts[0]["messages"][0]
    assert len(select_top(prompts, responses, scores, keep_top=1, min_score=None)) == 2


@pytest.mark.slow
def test_rsft_raises_the_mean_reward(tmp_path, tiny_data_dir, tiny_sft_model_dir, tiny_trained_reward_model_dir):
    from transformers import AutoModelForCausalLM

    from alignment.stages import rsft

    cfg = rsft.Config(iterations=1, prompts_per_iteration=64, k=8, keep_top=1, min_score=0.0,
                      sampling={"max_new_tokens": 24, "batch_size": 64},
                      train={"optim": {"learning_rate": 1e-3, "epochs": 4, "per_device_batch_size": 8,
                                       "lr_scheduler": "constant", "warmup_ratio": 0.0}, "max_length": 256},
                      reward_batch_size=64, reward_max_length=256)
    inputs = {"data": str(tiny_data_dir), "policy": str(tiny_sft_model_dir),
              "reward_model": str(tiny_trained_reward_model_dir)}
    m = rsft.run(cfg, inputs, tmp_path, StageContext(seed=0, progress=False))
    start, end = m["mean_score_by_iteration"]
    assert end > start + 0.1, m
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["iteration"] for x in lines] == [0, 1] and lines[0]["kept"] == m["kept_by_iteration"][0] > 0
    assert (tmp_path / "iterations" / "0" / "kept.parquet").is_file()
    AutoModelForCausalLM.from_pretrained(tmp_path / "model")
