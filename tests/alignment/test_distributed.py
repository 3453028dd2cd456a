"""SFT and the reward model on 2 CPU processes (gloo): DDP, ZeRO-2 and ZeRO-3 equal one process.

One plain-SGD step on the same data: a single process with batch 8 and two processes with batch 4
each must land on the same weights, because trl divides every micro-batch's summed token loss by
the assistant-token count of the GLOBAL batch (all ranks), the reward model's loss is a mean over
pairs, and DDP / ZeRO average the gradients. Under ZeRO-3 each rank holds a shard of every weight:
the saved checkpoint must still be the whole model.

DDP goes through the stage's own launcher (``distributed.nproc: 2`` spawns torchrun); the DeepSpeed
runs share ONE torchrun launch (``zero3_worker.py`` runs several stages in one process group), so
the start-up of torch and DeepSpeed is paid once; that launch also runs GRPO (online_rl) under
ZeRO-3, checked for running and saving whole, trained weights.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from medalign.stage import StageContext

SGD_STEP = {"optimizer": "sgd", "learning_rate": 1.0, "max_steps": 1, "warmup_ratio": 0.0,
            "lr_scheduler": "constant", "max_grad_norm": 0.0, "logging_steps": 1}
SFT_CFG = {"eval_split": None, "keep": "last", "max_length": 256}
RM_CFG = {"heldout_fraction": 0.2, "max_length": 256, "stats_samples": 32}


@pytest.fixture(scope="module")
def single(tmp_path_factory, tiny_model_dir, tiny_chat_dataset, tiny_sft_model_dir, tiny_pairs_dir) -> dict:
    """Inputs and one-process results (batch 8): ``{"sft": (inputs, metrics, out), "rm": ...}``."""
    from alignment.stages import reward_model, sft

    base = tmp_path_factory.mktemp("single")
    (base / "data" / "sft").mkdir(parents=True)
    rows = [{"id": f"r{i}", "messages": r["messages"]} for i, r in enumerate(tiny_chat_dataset[:8])]
    pd.DataFrame(rows).to_parquet(base / "data" / "sft" / "train.parquet", index=False)
    sft_in = {"data": str(base / "data"), "model": str(tiny_model_dir)}
    rm_in = {"pairs": str(tiny_pairs_dir), "backbone": str(tiny_sft_model_dir)}
    optim = {**SGD_STEP, "per_device_batch_size": 8}
    ctx = StageContext(progress=False)
    return {"sft": (sft_in, sft.run(sft.Config(**SFT_CFG, optim=optim), sft_in, base / "sft", ctx), base / "sft"),
            "rm": (rm_in, reward_model.run(reward_model.Config(**RM_CFG, optim=optim), rm_in, base / "rm", ctx),
                   base / "rm")}


def _assert_same_weights(got_dir: Path, ref_dir: Path, start_dir: Path, label: str) -> None:
    import torch
    from safetensors.torch import load_file

    ref = load_file(ref_dir / "model" / "model.safetensors")
    got = load_file(got_dir / "model" / "model.safetensors")
    # DeepSpeed's saved state dict also names the tied lm_head (= the input embeddings)
    extra = got.keys() - ref.keys()
    assert ref.keys() <= got.keys() and extra <= {"lm_head.weight"}, f"{label}: {sorted(extra)}"
    if extra:
        assert torch.equal(got["lm_head.weight"], got["model.embed_tokens.weight"]), label
    for k in ref:   # whole tensors (under ZeRO-3 not rank 0's shard)
        assert got[k].shape == ref[k].shape, f"{label}: {k}"
        torch.testing.assert_close(got[k], ref[k], rtol=1e-4, atol=1e-5, msg=f"{label}: {k}")
    base = load_file(start_dir / "model.safetensors")
    assert max((ref[k] - base[k]).abs().max().item() for k in base if k in ref) > 1e-3, f"{label}: nothing trained"


@pytest.mark.slow
def test_sft_ddp_matches_single_process(tmp_path, single, tiny_model_dir):
    from alignment.stages import sft

    sft_in, one, one_out = single["sft"]
    cfg = sft.Config(**SFT_CFG, optim={**SGD_STEP, "per_device_batch_size": 4}, distributed={"nproc": 2})
    m = sft.run(cfg, sft_in, tmp_path / "ddp", StageContext(progress=False))
    assert m["world_size"] == 2 and (tmp_path / "ddp" / "logs" / "launch" / "torchrun.log").is_file()
    assert m["train_loss_start"] == pytest.approx(one["train_loss_start"], rel=1e-5)
    _assert_same_weights(tmp_path / "ddp", one_out, tiny_model_dir, "ddp")


def _torchrun_worker(runs: list[dict]) -> subprocess.CompletedProcess:
    """One torchrun launch (2 CPU processes, gloo) of zero3_worker.py over ``runs``."""
    here = Path(__file__).resolve().parent
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "DS_ACCELERATOR": "cpu",
           "DS_BUILD_OPS": "0", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(here.parents[1])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", "0", "--rdzv_backend", "c10d", "--rdzv_endpoint", "127.0.0.1:0",
           str(here / "zero3_worker.py"), json.dumps(runs)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)


# two GRPO steps of 2 prompts x 4 completions (the question reward: no reward model needed)
GRPO_CFG = {"algorithm": "grpo", "k": 4, "sampling": {"max_new_tokens": 12, "max_prompt_tokens": 64},
            "scope": {"mode": "full"}, "seed": 0, "reward": {"functions": ["asks_question"]}}


@pytest.mark.slow
def test_zero2_and_zero3_match_single_process(tmp_path, single, tiny_model_dir, tiny_sft_model_dir,
                                              tiny_data_dir):
    """SFT under ZeRO-2 and ZeRO-3, the reward model under ZeRO-3 (its statistics are computed on
    rank 0 from the gathered checkpoint, since a forward on one rank of a sharded model would
    wait for the other forever), and GRPO (online_rl) under ZeRO-3: it runs and saves whole,
    trained weights (its sampling differs per rank, so there is no one-process twin to equal)."""
    sft_in, one_sft, sft_out = single["sft"]
    rm_in, one_rm, rm_out = single["rm"]
    optim = {**SGD_STEP, "per_device_batch_size": 4}
    runs = [{"stage": stage, "inputs": inputs, "out": str(tmp_path / name),
             "config": {**cfg, "optim": optim, "distributed": {"nproc": 2, "deepspeed": zero}}}
            for name, stage, inputs, cfg, zero in (("sft-zero2", "sft", sft_in, SFT_CFG, "zero2"),
                                                   ("sft-zero3", "sft", sft_in, SFT_CFG, "zero3"),
                                                   ("rm-zero3", "reward_model", rm_in, RM_CFG, "zero3"))]
    grpo_in = {"data": str(tiny_data_dir), "policy": str(tiny_sft_model_dir), "reward_model": str(tiny_sft_model_dir)}
    runs.append({"stage": "online_rl", "inputs": grpo_in, "out": str(tmp_path / "grpo-zero3"),
                 "config": {**GRPO_CFG, "distributed": {"nproc": 2, "deepspeed": "zero3"},
                            "optim": {"learning_rate": 1e-3, "max_steps": 2, "per_device_batch_size": 4,
                                      "lr_scheduler": "constant", "warmup_ratio": 0.0, "logging_steps": 1}}})
    proc = _torchrun_worker(runs)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stderr[-5000:]}"
    _check_grpo_zero3(tmp_path / "grpo-zero3", tiny_sft_model_dir)
    for name, one, one_out, start in (("sft-zero2", one_sft, sft_out, tiny_model_dir),
                                      ("sft-zero3", one_sft, sft_out, tiny_model_dir),
                                      ("rm-zero3", one_rm, rm_out, tiny_sft_model_dir)):
        m = json.loads((tmp_path / name / "stage_metrics.json").read_text())
        assert m["world_size"] == 2 and m["steps"] == one["steps"] == 1, name
        assert m["train_loss_start"] == pytest.approx(one["train_loss_start"], rel=1e-5), name
        _assert_same_weights(tmp_path / name, one_out, start, name)
    m = json.loads((tmp_path / "rm-zero3" / "stage_metrics.json").read_text())
    for key in ("mean", "std", "heldout_accuracy", "heldout_reward_gap"):
        assert m[key] == pytest.approx(one_rm[key], rel=1e-4, abs=1e-5), key
    assert m["heldout_pairs"] == one_rm["heldout_pairs"] > 0 and m["n"] == 32


def _check_grpo_zero3(out: Path, policy_dir: Path) -> None:
    from safetensors.torch import load_file

    m = json.loads((out / "stage_metrics.json").read_text())
    assert m["world_size"] == 2 and m["steps"] == m["logged_steps"] == 2 and m["algorithm"] == "grpo"
    got = load_file(out / "model" / "model.safetensors")
    start = load_file(policy_dir / "model.safetensors")
    assert {k: v.shape for k, v in got.items()} == {k: v.shape for k, v in start.items()}
    assert max((got[k] - start[k]).abs().max().item() for k in start) > 1e-4


@pytest.mark.slow
def test_failed_launch_reports_the_log(tmp_path, tiny_model_dir):
    from alignment.stages import sft

    cfg = sft.Config(distributed={"nproc": 2}, eval_split=None)
    with pytest.raises(RuntimeError, match=r"distributed sft failed .*torchrun.log"):
        sft.run(cfg, {"data": str(tmp_path / "missing"), "model": str(tiny_model_dir)}, tmp_path / "out",
                StageContext(progress=False))
