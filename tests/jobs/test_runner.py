"""The job runner's bookkeeping on toy stages: reuse, rerun on change, failure, kill, force."""

from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medalign.config import ConfigError
from medalign.errors import UserError
from jobs.plan import load_plan
from jobs.runner import run_job


def test_runs_then_reuses_every_stage(toy_job, run_lines):
    first = run_lines(toy_job)
    assert first["status"] == "ok"
    assert [s["status"] for s in first["stages"].values()] == ["ran", "ran"]
    assert first["stages"]["dbl"]["metrics"]["value"] == 6
    second = run_lines(toy_job)
    assert [s["status"] for s in second["stages"].values()] == ["reused", "reused"]
    assert second["stages"]["dbl"]["key"] == first["stages"]["dbl"]["key"]
    report = json.loads((Path(first["stages"]["dbl"]["dir"]).parent / "report.json").read_text())
    assert report["stages"]["src"]["status"] == "reused"


def test_manifest_records_config_inputs_and_digests(toy_job, run_lines):
    report = run_lines(toy_job)
    manifest = json.loads((Path(report["stages"]["dbl"]["dir"]) / "manifest.json").read_text())
    assert manifest["config"] == {"factor": 2}
    src_manifest = json.loads((Path(report["stages"]["src"]["dir"]) / "manifest.json").read_text())
    assert manifest["inputs"]["data"]["digest"] == src_manifest["outputs"]["digest"]
    assert "value.txt" in manifest["outputs"]["files"]
    assert not any(f.startswith(("logs/", "checkpoints/")) for f in manifest["outputs"]["files"])
    assert manifest["versions"]["pydantic"]
    assert manifest["timings"]["wall_s"] >= 0


def test_changed_config_reruns_only_downstream(toy_job, run_lines):
    first = run_lines(toy_job)
    changed = run_lines(toy_job, "stages.dbl.config.factor=5")
    assert changed["stages"]["src"]["status"] == "reused"
    assert changed["stages"]["dbl"]["status"] == "ran"
    assert changed["stages"]["dbl"]["metrics"]["value"] == 15
    assert changed["stages"]["dbl"]["dir"] != first["stages"]["dbl"]["dir"]
    upstream = run_lines(toy_job, "stages.src.config.value=4")
    assert [s["status"] for s in upstream["stages"].values()] == ["ran", "ran"]


