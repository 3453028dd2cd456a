"""Tracking: one ``tracking`` block on every training stage, TensorBoard scalars in the stage
directory (SFT, reward model), resume purging, W&B offline run files and the missing-package error."""

from __future__ import annotations

import importlib

import pytest

from alignment import tracking
from alignment.tracking import TrackingSpec, open_tracker, read_scalars
from medalign.stage import StageContext

TRAINING_STAGES = ("pretrain", "sft", "reward_model", "ppo", "rsft", "dpo", "online_rl")


@pytest.mark.parametrize("kind", TRAINING_STAGES)
def test_every_training_stage_has_the_one_tracking_block(kind):
    module = importlib.import_module(f"alignment.stages.{kind}")
    assert module.Config.model_fields["tracking"].annotation is TrackingSpec
    cfg = module.Config.model_validate({"tracking": {"tensorboard": False, "wandb": {"enabled": True}}})
    assert cfg.tracking.report_to == ["wandb"] and cfg.tracking.wandb.mode == "offline"
    assert module.Config().tracking.report_to == ["tensorboard"]
    with pytest.raises(ValueError, match="tracking.wandb.projekt"):
        module.Config.model_validate({"tracking": {"wandb": {"projekt": "x"}}})


def test_wandb_enabled_without_the_package_is_one_line_naming_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(tracking, "wandb_installed", lambda: False)   # not find_spec: trl caches what it saw
    spec = TrackingSpec(wandb={"enabled": True})
    with pytest.raises(ValueError) as err:
        open_tracker(spec, tmp_path / "job" / "sft-abc", main=True)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("job/sft-abc: tracking.wandb.enabled")
    assert "pip install 'medalign[wandb]'" in message and "tracking.wandb.enabled=false" in message


@pytest.mark.parametrize("kind", TRAINING_STAGES)
def test_each_training_stage_checks_for_wandb_before_any_work(kind, tmp_path, monkeypatch):
    module = importlib.import_module(f"alignment.stages.{kind}")
    monkeypatch.setattr(tracking, "wandb_installed", lambda: False)   # not find_spec: trl caches what it saw
    cfg = module.Config.model_validate({"tracking": {"wandb": {"enabled": True}}})
    missing = str(tmp_path / "missing")                 # no input exists: the check must come first
    inputs = {name: missing for name in ("data", "model", "policy", "pairs", "backbone", "reward_model")}
    with pytest.raises(ValueError, match=r"tracking.wandb.enabled is true but the wandb package is not installed"):
        module.run(cfg, inputs, tmp_path / "job" / f"{kind}-abc", StageContext(progress=False))


def test_tracker_logs_finite_scalars_and_a_resume_purges_later_steps(tmp_path):
    tracker = open_tracker(TrackingSpec(), tmp_path, main=True)
    for step in range(1, 6):
        tracker.log({"loss": 10.0 - step, "name": "text", "nan": float("nan"), "missing": None}, step)
    tracker.close()
    # a resumed run restarts at step 3: the first run's steps 3..5 must not stay in the curves
    resumed = open_tracker(TrackingSpec(), tmp_path, main=True, purge_step=3)
    for step in (3, 4):
        resumed.log({"loss": 100.0 + step}, step)
    resumed.close()
    curves = read_scalars(tmp_path / "tensorboard")
    assert list(curves) == ["."] and set(curves["."]) == {"loss"}
    assert curves["."]["loss"] == [(1, 9.0), (2, 8.0), (3, 103.0), (4, 104.0)]


def test_a_tracker_on_another_rank_writes_nothing(tmp_path):
    tracker = open_tracker(TrackingSpec(), tmp_path, main=False)
    tracker.log({"loss": 1.0}, 1)
    tracker.close()
    assert not (tmp_path / "tensorboard").exists()


def test_wandb_offline_writes_its_run_files_in_the_stage_logs(tmp_path):
    pytest.importorskip("wandb")
    out = tmp_path / "job" / "rsft-abc"
    tracker = open_tracker(TrackingSpec(tensorboard=False, wandb={"enabled": True, "project": "t"}), out,
                           config={"k": 4}, main=True)
    for step in range(3):
        tracker.log({"rsft/mean_score": 1.0 + step}, step)
    tracker.close()
    runs = list((out / "logs" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1 and b"rsft/mean_score" in runs[0].read_bytes()
    assert not (out / "tensorboard").exists()


def _tiny_sft_config(sft, **tracking):
    return sft.Config(optim={"learning_rate": 3e-3, "max_steps": 3, "per_device_batch_size": 8, "logging_steps": 1},
                      max_length=128, max_train_examples=32, max_eval_examples=8, tracking=tracking)


@pytest.mark.slow
def test_sft_writes_loss_curves_to_tensorboard(tmp_path, tiny_data_dir, tiny_model_dir):
    from alignment.stages import sft

    out = tmp_path / "sft"
    sft.run(_tiny_sft_config(sft), {"data": str(tiny_data_dir), "model": str(tiny_model_dir)}, out,
            StageContext(progress=False))
    curves = read_scalars(out / "tensorboard")["."]
    assert [s for s, _ in curves["train/loss"]] == [1, 2, 3]
    assert len(curves["train/learning_rate"]) == 3
    assert curves["eval/loss"] and curves["eval/loss"][-1][0] == 3
    assert not (out / "logs" / "wandb").exists()          # W&B is off by default


@pytest.mark.slow
def test_sft_trainer_logs_to_an_offline_wandb_run(tmp_path, tiny_data_dir, tiny_model_dir):
    pytest.importorskip("wandb")
    from alignment.stages import sft

    out = tmp_path / "sft"
    sft.run(_tiny_sft_config(sft, tensorboard=False, wandb={"enabled": True}),
            {"data": str(tiny_data_dir), "model": str(tiny_model_dir)}, out, StageContext(progress=False))
    runs = list((out / "logs" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    logged = runs[0].read_bytes()
    assert b"train/loss" in logged and b"eval/loss" in logged    # transformers' W&B callback used our run
    assert not (out / "tensorboard").exists()


def test_reward_model_writes_loss_and_heldout_accuracy_to_tensorboard(tiny_trained_reward_model_dir):
    # the session fixture ran the reward_model stage (30 steps, logging every 10) with default tracking
    curves = read_scalars(tiny_trained_reward_model_dir.parent / "tensorboard")["."]
    assert [s for s, _ in curves["train/loss"]] == [1, 10, 20, 30]
    assert "train/accuracy" in curves
    assert curves["eval/heldout_accuracy"][-1][0] == 30
