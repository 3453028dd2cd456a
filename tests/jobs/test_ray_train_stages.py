"""Real stages on Ray Train (``resources.num_workers: 2``, 2 CPU workers, gloo) against one worker.

One tiny job (synthetic data -> bootstrap -> sft -> reward_model -> ppo) runs once in-process with
one worker; then each stage runs again with two Ray Train workers on the same inputs and must give
the same losses, metrics and weights:

* sft: 1 worker x 8 examples vs 2 workers x 4 under DeepSpeed ZeRO-2 (inside the workers);
* reward_model: 1 x 8 pairs vs 2 x 4 under ZeRO-3 (each rank holds a shard of every weight; the
  saved model and the reward statistics rank 0 computes from it must still be whole and equal);
* ppo: batch 8 over 1 or 2 processes; generate calls of 4 prompts seeded by their position in
  the step's batch, so both sample the same tokens; one mini-batch per epoch (DDP sums gradients).

Tolerance: float32 addition is not associative. One worker sums the gradient of 8 examples inside
one backward pass; two workers each sum 4 and gloo's all-reduce (ZeRO: reduce-scatter) adds the
two sums, so every gradient element is rounded differently (~1e-7 of the gradient's scale). SGD
would carry that over as is; Adam divides each step by sqrt(v) + eps, so for an element whose
gradient is itself near zero the rounding noise becomes a visible part of its step (up to about
lr x noise / eps). Measured after 4 steps: max |w(2) - w(1)| 4.7e-7 (sft, lr 3e-3), 1.0e-6
(reward_model, lr 1e-3, Adam eps 1e-6), 1.4e-6 (ppo, lr 1e-3); losses and metrics agree to 5e-7.
The reward model's config raises Adam's eps from 1e-8 to 1e-6 because, with 1e-8, its nearly
idle elements gave 2.2e-5. We allow atol 2e-5 on weights (15-40x the measured) and 1e-5 relative
on losses, and check that the steps moved the weights at least 100x more than that (4e-3 to
1.2e-2), so a real difference in the data or the update still fails.

Then a worker is killed (SIGKILL, through jobs.train_group's test seam) right after PPO's
checkpoint 2 of 4: Ray Train restarts the group (FailureConfig), the stage resumes from its own
checkpoint, and the weights and every metrics row equal the uninterrupted two-worker run exactly.
Finally rsft runs on two workers with the judge scoring on rank 0.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from jobs.plan import load_plan
from jobs.runner import run_job

REPO = Path(__file__).resolve().parents[2]
WEIGHT_ATOL = 2e-5
LOSS_RTOL = 1e-5

JOB = """\
name: rt
seed: 0
run_dir: {run_dir}
ray: {{num_cpus: 2}}
stages:
  data:
    config:
      recipe: {repo}/data_recipes/recipes/quickstart.yaml
      synthetic: {{n_consultations: 200, seed: 0, languages: [zh]}}
      # one prompt per consultation: the run this test was sized on (PPO's 4 steps see the same prompts)
      overrides: ["outputs.sft.total=300", "outputs.prompts.mix.0.build=final_turn_prompt"]
  bootstrap:
    config:
      tokenizer: {{vocab_size: 512}}
      model: {{architecture: qwen2, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4,
              num_key_value_heads: 2, intermediate_size: 64, max_position_embeddings: 512}}
  sft:
    config:
      optim: {{learning_rate: 3.0e-3, max_steps: 4, per_device_batch_size: 8, warmup_ratio: 0.0,
              lr_scheduler: constant, logging_steps: 1}}
      max_length: 128
      eval_split: null
      keep: last
      max_train_examples: 64
  reward_model:
    config:
      optim: {{learning_rate: 1.0e-3, max_steps: 4, per_device_batch_size: 8, lr_scheduler: constant,
              warmup_ratio: 0.0, logging_steps: 1, adam_epsilon: 1.0e-6}}
      max_length: 128
      stats_samples: 32
      min_train_pairs: 8
  ppo:
    config:
      steps: 4
      batch_size: 8
      mini_batch_size: 8
      micro_batch_size: 4
      ppo_epochs: 1
      scope: {{mode: full}}
      sampling: {{max_new_tokens: 12, max_prompt_tokens: 64, batch_size: 4}}
      optim: {{learning_rate: 1.0e-3, critic_learning_rate: 1.0e-3}}
      checkpoint_every: 1
      max_prompts: 64
  rsft:
    enabled: false
    resources: {{num_cpus: 2, num_workers: 2}}
    config:
      iterations: 1
      prompts_per_iteration: 8
      k: 2
      scorer: judge
      sampling: {{max_new_tokens: 12, max_prompt_tokens: 64, batch_size: 8}}
      train: {{optim: {{learning_rate: 1.0e-3, epochs: 1, per_device_batch_size: 4}}, max_length: 128}}
