"""SFT stage: gradient-accumulation invariance, learning, LoRA, quarantine."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from medalign.stage import StageContext


def _weights(model_dir):
    from safetensors.torch import load_file

    return load_file(model_dir / "model.safetensors")


@pytest.mark.slow
def test_batch_of_8_equals_8_accumulated_batches_of_1(tmp_path, tiny_model_dir, tiny_chat_dataset):
    """trl divides the summed token NLL by the assistant-token count of the WHOLE optimizer step.

    So with plain SGD (update = -lr * gradient) one step on a batch of 8 and one step on 8
    accumulated micro-batches of 1 must land on the same weights, and log the same loss.
    """
    import torch

    from alignment.stages.sft import SFTStageConfig, train_sft

    # conversations of very different lengths, so a per-micro-batch mean would NOT match
    rows = [{"messages": r["messages"]} for r in tiny_chat_dataset[:8]]
    assert len({len(str(r)) for r in rows}) > 4
    results = {}
    for name, (bs, ga) in {"b8": (8, 1), "b1x8": (1, 8)}.items():
        cfg = SFTStageConfig(optim={"optimizer": "sgd", "learning_rate": 1.0, "max_steps": 1,
                                    "per_device_batch_size": bs, "gradient_accumulation_steps": ga,
                                    "warmup_ratio": 0.0, "lr_scheduler": "constant", "max_grad_norm": 0.0,
                                    "logging_steps": 1}, eval_split=None, keep="last")
        out = tmp_path / name
        metrics = train_sft(str(tiny_model_dir), rows, [], cfg, out, StageContext(progress=False))
        results[name] = (metrics, _weights(out / "model"))
    (m8, w8), (m1, w1) = results["b8"], results["b1x8"]
    assert m8["train_loss_start"] == pytest.approx(m1["train_loss_start"], rel=1e-5)
    before = _weights(tiny_model_dir)
    moved = max((w8[k] - before[k]).abs().max().item() for k in w8)
    assert moved > 1e-3                                   # the step did something
    for k in w8:
        torch.testing.assert_close(w8[k], w1[k], rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_sft_stage_learns_and_saves_a_loadable_model(tmp_path, tiny_data_dir, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from alignment.stages import sft

    cfg = sft.Config(optim={"learning_rate": 3e-3, "epochs": 2, "per_device_batch_size": 16, "logging_steps": 2},
                     max_length=256)
    metrics = sft.run(cfg, {"data": str(tiny_data_dir), "model": str(tiny_model_dir)}, tmp_path,
                      StageContext(progress=False))
    assert metrics["train_loss_end"] < metrics["train_loss_start"] - 1.0
    assert metrics["eval_loss"] < metrics["train_loss_start"]
    assert metrics["perplexity"] == pytest.approx(2.718281828 ** metrics["eval_loss"], rel=1e-6)
    assert metrics["quarantined"] == 0 and metrics["train_examples"] == 128
    assert not (tmp_path / "checkpoints").exists()
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    tok = AutoTokenizer.from_pretrained(tmp_path / "model")
    assert tok.chat_template and model.config.vocab_size == len(tok)


@pytest.mark.slow
def test_sft_lora_saves_merged_model_and_quarantines_bad_rows(tmp_path, tiny_data_dir, tiny_model_dir):
    import shutil

    from transformers import AutoModelForCausalLM

    from alignment.stages import sft

    data = tmp_path / "data"
    shutil.copytree(tiny_data_dir / "sft", data / "sft")
    df = pd.read_parquet(data / "sft" / "train.parquet")
    bad = df.iloc[:2].copy()
    bad.at[bad.index[0], "messages"] = [{"role": "doctor", "content": "x"}]
    bad.at[bad.index[1], "messages"] = [{"role": "user", "content": "only a question"}]
    pd.concat([df.iloc[:30], bad]).to_parquet(data / "sft" / "train.parquet", index=False)
    cfg = sft.Config(optim={"learning_rate": 1e-2, "max_steps": 3, "per_device_batch_size": 8},
                     scope={"mode": "lora", "lora": {"r": 4, "alpha": 8}}, eval_split=None, max_length=128)
    out = tmp_path / "out"
    metrics = sft.run(cfg, {"data": str(data), "model": str(tiny_model_dir)}, out, StageContext(progress=False))
    assert metrics["quarantined"] == 2 and metrics["train_examples"] == 30
    lines = [json.loads(x) for x in (out / "quarantine.jsonl").read_text().splitlines()]
    assert [x["row"] for x in lines] == [30, 31]
    assert "role" in lines[0]["reason"] and "no assistant turn" in lines[1]["reason"]
    merged = AutoModelForCausalLM.from_pretrained(out / "model")     # a plain model, adapters merged
    assert not any("lora" in n for n, _ in merged.named_parameters())
    base = _weights(tiny_model_dir)
    after = _weights(out / "model")
    changed = [k for k in base if k in after and not (base[k] == after[k]).all()]
    assert changed and all("proj" in k for k in changed)


def test_missing_split_names_the_file(tmp_path, tiny_model_dir):
    from alignment.stages import sft

    (tmp_path / "data").mkdir()
    with pytest.raises(FileNotFoundError, match=r"sft/train.parquet not found"):
        sft.run(sft.Config(), {"data": str(tmp_path / "data"), "model": str(tiny_model_dir)}, tmp_path / "o",
                StageContext(progress=False))


def test_packed_rows_do_not_attend_across_documents(tiny_model_dir):
    """trl's BFD packing passes position_ids that restart per document and no attention mask;
    transformers must turn that into a block-diagonal mask on CPU (sdpa), or packed examples
    would read each other. It does so only without a KV cache, and trl's compute_loss sets
    ``use_cache=False``: so do we."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randint(10, 900, (1, 12), generator=gen), torch.randint(10, 900, (1, 9), generator=gen)
    packed_ids = torch.cat([a, b], dim=1)
    positions = torch.cat([torch.arange(12), torch.arange(9)]).unsqueeze(0)
    with torch.no_grad():
        packed = model(input_ids=packed_ids, position_ids=positions, use_cache=False).logits[0, 12:]
        alone = model(input_ids=b, use_cache=False).logits[0]
        unpacked = model(input_ids=packed_ids, use_cache=False).logits[0, 12:]
    torch.testing.assert_close(packed, alone, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(unpacked, alone, atol=1e-4)     # the test can tell the difference
