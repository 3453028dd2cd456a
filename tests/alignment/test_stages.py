"""bootstrap, pretrain, sample, dpo and eval stages on the tiny fixtures (+ the CLI)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from medalign.stage import StageContext

CTX = StageContext(seed=0, progress=False)


@pytest.mark.slow
def test_bootstrap_stage_via_cli(tmp_path, tiny_data_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medalign.cli import main

    rc = main(["bootstrap", "--data", str(tiny_data_dir), "--out", str(tmp_path), "tokenizer.vocab_size=700",
               "model.hidden_size=32", "model.num_attention_heads=2", "model.num_key_value_heads=1"])
    assert rc == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["metrics"]["vocab_size"] <= 700 and manifest["metrics"]["corpus_texts"] > 300
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    assert model.config.hidden_size == 32 and len(AutoTokenizer.from_pretrained(tmp_path / "model")) <= 700


@pytest.mark.slow
def test_pretrain_stage_packs_text_and_learns(tmp_path, tiny_data_dir, tiny_model_dir):
    from alignment.stages import pretrain

    cfg = pretrain.Config(optim={"learning_rate": 3e-3, "max_steps": 12, "per_device_batch_size": 4,
                                 "logging_steps": 1}, max_length=128)
    m = pretrain.run(cfg, {"data": str(tiny_data_dir), "model": str(tiny_model_dir)}, tmp_path, CTX)
    assert m["train_loss_end"] < m["train_loss_start"] - 0.5 and m["eval_loss"] is not None
    assert (tmp_path / "model" / "model.safetensors").is_file()


@pytest.mark.slow
def test_sample_stage_writes_the_contract_columns(tmp_path, tiny_data_dir, tiny_sft_model_dir):
    from alignment.stages import sample

    cfg = sample.Config(k=3, max_prompts=5, sampling={"max_new_tokens": 8}, policy_label="sft")
    m = sample.run(cfg, {"data": str(tiny_data_dir), "policy": str(tiny_sft_model_dir)}, tmp_path, CTX)
    df = pd.read_parquet(tmp_path / "samples.parquet")
    assert list(df.columns)[:7] == ["prompt_id", "messages", "reference", "language", "responses",
                                    "response_ids", "response_tokens"]
    assert len(df) == 5 == m["prompts"] and m["samples"] == 15
    row = df.iloc[0]
    assert list(row["response_ids"]) == [f"{row['prompt_id']}#{i}" for i in range(3)]
    assert row["policy"] == "sft" and row["messages"][-1]["role"] == "user"


@pytest.mark.slow
def test_dpo_stage_prefers_chosen_on_heldout(tmp_path, tiny_pairs_dir, tiny_sft_model_dir):
    from transformers import AutoModelForCausalLM

    from alignment.stages import dpo

    cfg = dpo.Config(optim={"learning_rate": 2e-3, "max_steps": 6, "per_device_batch_size": 8,
                            "logging_steps": 1, "warmup_ratio": 0.0}, max_length=256, heldout_fraction=0.2)
    m = dpo.run(cfg, {"pairs": str(tiny_pairs_dir), "policy": str(tiny_sft_model_dir)}, tmp_path, CTX)
    assert m["train_loss_start"] == pytest.approx(0.6931, abs=1e-3)     # log 2: policy == reference
    assert m["train_loss_end"] < 0.5 and m["heldout_reward_accuracy"] > 0.8
    AutoModelForCausalLM.from_pretrained(tmp_path / "model")


@pytest.mark.slow
def test_eval_stage_with_local_judge(tmp_path, tiny_data_dir, tiny_pairs_dir, tiny_sft_model_dir,
                                     tiny_model_dir, tiny_trained_reward_model_dir):
    from alignment.stages import eval as eval_stage

    # the local judge answers a third of its calls with malformed text: those pairs must be excluded
    judge = {"local": {"faults": ["malformed"], "fault_rate": 0.35, "fault_seed": 3}, "retry": {"max_attempts": 1}}
    cfg = eval_stage.Config(max_prompts=8, sampling={"max_new_tokens": 24}, reward={"max_length": 256}, n_bootstrap=200,
                            judge=judge)
    inputs = {"data": str(tiny_data_dir), "policy": str(tiny_sft_model_dir), "baseline": str(tiny_model_dir),
              "reward_model": str(tiny_trained_reward_model_dir), "pairs": str(tiny_pairs_dir)}
    m = eval_stage.run(cfg, inputs, tmp_path, CTX)
    report = json.loads((tmp_path / "eval.json").read_text())
    judge = report["judge"]
    assert sum(judge["status_counts"].values()) == 8 and judge["n"] + judge["excluded"] == 8
    assert judge["excluded"] > 0 and judge["status_counts"].get("ok", 0) == judge["n"] > 0
    assert judge["ci_low"] <= judge["win_rate"] <= judge["ci_high"]
    assert judge["wins"] + judge["ties"] + judge["losses"] == judge["n"]
    assert (tmp_path / "transcripts.jsonl").read_text().count("\n") >= 2 * judge["n"]   # both orders
    gens = pd.read_parquet(tmp_path / "generations.parquet")
    assert len(gens) == 8 and {"policy_response", "baseline_response", "judge_status"} <= set(gens.columns)
    excluded = gens[gens["judge_status"] != "ok"]
    assert len(excluded) == judge["excluded"] and excluded["judge_score_policy"].isna().all()
    assert m["rm_heldout_accuracy"] >= 0.8                      # the split the RM stage held out
    assert report["reward_model"]["heldout"]["source"] == "pairs"
    for side in ("policy", "baseline"):
        assert 0.0 <= report["reference_metrics"][side]["rouge_l"] <= 1.0


def test_eval_without_reward_model_says_so(tmp_path):
    from alignment.stages.eval import _reward_figures

    assert _reward_figures({}, [], [], [], None, CTX) == {"reward_model": None, "reason": "no reward_model input"}