def test_failed_stage_skips_descendants_and_fails_the_job(toy_job, run_lines):
    report = run_lines(toy_job, "stages.src.config.fail=true")
    assert report["status"] == "failed"
    assert report["stages"]["src"]["status"] == "failed"
    assert "told to fail" in report["stages"]["src"]["error"]
    assert report["stages"]["dbl"]["status"] == "skipped"
    manifest = json.loads((Path(report["stages"]["src"]["dir"]) / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "told to fail" in manifest["problems"][0]
    log = Path(report["stages"]["src"]["dir"]) / "logs" / "stage.log"
    assert "told to fail" in log.read_text()
    assert any("told to fail" in line and "| " in line for line in report["_lines"])   # the log's tail
    assert any(f"log: {log}" in line for line in report["_lines"])


def test_force_and_until(toy_job, run_lines):
    run_lines(toy_job)
    until = run_lines(toy_job, until="src")
    assert list(until["stages"]) == ["src"]
    forced = run_lines(toy_job, force=["dbl"])
    assert forced["stages"]["dbl"]["status"] == "ran"
    assert forced["stages"]["dbl"]["metrics"]["resumed"] is False  # forced: fresh directory


def test_incomplete_directory_is_resumed(toy_job, run_lines):
    first = run_lines(toy_job)
    dbl = Path(first["stages"]["dbl"]["dir"])
    (dbl / "manifest.json").unlink()              # as if killed before the manifest was written
    again = run_lines(toy_job)
    assert again["stages"]["dbl"]["status"] == "ran"
    assert again["stages"]["dbl"]["metrics"]["resumed"] is True
    assert any("resuming" in line for line in again["_lines"])
    manifest = json.loads((dbl / "manifest.json").read_text())
    assert manifest["timings"]["attempt"] == 2


def test_kill_minus_nine_midway_then_rerun(toy_job, tmp_path, run_lines):
    cmd = [sys.executable, "-m", "medalign.cli", "run", str(toy_job), "--no-ray"]
    env = dict(os.environ, TOY_SLEEP_S="60")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    runs = tmp_path / "runs" / "toy"
    deadline = time.time() + 90
    while not list(runs.glob("src-*/started.txt")) and time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the job ended early: {proc.stdout.read().decode()}")
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    src_dir = next(runs.glob("src-*"))
    assert not (src_dir / "manifest.json").exists()          # killed: incomplete
    report = run_lines(toy_job)
    assert report["status"] == "ok"
    assert report["stages"]["src"]["dir"] == str(src_dir.resolve())   # same key, same directory
    assert any("resuming" in line for line in report["_lines"])
    assert json.loads((src_dir / "manifest.json").read_text())["timings"]["attempt"] == 2


def test_lock_refuses_a_second_concurrent_run(toy_job):
    import fcntl

    plan = load_plan(toy_job)
    plan.job_dir.mkdir(parents=True, exist_ok=True)
    with open(plan.job_dir / ".lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(UserError, match="another run"):
            run_job(plan, use_ray=False, echo=lambda s: None)


def test_unknown_input_and_bad_kind_name_file_and_line(toy_job, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(toy_job.read_text().replace("kind: toy_stages.double", "kind: toy_stages.double\n    inputs: {prompts: src}"))
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: stages.dbl.inputs: unknown input"):
        load_plan(bad)
    bad.write_text(toy_job.read_text().replace("toy_stages.double", "no_such.module"))
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: stages.dbl.kind: unknown stage kind"):
        load_plan(bad)
    bad.write_text(toy_job.read_text().replace("factor: 2", "factr: 2"))
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: stages.dbl.config.factr: Extra inputs"):
        load_plan(bad)


@pytest.mark.slow
def test_ray_runs_stages_as_tasks(toy_job, ray_local):
    report = run_job(load_plan(toy_job), use_ray=True, progress=False, echo=lambda s: None)
    assert report["status"] == "ok"
    assert report["stages"]["dbl"]["metrics"]["value"] == 6


@pytest.mark.slow
def test_num_workers_runs_a_stage_data_parallel_on_ray_train(tmp_path, toy_stages, ray_local):
    job = tmp_path / "dp.yaml"
    job.write_text(f"""\
name: dp
run_dir: {tmp_path / 'runs'}
ray: {{num_cpus: 2}}
stages:
  ar:
    kind: toy_stages.allreduce
    resources: {{num_cpus: 2, num_workers: 2}}
""")
    report = run_job(load_plan(job), use_ray=True, progress=False, echo=lambda s: None)
    assert report["status"] == "ok", report
    assert report["stages"]["ar"]["metrics"] == {"sum": 3.0, "world_size": 2}
    assert (Path(report["stages"]["ar"]["dir"]) / "sum.txt").read_text() == "3.0"


def test_a_stage_reading_a_dataset_the_recipe_does_not_make_fails_at_plan_time():
    """quickstart's PPO reads prompts/; dropping outputs.prompts from the recipe must fail in
    load_plan (file, line, field), not after SFT has run."""
    repo = Path(__file__).resolve().parents[2]
    job = repo / "jobs" / "quickstart.yaml"
    assert load_plan(job).stages["ppo"].inputs["data"].stage == "data"
    with pytest.raises(ConfigError) as e:
        load_plan(job, ["stages.data.config.overrides=[outputs.prompts=null]"])
    text = str(e.value)
    assert re.search(r"quickstart.yaml:\d+: stages.ppo.inputs.data: ppo reads prompts from stage 'data'", text)
    assert "stages.sample.inputs.data" in text and "stages.sft.inputs.data" not in text


def test_num_workers_is_refused_for_a_stage_that_does_not_run_data_parallel():
    repo = Path(__file__).resolve().parents[2]
    with pytest.raises(ConfigError) as e:
        load_plan(repo / "jobs" / "quickstart.yaml", ["stages.sample.resources.num_workers=2"])
    assert re.search(r"quickstart\.yaml:\d+: stages\.sample\.resources\.num_workers: sample does not run data "
                     r"parallel .*set num_workers: 1", str(e.value)), str(e.value)
    with pytest.raises(ConfigError, match=r"stages\.sft\.resources\.num_workers: Ray Train starts 2 workers and "
                                          r"config\.distributed\.nproc asks torchrun for 2 more"):
        load_plan(repo / "jobs" / "quickstart.yaml", ["stages.sft.resources.num_workers=2",
                                                      "stages.sft.config.distributed.nproc=2"])
    plan = load_plan(repo / "jobs" / "quickstart.yaml", ["stages.sft.resources.num_workers=2",
                                                         "stages.ppo.resources.num_workers=2"])
    assert plan.stages["ppo"].entry.resources.num_workers == 2
