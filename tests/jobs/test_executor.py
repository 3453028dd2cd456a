"""One executor for every way of running a stage; acceptance rules; keys that never move.

Toy stages (tests/jobs/conftest.py) keep these tests fast; the data stage runs for real on a
tiny synthetic corpus where a test is about keys that hold file paths.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medalign.artifacts import read_manifest
from medalign.cli import main
from medalign.config import StrictModel
from medalign.errors import StageFailed
from medalign.executor import execute_stage, prepare_run
from medalign.stage import StageContext


TINY_DATA = """\
  data:
    config:
      synthetic: {n_consultations: 40, seed: 0, languages: [zh]}
      overrides: [outputs.sft.total=60]
"""
TOY_STAGES = """\
  src:
    kind: toy_stages.source
    config: {value: 3}
  dbl:
    kind: toy_stages.double
"""


def _digests(report: dict) -> dict[str, tuple[str, str]]:
    return {name: (s["key"], read_manifest(s["dir"])["outputs"]["digest"])
            for name, s in report["stages"].items()}


def test_a_stage_rejected_by_its_acceptance_rule_fails_and_is_redone(toy_job, monkeypatch, run_lines):
    monkeypatch.setenv("TOY_REJECT", "1")
    first = run_lines(toy_job)
    src = first["stages"]["src"]
    assert first["status"] == "failed" and src["status"] == "failed"
    assert first["stages"]["dbl"]["status"] == "skipped"
    assert "told to reject" in src["error"]
    manifest = read_manifest(src["dir"])
    assert manifest["status"] == "failed" and manifest["problems"] == ["toy source was told to reject its result"]
    assert manifest["metrics"] == {"value": 3}              # what the auditor needs to see
    assert "told to reject" in (Path(src["dir"]) / "logs" / "stage.log").read_text()

    again = run_lines(toy_job)                                   # same key, never reused
    assert again["stages"]["src"]["status"] == "failed"
    assert any("redoing a failed attempt" in line for line in again["_lines"])
    assert not any("resuming" in line or "reused" in line for line in again["_lines"])
    assert read_manifest(src["dir"])["timings"]["attempt"] == 2

    monkeypatch.delenv("TOY_REJECT")
    fixed = run_lines(toy_job)
    assert fixed["status"] == "ok" and fixed["stages"]["src"]["dir"] == src["dir"]
    assert read_manifest(src["dir"])["status"] == "ok"


def test_a_killed_attempt_is_resumed_and_a_failed_one_redone(toy_job, run_lines):
    failed = run_lines(toy_job, "stages.src.config.fail=true")
    again = run_lines(toy_job, "stages.src.config.fail=true")
    assert any("redoing a failed attempt" in line for line in again["_lines"])
    ok = run_lines(toy_job)
    dbl = Path(ok["stages"]["dbl"]["dir"])
    (dbl / "manifest.json").unlink()                        # as if killed before the manifest
    resumed = run_lines(toy_job)
    assert any("dbl" in line and "resuming a killed attempt" in line for line in resumed["_lines"])
    assert not any("redoing" in line for line in resumed["_lines"])
    assert failed["stages"]["src"]["dir"] != ok["stages"]["src"]["dir"]     # fail=true is another key


def test_the_job_runner_and_a_direct_call_give_one_key_and_one_digest(toy_job, tmp_path, run_lines):
    """medalign train / bootstrap run a stage through prepare_run + execute_stage with the
    upstream directory as a path: the key and the output digest equal the job's."""
    from toy_stages import double

    report = run_lines(toy_job)
    src_dir, dbl = report["stages"]["src"]["dir"], report["stages"]["dbl"]
    run = prepare_run("toy_stages.double", double.Config(factor=2), {"data": src_dir}, seed=0,
                      out_dir=tmp_path / "manual")
    manifest = execute_stage(run, StageContext(seed=0, progress=False), capture=False)
    assert run.key == dbl["key"]
    assert manifest["outputs"]["digest"] == read_manifest(dbl["dir"])["outputs"]["digest"]
    assert manifest["inputs"]["data"]["digest"] == read_manifest(src_dir)["outputs"]["digest"]