"""

TWO_WORKERS = "resources={num_cpus: 2, num_workers: 2}"


@pytest.fixture(scope="module")
def job(tmp_path_factory, ray_local) -> Path:
    root = tmp_path_factory.mktemp("raytrain")
    path = root / "rt.yaml"
    path.write_text(JOB.format(run_dir=root / "runs", repo=REPO))
    return path


@pytest.fixture(scope="module")
def one_worker(job) -> dict:
    """data -> bootstrap -> sft -> reward_model -> ppo, one worker each, in this process."""
    report = run_job(load_plan(job), until="ppo", use_ray=False, progress=False, echo=lambda s: None)
    assert report["status"] == "ok", report
    return report["stages"]


def _run_on_two_workers(job: Path, stage: str, *overrides: str, force: bool = False) -> dict:
    lines: list[str] = []
    plan = load_plan(job, [f"stages.{stage}.{TWO_WORKERS}", *overrides])
    report = run_job(plan, only=[stage], force=[stage] if force else None, use_ray=True, progress=False,
                     echo=lines.append)
    assert report["status"] == "ok", "\n".join(lines)
    out = report["stages"][stage]
    manifest = json.loads((Path(out["dir"]) / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and (Path(out["dir"]) / "logs" / "rank1.log").is_file()
    return {**out, "lines": lines}


def _weights(stage_dir: str | Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(stage_dir) / "model" / "model.safetensors"))


def _assert_same_weights(got_dir: str, ref_dir: str, start_dir: str, label: str) -> float:
    """Same tensors within WEIGHT_ATOL; the steps moved them far more. Returns the largest |dw|."""
    import torch

    got, ref, start = _weights(got_dir), _weights(ref_dir), _weights(start_dir)
    extra = got.keys() - ref.keys()     # DeepSpeed's saved state dict also names the tied lm_head
    assert ref.keys() <= got.keys() and extra <= {"lm_head.weight"}, f"{label}: {sorted(extra)}"
    if extra:
        assert torch.equal(got["lm_head.weight"], got["model.embed_tokens.weight"]), label
    worst = 0.0
    for name, tensor in ref.items():
        torch.testing.assert_close(got[name], tensor, rtol=0, atol=WEIGHT_ATOL, msg=f"{label}: {name}")
        worst = max(worst, (got[name] - tensor).abs().max().item())
    moved = max((ref[k] - start[k]).abs().max().item() for k in start if k in ref)
    assert moved > 100 * WEIGHT_ATOL, f"{label}: training moved the weights by only {moved}"
    print(f"\n{label}: max |w(2 workers) - w(1 worker)| = {worst:.2e} (training moved them {moved:.2e})")
    return worst


def _metrics_rows(stage_dir: str | Path) -> list[dict]:
    rows = [json.loads(line) for line in (Path(stage_dir) / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


@pytest.mark.slow
def test_sft_on_two_workers_under_zero2_equals_one_worker(job, one_worker):
    one = one_worker["sft"]
    two = _run_on_two_workers(job, "sft", "stages.sft.config.optim.per_device_batch_size=4",
                              "stages.sft.config.distributed.deepspeed=zero2")
    assert "DeepSpeed" in (Path(two["dir"]) / "logs" / "stage.log").read_text()
    for key in ("train_loss_start", "train_loss_end"):
        assert two["metrics"][key] == pytest.approx(one["metrics"][key], rel=LOSS_RTOL), key
    assert two["metrics"]["steps"] == one["metrics"]["steps"] == 4
    assert two["metrics"]["trained_tokens"] == one["metrics"]["trained_tokens"]
    _assert_same_weights(two["dir"], one["dir"], one_worker["bootstrap"]["dir"], "sft")


@pytest.mark.slow
def test_reward_model_on_two_workers_under_zero3_equals_one_worker(job, one_worker):
    one = one_worker["reward_model"]
    two = _run_on_two_workers(job, "reward_model", "stages.reward_model.config.optim.per_device_batch_size=4",
                              "stages.reward_model.config.distributed.deepspeed=zero3")
    for key in ("train_loss_start", "train_loss_end", "mean", "std", "heldout_accuracy", "heldout_reward_gap"):
        assert two["metrics"][key] == pytest.approx(one["metrics"][key], rel=LOSS_RTOL, abs=1e-6), key
    assert two["metrics"]["train_pairs_used"] == one["metrics"]["train_pairs_used"]
    _assert_same_weights(two["dir"], one["dir"], one_worker["sft"]["dir"], "reward_model")


@pytest.fixture(scope="module")
def ppo_two_workers(job, one_worker) -> dict:
    """The uninterrupted two-worker PPO run: its metrics rows and weights (read before the
    kill test reruns the same directory)."""
    out = _run_on_two_workers(job, "ppo")
    return {**out, "rows": _metrics_rows(out["dir"]), "weights": _weights(out["dir"])}


@pytest.mark.slow
def test_ppo_on_two_workers_equals_one_worker(one_worker, ppo_two_workers):
    one = one_worker["ppo"]
    rows_one = _metrics_rows(one["dir"])
    rows_two = ppo_two_workers["rows"]
    assert [r["step"] for r in rows_two] == [r["step"] for r in rows_one] == [1, 2, 3, 4]
    worst = 0.0
    for r1, r2 in zip(rows_one, rows_two):
        assert r2["response/length"] == r1["response/length"]        # the same tokens were sampled
        for key, value in r1.items():
            if isinstance(value, float):
                assert r2[key] == pytest.approx(value, rel=1e-4, abs=1e-5), f"step {r1['step']}: {key}"
                worst = max(worst, abs(r2[key] - value))
    print(f"\nppo: largest |metric(2 workers) - metric(1 worker)| over 4 steps = {worst:.2e}")
    assert ppo_two_workers["metrics"]["world_size"] == 2 and one["metrics"]["world_size"] == 1
    sft_model = Path(one_worker["sft"]["dir"])
    _assert_same_weights(ppo_two_workers["dir"], one["dir"], str(sft_model), "ppo")


@pytest.mark.slow
def test_a_killed_worker_restarts_the_group_from_the_stage_checkpoint(job, ppo_two_workers, monkeypatch):
    from jobs.train_group import FAULT_ENV

    monkeypatch.setenv(FAULT_ENV, "1:2")          # rank 1 SIGKILLs itself after checkpoint 2 of 4
    out = _run_on_two_workers(job, "ppo", force=True)
    assert out["dir"] == ppo_two_workers["dir"]
    logs = Path(out["dir"]) / "logs"
    assert (logs / "fault-injected-rank1-step2").is_file()
    manifest = json.loads((Path(out["dir"]) / "manifest.json").read_text())
    assert manifest["timings"]["attempt"] == 2 and manifest["status"] == "ok"
    assert any(re.match(r"\+ ppo +ran .*\(2 workers, attempt 2\)", line) for line in out["lines"]), out["lines"]
    assert "resuming PPO from" in (logs / "stage.log").read_text().split("attempt 2")[-1]
    assert "step-00000002" in (logs / "stage.log").read_text().split("attempt 2")[-1]
    assert _metrics_rows(out["dir"]) == ppo_two_workers["rows"]
    got = _weights(out["dir"])
    import torch

    for name, tensor in ppo_two_workers["weights"].items():
        assert torch.equal(got[name], tensor), name


@pytest.mark.slow
def test_rsft_runs_on_two_workers_with_the_judge_on_rank_0(job, one_worker):
    out = _run_on_two_workers(job, "rsft", "stages.rsft.enabled=true")
    m = out["metrics"]
    assert len(m["mean_score_by_iteration"]) == 2 and m["kept_by_iteration"][0] > 0
    rows = [json.loads(line) for line in (Path(out["dir"]) / "metrics.jsonl").read_text().splitlines()]
    assert [r["samples"] for r in rows] == [16, 16]              # 8 prompts x k=2, both ranks' shares
    assert rows[0]["scored_samples"] + rows[0]["unscored_samples"] == 16
    transcripts = Path(out["dir"]) / "iterations" / "0" / "judge" / "transcripts.jsonl"
    assert len(transcripts.read_text().splitlines()) == rows[0]["pairs_judged"] * 2 > 0
    assert (Path(out["dir"]) / "model" / "model.safetensors").is_file()
