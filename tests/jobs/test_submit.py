"""``medalign submit`` against a real Ray cluster that the test starts on 127.0.0.1.

The cluster is ``ray start --head --block`` with its dashboard (the Jobs API) on 127.0.0.1 and
token authentication, as Ray 2.60 has it (``RAY_AUTH_MODE=token``, a token made by the test). The
submitter sets only ``RAY_AUTH_TOKEN`` (the variable the README names), with no ``PYTHONPATH``
on the cluster side, so the job runs the uploaded copy of the working directory.

Cleanup: ``ray stop`` would stop every Ray process on this machine, other users' included, so the
fixture ends exactly the processes it started: SIGTERM to ``ray start --block`` (which shuts down
its cluster), then SIGKILL to any of its descendants still alive; also when a test fails.

Cluster-free errors of ``medalign submit`` (relative run_dir, unreachable address) are cases of
tests/core/test_cli_errors.py.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SMALL = ["stages.data.config.synthetic.n_consultations=200", "stages.data.config.overrides=[outputs.sft.total=300]",
         "stages.bootstrap.config.tokenizer.vocab_size=512", "stages.sft.config.optim.max_steps=3",
         "stages.sft.config.max_eval_examples=8", "stages.sft.config.max_length=64"]
_PREFIX_ONLY = re.compile(r"^\([^()]*pid=\d+[^()]*\)\s*$")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _dashboard_answers(url: str) -> bool:
    try:
        urllib.request.urlopen(f"{url}/api/version", timeout=2)
        return True
    except urllib.error.HTTPError:          # 401 without a token: it is up
        return True
    except OSError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    """End ``ray start --block`` and everything it started (by pid), nothing else."""
    import psutil

    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    _, alive = psutil.wait_procs(family, timeout=10)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``{"address", "token", "run_dir"}`` of a one-node Ray cluster with token auth."""
    gcs, dashboard, client, agent = _free_ports(4)
    temp = tempfile.mkdtemp(prefix="mdray", dir="/tmp")      # short: Ray's socket paths have a limit
    token = secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAY_ADDRESS")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token,
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    log = open(Path(temp) / "head.log", "w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
         "--port", str(gcs), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
         "--ray-client-server-port", str(client), "--dashboard-agent-listen-port", str(agent),
         "--num-cpus", "2", "--include-dashboard", "true", "--temp-dir", temp, "--disable-usage-stats"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.time() + 180
        while not _dashboard_answers(address):
            assert proc.poll() is None, (Path(temp) / "head.log").read_text()[-3000:]
            assert time.time() < deadline, "the Ray dashboard did not come up in 180 s"
            time.sleep(1)
        yield {"address": address, "token": token, "run_dir": str(tmp_path_factory.mktemp("cluster_runs"))}
    finally:
        _stop(proc)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _submit(*args: str, token: str | None, timeout: float = 600) -> tuple[subprocess.CompletedProcess, list]:
    """Run ``medalign submit`` from the repository; returns the process and (seconds, line) pairs
    of its standard output as they arrived."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env["PYTHONPATH"] = str(REPO)
    if token is not None:
        env["RAY_AUTH_TOKEN"] = token
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "medalign.cli", "submit", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    timed = [(time.time() - t0, line.rstrip("\n")) for line in proc.stdout]
    stderr = proc.stderr.read()
    proc.wait(timeout=timeout)
    out = subprocess.CompletedProcess(proc.args, proc.returncode, "\n".join(l for _, l in timed), stderr)
    return out, timed


@pytest.mark.slow
def test_auth_errors_say_what_to_set(cluster):
    for token, expected in ((None, "requires a token"), ("not-the-token", "refused the token from RAY_AUTH_TOKEN")):
        proc, _ = _submit("jobs/quickstart.yaml", "--run-dir", cluster["run_dir"], "--address", cluster["address"],
                          token=token)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
        assert "set RAY_AUTH_TOKEN" in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_a_submitted_job_streams_its_log_and_lands_in_the_run_dir(cluster):
    from medalign.artifacts import git_commit

    proc, timed = _submit("jobs/quickstart.yaml", *SMALL, "--until", "sft", "--run-dir", cluster["run_dir"],
                          "--address", cluster["address"], token=cluster["token"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for _, line in timed]
    assert re.match(r"submitted raysubmit_\w+: python -m medalign\.cli run jobs/quickstart\.yaml .*--until sft$",
                    lines[0]), lines[0]
    assert re.search(r": SUCCEEDED$", lines[-2]) and lines[-1].startswith(f"report: {cluster['run_dir']}/quickstart/")
    # streamed: the sft stage's start was printed while it ran, well before its end
    started = next(t for t, line in timed if line.startswith("> sft"))
    ended = next(t for t, line in timed if line.startswith("+ sft"))
    assert ended - started > 1.0, timed
    assert not [line for line in lines if not line.strip() or _PREFIX_ONLY.match(line)]
    job_dir = Path(cluster["run_dir"]) / "quickstart"
    manifests = {p.parent.name.split("-")[0]: json.loads(p.read_text()) for p in job_dir.glob("*/manifest.json")}
    assert set(manifests) == {"data", "bootstrap", "sft"}               # --until sft reached the cluster
    assert {m["git_commit"] for m in manifests.values()} == {git_commit(REPO)} != {None}
    assert (job_dir / "report.partial.json").is_file()
    assert (next(job_dir.glob("sft-*")) / "model" / "model.safetensors").is_file()


@pytest.mark.slow
def test_no_wait_prints_how_to_follow_and_follow_reports_the_end(cluster):
    proc, _ = _submit("jobs/quickstart.yaml", *SMALL, "--only", "bootstrap", "--force", "bootstrap",
                      "--run-dir", cluster["run_dir"], "--address", cluster["address"], "--no-wait",
                      token=cluster["token"], timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job_id = re.match(r"submitted (raysubmit_\w+): .* --only bootstrap --force bootstrap$", proc.stdout.splitlines()[0])
    assert job_id, proc.stdout
    job_id = job_id.group(1)
    assert f"medalign submit --follow {job_id} --address {cluster['address']}" in proc.stdout
    assert f"ray job logs --follow {job_id}" in proc.stdout
    assert f"report:  {cluster['run_dir']}/quickstart/report.partial.json" in proc.stdout
    followed, timed = _submit("--follow", job_id, "--address", cluster["address"], token=cluster["token"])
    assert followed.returncode == 0, followed.stdout + followed.stderr
    text = followed.stdout
    assert re.search(r"^> bootstrap .*\(forced: old directory removed\)$", text, re.M), text   # --force forwarded
    assert re.search(r"^[=+] data ", text, re.M) and not re.search(r"^[>+] sft", text, re.M)  # --only forwarded
    assert text.splitlines()[-2] == f"{job_id}: SUCCEEDED"


def test_the_entrypoint_forwards_the_selection_flags_and_the_run_dir():
    from jobs.submit import entrypoint

    assert entrypoint("jobs/q.yaml", ["seed=1", "stages.data.config.overrides=[a=1]"], "/shared/runs",
                      until="sft", only=None, force=["sft", "data"]) == (
        "python -m medalign.cli run jobs/q.yaml seed=1 'stages.data.config.overrides=[a=1]' run_dir=/shared/runs "
        "ray.address=auto --until sft --force sft --force data")
    assert entrypoint("jobs/q.yaml", [], "/r", only=["ppo", "eval"]).endswith("--only ppo --only eval")


def test_the_run_dir_must_be_absolute_on_the_cluster():
    from medalign.errors import UserError

    from jobs.submit import remote_run_dir

    assert remote_run_dir("runs", "/mnt/shared/runs", "job.yaml") == "/mnt/shared/runs"
    assert remote_run_dir("/abs/runs", None, "job.yaml") == "/abs/runs"
    with pytest.raises(UserError, match=r"job\.yaml: run_dir 'runs' is relative"):
        remote_run_dir("runs", None, "job.yaml")
    with pytest.raises(UserError, match=r"--run-dir shared: give an absolute path"):
        remote_run_dir("/abs", "shared", "job.yaml")


def test_the_token_comes_from_the_variables_the_readme_names(monkeypatch, tmp_path):
    from medalign.errors import UserError

    from jobs.submit import auth_headers

    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    assert auth_headers() == {}
    (tmp_path / "token").write_text("abc123\n")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "token"))
    assert auth_headers() == {"Authorization": "Bearer abc123"}
    monkeypatch.setenv("RAY_AUTH_TOKEN", "xyz")                 # the variable wins over the file
    assert auth_headers() == {"Authorization": "Bearer xyz"}
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    with pytest.raises(UserError, match=r"RAY_AUTH_TOKEN_PATH=.*missing: cannot read the token file"):
        auth_headers()


def test_a_job_file_outside_the_uploaded_directory_is_refused(tmp_path, monkeypatch):
    from medalign.errors import UserError

    from jobs.submit import job_file_in_upload

    monkeypatch.chdir(REPO)
    assert job_file_in_upload("jobs/quickstart.yaml") == "jobs/quickstart.yaml"
    assert job_file_in_upload(str(REPO / "jobs" / "quickstart.yaml")) == "jobs/quickstart.yaml"
    with pytest.raises(UserError, match="outside the working directory"):
        job_file_in_upload(str(tmp_path / "job.yaml"))


def test_the_manifest_records_the_submitted_commit(tmp_path, monkeypatch):
    from medalign.artifacts import GIT_COMMIT_ENV, write_manifest

    monkeypatch.setenv(GIT_COMMIT_ENV, "0123abcd")
    manifest = write_manifest(tmp_path, stage="x", key="k", config={}, inputs={}, metrics={}, timings={})
    assert manifest["git_commit"] == "0123abcd"
