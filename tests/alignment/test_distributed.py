"""SFT on 2 CPU processes (torchrun + gloo) and under DeepSpeed ZeRO-2 equals one process.

One plain-SGD step on the same 8 conversations: a single process with batch 8, two processes
with batch 4 each (DDP), and two processes under ZeRO-2 must land on the same weights, because
trl divides every micro-batch's summed token loss by the assistant-token count of the GLOBAL
batch (all ranks) and DDP / ZeRO average the gradients.
"""

from __future__ import annotations

import pandas as pd
import pytest

from medalign.stage import StageContext


def _data_dir(tmp_path, tiny_chat_dataset):
    (tmp_path / "data" / "sft").mkdir(parents=True)
    rows = [{"id": f"r{i}", "messages": r["messages"]} for i, r in enumerate(tiny_chat_dataset[:8])]
    pd.DataFrame(rows).to_parquet(tmp_path / "data" / "sft" / "train.parquet", index=False)
    return tmp_path / "data"


@pytest.mark.slow
def test_sft_ddp_and_zero2_match_single_process(tmp_path, tiny_model_dir, tiny_chat_dataset):
    import torch
    from safetensors.torch import load_file

    from alignment.stages import sft

    data = _data_dir(tmp_path, tiny_chat_dataset)
    optim = {"optimizer": "sgd", "learning_rate": 1.0, "max_steps": 1, "warmup_ratio": 0.0,
             "lr_scheduler": "constant", "max_grad_norm": 0.0, "logging_steps": 1}
    runs = {"single": ({"per_device_batch_size": 8}, {}),
            "ddp": ({"per_device_batch_size": 4}, {"nproc": 2}),
            "zero2": ({"per_device_batch_size": 4}, {"nproc": 2, "deepspeed": "zero2"})}
    weights, metrics = {}, {}
    for name, (batch, dist) in runs.items():
        cfg = sft.Config(optim={**optim, **batch}, distributed=dist, eval_split=None, keep="last", max_length=256)
        out = tmp_path / name
        metrics[name] = sft.run(cfg, {"data": str(data), "model": str(tiny_model_dir)}, out,
                                StageContext(progress=False))
        weights[name] = load_file(out / "model" / "model.safetensors")
    assert metrics["ddp"]["world_size"] == metrics["zero2"]["world_size"] == 2
    assert (tmp_path / "zero2" / "logs" / "launch" / "torchrun.log").is_file()
    base = load_file(tiny_model_dir / "model.safetensors")
    assert max((weights["single"][k] - base[k]).abs().max().item() for k in base) > 1e-3
    for name in ("ddp", "zero2"):
        assert metrics[name]["train_loss_start"] == pytest.approx(metrics["single"]["train_loss_start"], rel=1e-5)
        for k in base:
            torch.testing.assert_close(weights[name][k], weights["single"][k], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_failed_launch_reports_the_log(tmp_path, tiny_model_dir):
    from alignment.stages import sft

    cfg = sft.Config(distributed={"nproc": 2}, eval_split=None)
    with pytest.raises(RuntimeError, match=r"distributed sft failed .*torchrun.log"):
        sft.run(cfg, {"data": str(tmp_path / "missing"), "model": str(tiny_model_dir)}, tmp_path / "out",
                StageContext(progress=False))