def test_execute_stage_writes_log_and_manifest(tmp_path, toy_stages):
    from toy_stages import source

    run = prepare_run("toy_stages.source", source.Config(value=5), {}, seed=0, out_dir=tmp_path / "s")
    manifest = execute_stage(run, StageContext(seed=0, progress=True))
    assert manifest["status"] == "ok" and manifest["log"] == "logs/stage.log"
    assert manifest["timings"]["attempt"] == 1 and manifest["timings"]["wall_s"] >= 0
    assert not any(f.startswith("logs/") for f in manifest["outputs"]["files"])
    with pytest.raises(StageFailed, match="told to fail"):
        execute_stage(prepare_run("toy_stages.source", source.Config(fail=True), {}, seed=0,
                                  out_dir=tmp_path / "f"), StageContext(seed=0, progress=False))
    assert read_manifest(tmp_path / "f")["status"] == "failed"


def test_plan_json_gives_keys_once_upstream_stages_are_complete(toy_job, capsys, run_lines):
    def plan() -> dict:
        assert main(["run", str(toy_job), "--plan", "--json"]) == 0
        return {s["name"]: s for s in json.loads(capsys.readouterr().out)["stages"]}

    before = plan()
    assert before["src"]["key"] and before["src"]["state"] == "new"
    assert before["src"]["config"] == {"value": 3, "fail": False}
    assert before["src"]["resources"]["num_cpus"] == 1
    assert before["dbl"]["key"] is None and "src" in before["dbl"]["key_reason"]
    assert before["dbl"]["inputs"] == {"data": {"stage": "src", "model": False}}
    report = run_lines(toy_job)
    after = plan()
    assert {n: s["key"] for n, s in after.items()} == {n: s["key"] for n, s in report["stages"].items()}
    assert {s["state"] for s in after.values()} == {"complete"}


def _job_with_data(root: Path) -> Path:
    job = root / "job.yaml"
    job.write_text("name: portable\nrun_dir: runs\nstages:\n" + TINY_DATA + TOY_STAGES)
    return job


def test_a_copied_tree_with_its_runs_reuses_every_stage(tmp_path, toy_stages, monkeypatch, run_lines):
    """Keys hold no absolute path: the data stage's recipe is keyed by its relative name."""
    first_root, copy_root = tmp_path / "a", tmp_path / "b"
    first_root.mkdir()
    job = _job_with_data(first_root)
    monkeypatch.chdir(first_root)
    first = run_lines(job)
    assert first["status"] == "ok", first["_lines"]
    manifest = read_manifest(first["stages"]["data"]["dir"])
    assert not any(name.startswith("file:/") for name in manifest["inputs"]), manifest["inputs"]
    shutil.copytree(first_root, copy_root)
    shutil.rmtree(first_root)                         # nothing may still point at the original
    monkeypatch.chdir(copy_root)
    again = run_lines(copy_root / "job.yaml")
    assert [s["status"] for s in again["stages"].values()] == ["reused"] * 3, again["_lines"]
    assert {n: s["key"] for n, s in again["stages"].items()} == {n: s["key"] for n, s in first["stages"].items()}


def test_two_runs_in_two_run_dirs_give_identical_keys_outputs_and_figures(tmp_path, toy_stages, monkeypatch, run_lines):
    monkeypatch.chdir(tmp_path)
    job = _job_with_data(tmp_path)
    reports = [run_lines(job, f"run_dir={tmp_path / name}") for name in ("one", "two")]
    assert all(r["status"] == "ok" for r in reports), reports[0]["_lines"]
    assert _digests(reports[0]) == _digests(reports[1])
    assert reports[0]["headline"] == reports[1]["headline"]
    for name in reports[0]["stages"]:
        # figures only: wall times (``*_s``, the data stage's ``timings``) and where it ran (``run``) differ
        metrics = [{k: v for k, v in r["stages"][name]["metrics"].items()
                    if not k.endswith("_s") and k not in ("timings", "run")} for r in reports]
        assert metrics[0] == metrics[1], name


