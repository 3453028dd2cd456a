"""The ppo stage end to end: outputs, trainable scopes, prompt handling, config errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch


def _load_state(model_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


@pytest.mark.slow
def test_stage_with_reward_model_writes_its_outputs(ppo_inputs, tiny_ppo_config, stage_ctx, tmp_path,
                                                     read_metrics):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from alignment.stages import ppo

    out = tmp_path / "ppo"
    cfg = tiny_ppo_config(steps=2, reward={"clip": 5.0, "missing_eos_penalty": 1.0})
    metrics = ppo.run(cfg, ppo_inputs, out, stage_ctx)
    model = AutoModelForCausalLM.from_pretrained(out / "model")
    tok = AutoTokenizer.from_pretrained(out / "model")
    assert tok.chat_template and model.config.vocab_size == len(tok)
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    for key in ("reward/score_raw", "reward/score", "kl/mean", "kl/k1", "kl/k3", "kl/coef", "entropy",
                "policy/clip_frac", "value/loss", "value/explained_variance", "response/length",
                "time/generate_s", "time/reference_s", "time/critic_s", "time/reward_s",
                "time/update_s", "lr"):
        assert key in rows[0], key
    from alignment.tracking import read_scalars

    curves = read_scalars(out / "tensorboard")["."]
    assert curves["reward/score_raw"] == [(r["step"], pytest.approx(r["reward/score_raw"])) for r in rows]
    assert [s for s, _ in curves["kl/mean"]] == [1, 2]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000002"]
    # the data fixture repeats prompts: duplicates are counted, not trained on twice per pass
    assert metrics["prompts_duplicate"] > 0 and metrics["prompts_used"] > 0
    assert metrics["reward_normalisation"] == [0.5, 2.0]
    assert metrics["steps"] == 2 and metrics["world_size"] == 1
    assert metrics["reward_first"] == rows[0]["reward/score_raw"]
    assert metrics["reward_last"] == rows[1]["reward/score_raw"]
    # the reward is (RM score - 0.5) / 2 (reward_stats.json; the tiny RM's scores stay far inside
    # the clip at 5), minus 1 for every response cut at max_new_tokens; linear, so in the means too
    for r in rows:
        expected = (r["reward/score_raw"] - 0.5) / 2.0 - 1.0 * (1.0 - r["response/ended_frac"])
        assert r["reward/score"] == pytest.approx(expected, abs=1e-6)
    # the policy changed
    before, after = _load_state(Path(ppo_inputs["policy"])), _load_state(out / "model")
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.slow
def test_last_n_layers_scope_leaves_the_rest_untouched(ppo_inputs, tiny_ppo_config, stage_ctx, tmp_path):
    from alignment.stages import ppo

    cfg = tiny_ppo_config(steps=1, scope={"mode": "last_n_layers", "n_layers": 1,
                                          "train_final_norm": False})
    ppo.run(cfg, ppo_inputs, tmp_path / "ppo", stage_ctx)
    before, after = _load_state(Path(ppo_inputs["policy"])), _load_state(tmp_path / "ppo" / "model")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("model.layers.1.") for k in changed), sorted(changed)


@pytest.mark.slow
def test_lora_scope_saves_a_merged_plain_model(ppo_inputs, tiny_ppo_config, stage_ctx, tmp_path):
    from transformers import AutoModelForCausalLM

    from alignment.stages import ppo

    cfg = tiny_ppo_config(steps=1, scope={"mode": "lora", "lora": {"r": 4, "alpha": 8, "dropout": 0.0}},
                          optim={"learning_rate": 1e-2})
    ppo.run(cfg, ppo_inputs, tmp_path / "ppo", stage_ctx)
    after = _load_state(tmp_path / "ppo" / "model")
    assert not any("lora" in k for k in after)
    before = _load_state(Path(ppo_inputs["policy"]))
    assert any(not torch.equal(before[k], after[k]) for k in before if "proj" in k)
    AutoModelForCausalLM.from_pretrained(tmp_path / "ppo" / "model")


def test_bad_prompt_rows_are_quarantined_and_counted(tmp_path):
    from alignment.stages.ppo import load_prompts

    rows = [
        {"prompt_id": "a", "messages": [{"role": "user", "content": "Hi, my ear hurts."}]},
        {"prompt_id": "b", "messages": [{"role": "user", "content": "Hi, my ear hurts."}]},
        {"prompt_id": "c", "messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]},
        {"prompt_id": "d", "messages": [{"role": "doctor", "content": "?"}]},
        {"prompt_id": "e", "messages": [{"role": "user", "content": "I cough at night."}]},
    ]
    path = tmp_path / "train.parquet"
    pd.DataFrame(rows).to_parquet(path)
    prompts, counts = load_prompts(path, None, tmp_path / "quarantine.jsonl")
    assert [p[0]["content"] for p in prompts] == ["Hi, my ear hurts.", "I cough at night."]
    assert counts == {"prompts_used": 2, "prompts_quarantined": 2, "prompts_duplicate": 1}
    bad = [json.loads(line) for line in (tmp_path / "quarantine.jsonl").read_text().splitlines()]
    assert [b["prompt_id"] for b in bad] == ["c", "d"]
    assert "must end with a user turn" in bad[0]["reason"] and "row 2" in bad[0]["reason"]
    assert "messages[0].role" in bad[1]["reason"]
    with pytest.raises(FileNotFoundError, match="prompts file"):
        load_prompts(tmp_path / "missing.parquet", None, tmp_path / "q.jsonl")


def test_reward_stats_are_read_and_checked(tmp_path):
    from alignment.stages.ppo import load_reward_stats

    model = tmp_path / "rm" / "model"
    model.mkdir(parents=True)
    assert load_reward_stats(str(model)) is None
    (tmp_path / "rm" / "reward_stats.json").write_text(json.dumps({"mean": 1.5, "std": 2.0, "n": 10}))
    assert load_reward_stats(str(model)) == (1.5, 2.0)
    (tmp_path / "rm" / "reward_stats.json").write_text(json.dumps({"mean": 1.5}))
    with pytest.raises(ValueError, match="reward_stats.json: expected numeric 'mean' and 'std'"):
        load_reward_stats(str(model))


def test_missing_inputs_are_named(tiny_ppo_config, stage_ctx, tmp_path):
    from alignment.stages import ppo

    with pytest.raises(ValueError, match=r"missing inputs \['reward_model'\]"):
        ppo.run(tiny_ppo_config(), {"data": "d", "policy": "p"}, tmp_path, stage_ctx)


def test_config_yaml_errors_name_the_line(tmp_path):
    from alignment.stages import ppo
    from medalign.config import ConfigError, load_config

    path = tmp_path / "ppo.yaml"
    path.write_text("steps: 10\nbatch_size: 8\nmini_batch_size: 4\nkl:\n  coef: 0.05\n  estimater: k3\n")
    with pytest.raises(ConfigError, match=r"ppo.yaml:6: kl.estimater: Extra inputs"):
        load_config(path, ppo.Config)
    path.write_text("batch_size: 8\nmini_batch_size: 3\n")
    with pytest.raises(ConfigError, match="not a multiple of mini_batch_size"):
        load_config(path, ppo.Config)
    path.write_text("kl:\n  adaptive: true\n")
    with pytest.raises(ConfigError, match="needs kl.target"):
        load_config(path, ppo.Config)
    cfg = load_config(path, ppo.Config, overrides=["kl.target=6", "scope.n_layers=2"])
    # HuatuoGPT's values are the defaults; a partial scope override keeps the last-layers mode
    assert (cfg.kl.coef, cfg.optim.learning_rate, cfg.scope.mode, cfg.scope.n_layers) == \
        (0.05, 8e-6, "last_n_layers", 2)
    # the distributed launcher hands the config to its ranks as JSON
    assert ppo.Config.model_validate_json(cfg.model_dump_json()) == cfg


def test_sampling_and_reward_settings_ppo_cannot_honour_are_refused():
    from alignment.rl.ppo_config import PPOConfig

    for sampling, message in (({"temperature": 0}, "temperature must be > 0"),
                              ({"top_p": 0.9}, "off-policy"), ({"top_k": 50}, "off-policy")):
        with pytest.raises(ValueError, match=message):
            PPOConfig(sampling=sampling)
    assert PPOConfig(sampling={"batch_size": 4}).sampling.batch_size == 4   # prompts per generate call
    with pytest.raises(ValueError, match="takes one function"):
        PPOConfig(reward={"functions": ["reward_model", "asks_question"]})
    with pytest.raises(ValueError, match="renamed to functions"):
        PPOConfig(reward={"function": "asks_question"})


def test_deepspeed_config_follows_the_ppo_batch_sizes(tmp_path):
    from alignment.rl.ppo_config import PPOConfig
    from alignment.rl.setup import deepspeed_config

    cfg = PPOConfig(batch_size=16, mini_batch_size=8, micro_batch_size=2,
                    distributed={"deepspeed": "zero3"}, optim={"max_grad_norm": 0.5})
    ds = deepspeed_config(cfg, world_size=2)
    # 8 rows per mini-batch over 2 processes = 4 each = 2 micro-batches of 2
    assert (ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"],
            ds["train_batch_size"], ds["gradient_clipping"]) == (2, 2, 8, 0.5)
    assert ds["zero_optimization"] == {"stage": 3, "stage3_param_persistence_threshold": 0}
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu"}},
                                "train_batch_size": "auto"}))
    ds = deepspeed_config(cfg.model_copy(update={"distributed": cfg.distributed.model_copy(
        update={"deepspeed": str(path)})}), world_size=1)
    assert ds["zero_optimization"]["offload_optimizer"] == {"device": "cpu"} and ds["train_batch_size"] == 8
    path.write_text(json.dumps({"zero_optimization": {"stage": 2}, "optimizer": {"type": "Adam"}}))
    with pytest.raises(ValueError, match=r"remove \['optimizer'\]"):
        deepspeed_config(cfg.model_copy(update={"distributed": cfg.distributed.model_copy(
            update={"deepspeed": str(path)})}), world_size=1)
