"""``medalign plan`` and the fit check of ``medalign run`` (no GPU, no download, nothing trained)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alignment.capacity.memory import GIB
from alignment.capacity.shapes import known_shape, largest_layer_params, total_params
from jobs.gpu_plan import PlanSettings, StagesDoNotFit, check_stages_fit, plan_job
from jobs.gpu_workloads import zero_of
from jobs.plan import load_plan
from medalign.cli import main

REPO = Path(__file__).resolve().parents[2]
HUATUO = REPO / "jobs" / "huatuo_cluster.yaml"


def _job(tmp_path: Path, sft: dict, name: str = "planjob") -> Path:
    """A job with one sft stage reading an existing (empty) data directory."""
    (tmp_path / "data").mkdir(exist_ok=True)
    stage = {"inputs": {"data": str(tmp_path / "data"), "model": "meta-llama/Llama-2-7b-hf"}, **sft}
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps({"name": name, "run_dir": str(tmp_path / "runs"), "stages": {"sft": stage}}))
    return path


def _rows(report: dict) -> dict[str, dict]:
    return {r["stage"]: r for r in report["stages"]}


def test_huatuo_cluster_plan(capsys):
    assert main(["plan", str(HUATUO), "--gpus", "8", "--gpu-mem", "80", "--gpu", "A100-80GB", "--json"]) == 0
    rows = _rows(json.loads(capsys.readouterr().out))
    for name in ("sft", "sample", "reward_model", "ppo", "eval"):
        r = rows[name]
        assert r["fits"] is True and 0 < r["model_states_gb_per_gpu"] < r["total_gb_per_gpu"] <= 80, r
        assert r["tokens_per_s"] > 0
    assert rows["data"]["planned"] is False and rows["data"]["total_gb_per_gpu"] is None
    # SFT: full Qwen2-7B under ZeRO-3 on 8 GPUs is DeepSpeed's 4 x largest layer + 18 bytes x params / 8
    shape = known_shape("Qwen/Qwen2-7B")
    expected = (4 * largest_layer_params(shape) + 18 * total_params(shape) / 8) / GIB
    assert rows["sft"]["model_states_gb_per_gpu"] == pytest.approx(expected, abs=0.01)
    ppo = rows["ppo"]
    assert [m["role"] for m in ppo["models"]] == ["policy", "critic", "reference", "reward_model"]
    assert ppo["models"][0]["trainable_params"] < ppo["models"][0]["params"] / 10    # last two blocks
    assert ppo["steps"] == 16000 and ppo["wall_time_s"] == pytest.approx(16000 * ppo["seconds_per_step"], rel=1e-3)
    assert {a["zero"] for a in ppo["alternatives"]} >= {"no ZeRO", "ZeRO-2", "ZeRO-3"}


def test_plan_says_what_does_not_fit(capsys):
    assert main(["plan", str(HUATUO), "stages.ppo.config.distributed.deepspeed=zero2", "--gpus", "8",
                 "--gpu-mem", "80", "--stage", "ppo"]) == 1
    out = capsys.readouterr().out
    assert "ppo" in out and "DOES NOT FIT" in out and "give --gpu or --peak-tflops" in out


def test_wall_time_from_examples_and_mfu(tmp_path):
    job = load_plan(_job(tmp_path, {"config": {"distributed": {"deepspeed": "zero3"}}}))
    base = PlanSettings(gpus=8, gpu_mem_gb=80, peak_tflops=312, examples={"sft": 1000})
    r = _rows(plan_job(job, base))["sft"]
    assert r["steps"] == 3 * 1000 // (8 * 8) + 1 and r["wall_time_s"] > 0
    half = _rows(plan_job(job, PlanSettings(**{**base.__dict__, "mfu": base.mfu / 2})))["sft"]
    assert half["tokens_per_s"] == pytest.approx(r["tokens_per_s"] / 2, rel=0.01)


def test_70b_plan_agrees_with_deepspeed_offload(tmp_path):
    from alignment.capacity.deepspeed_check import deepspeed_estimates

    ds_json = tmp_path / "z3_offload.json"
    ds_json.write_text(json.dumps({"zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu"}}}))
    assert zero_of(str(ds_json)).offload_optimizer and not zero_of(str(ds_json)).offload_params
    path = _job(tmp_path, {"inputs": {"data": str(tmp_path / "data"), "model": "meta-llama/Llama-2-70b-hf"},
                           "config": {"distributed": {"deepspeed": str(ds_json)}}})
    r = _rows(plan_job(load_plan(path), PlanSettings(gpus=32)))["sft"]
    shape = known_shape("meta-llama/Llama-2-70b-hf")
    ds = dict((z.label(), gb) for z, gb in deepspeed_estimates(total_params(shape), largest_layer_params(shape), 8, 4))
    assert r["zero"] == "ZeRO-3 + offload optimizer"
    assert abs(r["model_states_gb_per_gpu"] / ds["ZeRO-3 + offload optimizer"] - 1) < 0.10


def test_model_sizes_without_download(tmp_path, capsys):
    unknown = _job(tmp_path, {"inputs": {"data": str(tmp_path / "data"), "model": "org/unknown-7b"}})
    assert main(["plan", str(unknown), "--gpus", "1"]) == 2
    assert "--model-config org/unknown-7b=path/to/config.json" in capsys.readouterr().out
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
                                  "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 100}))
    r = _rows(plan_job(load_plan(unknown), PlanSettings(model_configs={"org/unknown-7b": str(config)})))["sft"]
    assert r["models"][0]["params"] == 100 * 64 * 2 + 2 * (4 * 64 * 64 + 3 * 64 * 128 + 2 * 64) + 64
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(config.read_text())
    local = _job(tmp_path, {"inputs": {"data": str(tmp_path / "data"), "model": str(ckpt)}}, name="local")
    assert _rows(plan_job(load_plan(local), PlanSettings()))["sft"]["models"][0]["params"] == r["models"][0]["params"]


def test_quickstart_is_traced_to_bootstrap_and_never_refused():
    plan = load_plan(REPO / "jobs" / "quickstart.yaml")
    rows = _rows(plan_job(plan, PlanSettings(gpus=1, gpu_mem_gb=16)))
    assert rows["ppo"]["models"][0]["model"] == "bootstrap (bootstrap)" and rows["ppo"]["fits"] is True
    check_stages_fit(plan, list(plan.stages))   # a CPU job: nothing declares GPUs, nothing is refused


def test_run_refuses_a_stage_that_cannot_fit(tmp_path, capsys):
    gpu = {"resources": {"num_gpus": 8, "num_workers": 8, "gpu_memory_gb": 40},
           "config": {"max_length": 2048, "distributed": {"deepspeed": "zero3"}}}
    path = _job(tmp_path, gpu)
    with pytest.raises(StagesDoNotFit) as err:
        check_stages_fit(load_plan(path), ["sft"])
    (line,) = err.value.problems
    assert f"{path}:" in line and "stage sft does not fit" in line and "> resources.gpu_memory_gb 40" in line
    assert "model states" in line and "activations" in line and "8 GPU(s), ZeRO-3" in line
    assert main(["run", str(path), "--no-ray"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {line}"]
    assert not any(p.name.startswith("sft-") for p in (tmp_path / "runs" / "planjob").iterdir())
    # the same stage on the CPU (no GPUs declared) is never refused
    cpu = _job(tmp_path, {"resources": {"num_gpus": 0, "gpu_memory_gb": 40}, "config": gpu["config"]}, name="cpu")
    check_stages_fit(load_plan(cpu), ["sft"])


def test_bad_arguments_are_one_line(capsys):
    assert main(["plan", str(HUATUO), "--mfu", "2"]) == 2
    assert main(["plan", str(HUATUO), "--examples", "sft=many"]) == 2
    assert main(["plan", str(HUATUO), "--stage", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--mfu 2.0: must be in (0, 1]" in err and "--examples sft=many: expected STAGE=N" in err
    assert "--stage nope: no such stage" in err


def test_dpo_online_rl_and_rsft_models(tmp_path):
    """Which models each stage kind holds: DPO's reference (none under LoRA), GRPO's reference and
    reward model, RSFT's reward model next to the policy it samples from and fine-tunes."""
    data, model = str(tmp_path), "meta-llama/Llama-2-7b-hf"
    stages = {
        "dpo": {"inputs": {"pairs": data, "policy": model}, "config": {"distributed": {"deepspeed": "zero3"}}},
        "dpo_lora": {"kind": "dpo", "inputs": {"pairs": data, "policy": model}, "config": {"scope": {"mode": "lora"}}},
        "grpo": {"kind": "online_rl", "inputs": {"data": data, "policy": model, "reward_model": model}},
        "rsft": {"inputs": {"data": data, "policy": model, "reward_model": model}},
    }
    path = tmp_path / "kinds.yaml"
    path.write_text(json.dumps({"name": "kinds", "run_dir": str(tmp_path / "runs"), "stages": stages}))
    rows = _rows(plan_job(load_plan(path), PlanSettings(gpus=8, gpu_mem_gb=80, gpu="H100")))
    roles = {name: [m["role"] for m in r["models"]] for name, r in rows.items()}
    assert roles == {"dpo": ["policy", "reference"], "dpo_lora": ["policy"],
                     "grpo": ["policy", "reference", "reward_model"], "rsft": ["policy", "reward_model"]}
    assert rows["dpo"]["models"][1]["engine"] == "ZeRO-3"                 # trl shards the reference too
    assert 0 < rows["dpo_lora"]["models"][0]["trainable_params"] < 0.01 * rows["dpo_lora"]["models"][0]["params"]
    assert rows["rsft"]["gpus"] == 1 and rows["rsft"]["steps"] == 3 and rows["rsft"]["wall_time_s"] > 0
    assert all(r["total_gb_per_gpu"] > r["model_states_gb_per_gpu"] > 0 for r in rows.values())
