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
                      reward={"score_batch_size": 64, "max_length": 256})
    inputs = {"data": str(tiny_data_dir), "policy": str(tiny_sft_model_dir),
              "reward_model": str(tiny_trained_reward_model_dir)}
    m = rsft.run(cfg, inputs, tmp_path, StageContext(seed=0, progress=False))
    start, end = m["mean_score_by_iteration"]
    assert end > start + 0.1, m
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["iteration"] for x in lines] == [0, 1] and lines[0]["kept"] == m["kept_by_iteration"][0] > 0
    assert (tmp_path / "iterations" / "0" / "kept.parquet").is_file()
    AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    from alignment.tracking import read_scalars

    curves = read_scalars(tmp_path / "tensorboard")      # per-round scores at the top, one folder per fine-tuning
    assert curves["."]["rsft/mean_score"] == [(0, pytest.approx(start)), (1, pytest.approx(end))]
    assert set(curves) == {".", "iteration_0"} and curves["iteration_0"]["train/loss"]


def test_select_top_never_keeps_an_unscored_response():
    prompts = [{"prompt_id": "a", "messages": [{"role": "user", "content": "q1"}]}]
    kept = select_top(prompts, [["r1", "r2", "r3"]], [[None, 2.0, None]], keep_top=3, min_score=None)
    assert [k["messages"][-1]["content"] for k in kept] == ["r2"]
    assert select_top(prompts, [["r1", "r2"]], [[None, None]], keep_top=1, min_score=None) == []


def _judge_rsft_config(**judging):
    from alignment.stages import rsft

    return rsft.Config(iterations=1, prompts_per_iteration=32, k=4, keep_top=1, scorer="judge",
                       judging={"judge": {"concurrency": 32, **judging}},
                       sampling={"max_new_tokens": 24, "batch_size": 32},
                       train={"optim": {"learning_rate": 1e-3, "epochs": 4, "per_device_batch_size": 8,
                                        "lr_scheduler": "constant", "warmup_ratio": 0.0}, "max_length": 256})


@pytest.mark.slow
def test_rsft_scored_by_the_local_judge_raises_the_mean_judge_score(tmp_path, tiny_data_dir, tiny_sft_model_dir):
    """Measured (seeds 0 / 1 / 2; 32 prompts x 4 samples, top 1 kept, 4 epochs at lr 1e-3): mean rubric
    score (1-10) of the samples 1.41 / 1.38 / 1.50 before -> 1.50 / 1.50 / 1.54 after one iteration.
    (Before the rubric gated its ratings by accuracy, issue 10: 1.79 / 1.89 / 1.83 -> 2.25 / 2.25 / 2.05;
    the judge's integer ratings of the tiny model's mostly wrong diagnoses now sit nearer 1.)"""
    from judges.transcripts import latest_rows, read_rows

    from alignment.stages import rsft

    # no reward_model input: the judge (local rubric server, both orders) is the only scorer
    inputs = {"data": str(tiny_data_dir), "policy": str(tiny_sft_model_dir)}
    m = rsft.run(_judge_rsft_config(), inputs, tmp_path, StageContext(seed=0, progress=False))
    start, end = m["mean_score_by_iteration"]
    print(f"\nrsft (judge): mean judge score {start:.3f} -> {end:.3f}, kept {m['kept_by_iteration']}")
    assert m["scorer"] == "judge" and m["unscored_samples"] == 0 and m["judgments_not_ok"] == {}
    assert end > start + 0.05
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    # 32 prompts x C(4, 2) = 6 pairs x 2 orders = 384 ok judgments per iteration
    assert [(x["pairs_judged"], x["judgments_ok"]) for x in lines] == [(192, 384), (192, 384)]
    rows = latest_rows(read_rows(tmp_path / "iterations" / "0" / "judge" / "transcripts.jsonl"))
    assert len(rows) == 384 and {r["status"] for r in rows} == {"ok"}


@pytest.mark.slow
def test_rsft_judge_failures_are_counted_and_never_scores(tmp_path, tiny_data_dir, tiny_sft_model_dir):
    from alignment.stages import rsft

    cfg = _judge_rsft_config(local={"faults": ["refusal"], "fault_rate": 1.0}).model_copy(
        update={"iterations": 1, "prompts_per_iteration": 4})
    m = rsft.run(cfg, {"data": str(tiny_data_dir), "policy": str(tiny_sft_model_dir)}, tmp_path,
                 StageContext(seed=0, progress=False))
    # every judgment refused: no sample has a score, nothing is kept, the policy is unchanged
    assert m["mean_score_by_iteration"] == [None, None] and m["kept_by_iteration"] == [0]
    assert m["unscored_samples"] == 2 * 4 * 4
    assert m["judgments_not_ok"] == {"refused": 2 * 4 * 6 * 2}
    assert (tmp_path / "model" / "config.json").is_file()