def test_a_judge_stage_whose_calls_all_failed_is_failed_then_redone(tmp_path, run_lines):
    """Every judge call answered with malformed text: ok fraction 0 < min_ok_fraction 0.9."""
    samples = tmp_path / "samples"
    samples.mkdir()
    rows = [{"prompt_id": f"p{i}", "messages": [{"role": "user", "content": f"I have had a cough for {i + 2} days."}],
             "reference": "Drink water and rest; see a doctor if it lasts.", "language": "en",
             "responses": ["Rest and drink water.", "Take antibiotics now."],
             "response_ids": [f"p{i}#0", f"p{i}#1"], "policy": "toy"} for i in range(2)]
    pq.write_table(pa.Table.from_pylist(rows), samples / "samples.parquet")
    job = tmp_path / "judge.yaml"
    job.write_text(textwrap.dedent(f"""\
        name: judged
        run_dir: {tmp_path / 'runs'}
        stages:
          judge:
            inputs: {{samples: {samples}}}
            config:
              judges:
                - {{local: {{faults: [malformed], fault_rate: 1.0}}, retry: {{max_attempts: 1}}}}
        """))
    first = run_lines(job)
    judge = first["stages"]["judge"]
    assert first["status"] == "failed" and judge["status"] == "failed"
    manifest = read_manifest(judge["dir"])
    assert manifest["status"] == "failed" and "min_ok_fraction 0.9" in manifest["problems"][0]
    assert manifest["metrics"]["ok_fraction"] == 0.0
    again = run_lines(job)
    assert again["stages"]["judge"]["status"] == "failed"
    assert any("redoing a failed attempt" in line for line in again["_lines"])
    assert not any("reused" in line for line in again["_lines"])


def test_declared_inputs_accept_bare_tuples_for_custom_stages(toy_stages):
    from medalign.stage import Input, declared_inputs
    from toy_stages import double

    assert declared_inputs(double) == {"data": Input(kinds=("toy_stages.source",))}
    assert isinstance(double.Config(), StrictModel)


TINY_BOOTSTRAP = {"tokenizer": {"vocab_size": 600},
                  "model": {"hidden_size": 32, "num_attention_heads": 2, "num_key_value_heads": 1, "intermediate_size": 64}}
TINY_SFT = """\
  sft:
    config:
      optim: {learning_rate: 3.0e-3, epochs: 1, per_device_batch_size: 8}
      max_length: 128
      max_train_examples: 32
      max_eval_examples: 8
"""


def _tiny_pipeline(root: Path, with_sft: bool) -> Path:
    block = f"  bootstrap:\n    config: {json.dumps(TINY_BOOTSTRAP)}\n"
    job = root / "tiny.yaml"
    job.write_text("name: tiny\nrun_dir: runs\nstages:\n" + TINY_DATA + block + (TINY_SFT if with_sft else ""))
    return job


@pytest.mark.slow
def test_medalign_bootstrap_and_the_job_give_one_key_and_one_digest(tmp_path, repo_root, run_lines):
    import os
    import subprocess
    import sys

    report = run_lines(_tiny_pipeline(tmp_path, with_sft=False), f"run_dir={tmp_path / 'runs'}")
    assert report["status"] == "ok", report["_lines"]
    data_dir, boot = report["stages"]["data"]["dir"], report["stages"]["bootstrap"]
    out = tmp_path / "manual"
    proc = subprocess.run([sys.executable, "-m", "medalign.cli", "bootstrap", "--data", data_dir, "--out", str(out),
                           *(f"{part}.{k}={v}" for part, spec in TINY_BOOTSTRAP.items() for k, v in spec.items())],
                          cwd=repo_root, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(repo_root)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    manual, job = read_manifest(out), read_manifest(boot["dir"])
    assert manual["key"] == job["key"] == boot["key"]
    assert manual["outputs"]["digest"] == job["outputs"]["digest"]


@pytest.mark.slow
def test_two_runs_of_data_bootstrap_sft_give_identical_datasets_checkpoints_keys_and_figures(tmp_path, monkeypatch, run_lines):
    monkeypatch.chdir(tmp_path)
    job = _tiny_pipeline(tmp_path, with_sft=True)
    reports = [run_lines(job, f"run_dir={tmp_path / name}") for name in ("one", "two")]
    assert all(r["status"] == "ok" for r in reports), reports[0]["_lines"]
    assert _digests(reports[0]) == _digests(reports[1])          # datasets, checkpoints, keys
    assert reports[0]["headline"] == reports[1]["headline"] and "sft_loss_end" in reports[0]["headline"]
