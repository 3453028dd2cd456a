"""SFT stage: gradient-accumulation invariance, learning, LoRA, quarantine, the same losses as trl."""

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
    assert model.config.use_cache            # off while training (packed rows need it), on again for generation


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


@pytest.mark.slow
@pytest.mark.parametrize("packing", [False, True], ids=["padded", "packed"])
def test_sft_matches_trl_sft_trainer(tmp_path, tiny_model_dir, tiny_chat_dataset, packing):
    """Until issue 11 the stage ran trl's SFTTrainer; now transformers' Trainer on our own batches
    (alignment.stages.lm_data). One SGD step on the same 8 conversations, all in one batch (so
    the order does not matter; packed: every row of the step) must log the same loss and land on
    the same weights as SFTTrainer with the settings the stage used."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from alignment.distributed import DistributedSpec
    from alignment.models import load_causal_lm, load_tokenizer
    from alignment.stages.sft import SFTStageConfig, train_sft
    from alignment.stages.training_args import common_trainer_kwargs

    rows = [{"messages": r["messages"]} for r in tiny_chat_dataset[:8]]
    cfg = SFTStageConfig(optim={"optimizer": "sgd", "learning_rate": 1.0, "max_steps": 1, "per_device_batch_size": 8,
                                "warmup_ratio": 0.0, "lr_scheduler": "constant", "max_grad_norm": 0.0,
                                "logging_steps": 1}, max_length=96, packing=packing, eval_split=None, keep="last")
    ctx = StageContext(progress=False)
    ours = train_sft(str(tiny_model_dir), rows, [], cfg, tmp_path / "ours", ctx)
    args = SFTConfig(**common_trainer_kwargs(cfg.optim, tmp_path / "trl", ctx, DistributedSpec(), ctx.seed),
                     max_length=cfg.max_length, packing=packing, packing_strategy="bfd", assistant_only_loss=True,
                     save_strategy="no")
    trl = SFTTrainer(model=load_causal_lm(str(tiny_model_dir), dtype="float32").train(), args=args,
                     processing_class=load_tokenizer(str(tiny_model_dir)), train_dataset=Dataset.from_list(rows))
    trl.train()
    assert ours["train_loss_start"] == pytest.approx(trl.state.log_history[0]["loss"], rel=1e-5)
    assert ours["trained_tokens"] == trl.state.num_input_tokens_seen
    trained = _weights(tmp_path / "ours" / "model")
    reference = trl.model.state_dict()
    for k in trained:
        torch.testing.assert_close(trained[k], reference[k], rtol=1e-4, atol=1e-6)
    before = _weights(tiny_model_dir)
    assert max((trained[k] - before[k]).abs().max().item() for k in trained) > 1e-3


class _Killed(Exception):
    pass


@pytest.mark.slow
def test_killed_run_resumes_from_its_checkpoint_exactly(tmp_path, tiny_model_dir, tiny_chat_dataset):
    """A run that dies right after its step-2 checkpoint, run again in the same directory, resumes
    there (optimizer, schedule, data order) and ends on the weights of a run never interrupted."""
    import torch
    from transformers import TrainerCallback

    from alignment.stages.sft import SFTStageConfig, train_sft
    from alignment.tracking import Tracker, TrackingSpec

    class DieAfterFirstSave(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            raise _Killed(f"killed after saving step {state.global_step}")

    class StepsRun(TrainerCallback):
        def __init__(self):
            self.steps: list[int] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.steps.append(state.global_step)

    class WatchingTracker(Tracker):
        def build_trainer(self, trainer_cls, subdir=None, **kwargs):
            trainer = super().build_trainer(trainer_cls, subdir, **kwargs)
            trainer.add_callback(self.callback)
            return trainer

    rows = [{"messages": r["messages"]} for r in tiny_chat_dataset[:24]]
    cfg = SFTStageConfig(optim={"learning_rate": 3e-3, "max_steps": 4, "per_device_batch_size": 4, "logging_steps": 1},
                         max_length=96, packing=True, eval_every_steps=2, keep="last")
    ctx = StageContext(progress=False)
    straight = train_sft(str(tiny_model_dir), rows, rows[:4], cfg, tmp_path / "straight", ctx)
    tracker = WatchingTracker(TrackingSpec(tensorboard=False), tmp_path / "resumed")
    tracker.callback = DieAfterFirstSave()
    with pytest.raises(_Killed, match="step 2"):
        train_sft(str(tiny_model_dir), rows, rows[:4], cfg, tmp_path / "resumed", ctx, tracker=tracker)
    assert (tmp_path / "resumed" / "checkpoints" / "checkpoint-2").is_dir()
    tracker.callback = StepsRun()
    resumed = train_sft(str(tiny_model_dir), rows, rows[:4], cfg, tmp_path / "resumed", ctx, tracker=tracker)
    assert tracker.callback.steps == [3, 4]                    # it went on from the checkpoint
    assert resumed["steps"] == straight["steps"] == 4
    assert resumed["train_loss_end"] == pytest.approx(straight["train_loss_end"], rel=1e-6)
    assert resumed["eval_loss"] == pytest.approx(straight["eval_loss"], rel=1e-6)
    a, b = _weights(tmp_path / "straight" / "model"), _weights(tmp_path / "resumed" / "model")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_origins_select_the_rows_an_sft_arm_reads(tmp_path):
    """``origins`` keeps the rows of those origins (not quarantined, ``limit`` counts kept rows);
    a file without an origin column is an error naming the file."""
    from alignment.stages.inputs import Quarantine, read_conversations

    def row(i, origin):
        return {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}],
                "origin": origin}

    path = tmp_path / "train.parquet"
    pd.DataFrame([row(0, "distilled"), row(1, "real_doctor"), row(2, "distilled"), row(3, "real_doctor"),
                  row(4, "real_doctor")]).to_parquet(path)
    q = Quarantine()
    doctor = read_conversations(path, q, origins=["real_doctor"])
    assert [r["messages"][0]["content"] for r in doctor] == ["q1", "q3", "q4"] and len(q) == 0
    assert [r["messages"][0]["content"] for r in read_conversations(path, q, 1, ["distilled"])] == ["q0"]
    assert len(read_conversations(path, q)) == 5                     # None: every row
    assert read_conversations(path, q, origins=["safety"]) == []
    pd.DataFrame([{"messages": row(0, "x")["messages"]}]).to_parquet(tmp_path / "bare.parquet")
    with pytest.raises(ValueError, match=r"bare.parquet: missing column\(s\) \['origin'\]"):
        read_conversations(tmp_path / "bare.parquet", q, origins=["distilled"])
