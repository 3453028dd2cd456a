"""Submit a job to a Ray cluster through the Ray Jobs API, and follow it.

    medalign submit jobs/quickstart.yaml --address http://head:8265 --run-dir /mnt/shared/runs [--until sft]
    medalign submit --follow raysubmit_XYZ --address http://head:8265

What travels to the cluster: the working directory (without ``EXCLUDES``: no ``.git``, ``.venv``,
``runs/``), the entrypoint ``python -m medalign.cli run JOB [overrides] run_dir=... ray.address=auto
[--until/--only/--force]`` run on the head node in the uploaded copy, and in the job's environment
``MEDALIGN_GIT_COMMIT``: the submitting checkout's commit, which the manifests record (the upload
has no ``.git`` to read it from). The cluster's Python must have medalign's dependencies.

Where the outputs land: the run directory must be an absolute path on storage the cluster's nodes
share (``--run-dir /mnt/shared/runs`` or an absolute ``run_dir`` in the job); a relative one would
land in Ray's temporary copy of the working directory and vanish with it, so it is refused.

Token auth (on by default in Ray 2.60): the token comes from ``RAY_AUTH_TOKEN``, or the file named
by ``RAY_AUTH_TOKEN_PATH``, and is sent as a bearer header; with neither, Ray's own settings apply
(``RAY_AUTH_MODE=token`` and ``~/.ray/auth_token``). A cluster that refuses the request gives one
line saying what to set. The token never reaches a log, the job's environment or a manifest.
"""

from __future__ import annotations

import os
import re
import shlex
import time
from pathlib import Path
from typing import Callable

from ray.job_submission import JobStatus, JobSubmissionClient

from medalign.artifacts import GIT_COMMIT_ENV, git_commit
from medalign.errors import UserError

# Kept out of the uploaded working directory (Ray's limit is 500 MiB; keep it small).
EXCLUDES = [".venv", "runs", ".git", "**/__pycache__", "*.parquet", "*.safetensors", "*.bin",
            ".pytest_cache", "benchmarks/out"]
_DONE = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED)
_HOW_TO_AUTH = ("set RAY_AUTH_TOKEN to the cluster's token, or RAY_AUTH_TOKEN_PATH to a file holding it "
                "(`ray get-auth-token` on the head node prints it)")


def auth_headers() -> dict[str, str]:
    """The bearer header for the token in ``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH`` ({} if none)."""
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if not token and path:
        try:
            token = Path(path).expanduser().read_text(encoding="utf-8").strip()
        except OSError as e:
            raise UserError(f"RAY_AUTH_TOKEN_PATH={path}: cannot read the token file ({e.strerror})") from None
        if not token:
            raise UserError(f"RAY_AUTH_TOKEN_PATH={path}: the token file is empty")
    return {"Authorization": f"Bearer {token}"} if token else {}


def connect(address: str) -> JobSubmissionClient:
    """A Jobs API client for the dashboard at ``address``; one-line errors for auth and reachability."""
    from ray.exceptions import AuthenticationError

    headers = auth_headers()
    try:
        return JobSubmissionClient(address, headers=headers)
    except AuthenticationError as e:
        if str(e).startswith("Authentication failed"):     # 403: a token was sent and refused
            source = "RAY_AUTH_TOKEN" if os.environ.get("RAY_AUTH_TOKEN") else (
                "RAY_AUTH_TOKEN_PATH" if headers else "Ray's token file (RAY_AUTH_MODE=token)")
            raise UserError(f"the Ray cluster at {address} refused the token from {source}: "
                            f"{_HOW_TO_AUTH}") from None
        raise UserError(f"the Ray cluster at {address} requires a token (Ray token authentication): "
                        f"{_HOW_TO_AUTH}") from None
    except ConnectionError as e:
        raise UserError(f"cannot reach the Ray dashboard at {address} ({_first_line(e)}); is the cluster "
                        "up, and is --address its dashboard (http://<head>:8265)?") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__


def remote_run_dir(job_run_dir: str, given: str | None, source: str) -> str:
    """The run directory a submitted job writes to: ``given`` (``--run-dir``) or the job's own,
    which must be absolute (a path on the cluster's shared storage)."""
    run_dir = given or job_run_dir
    if Path(run_dir).is_absolute():
        return run_dir
    if given:
        raise UserError(f"--run-dir {given}: give an absolute path on storage the cluster's nodes share "
                        "(e.g. --run-dir /mnt/shared/runs)")
    raise UserError(f"{source}: run_dir '{job_run_dir}' is relative: on the cluster it would land in Ray's "
                    "temporary copy of this directory and vanish with the job; give --run-dir /shared/runs "
                    "(an absolute path on storage the cluster's nodes share) or an absolute run_dir")


def entrypoint(job: str, overrides: list[str], run_dir: str, *, until: str | None = None,
               only: list[str] | None = None, force: list[str] | None = None) -> str:
    """The command the cluster runs: ``medalign run`` with the same selection flags."""
    parts = ["python", "-m", "medalign.cli", "run", job, *overrides, f"run_dir={run_dir}", "ray.address=auto"]
    if until:
        parts += ["--until", until]
    for flag, names in (("--only", only or []), ("--force", force or [])):
        for name in names:
            parts += [flag, name]
    return " ".join(shlex.quote(p) for p in parts)


def job_file_in_upload(job: str) -> str:
    """``job`` as a path inside the uploaded working directory (the cluster reads it there)."""
    path = Path(job).resolve()
    cwd = Path.cwd().resolve()
    if not path.is_relative_to(cwd):
        raise UserError(f"{job}: the job file is outside the working directory {cwd}, which is what "
                        "medalign submit uploads; run it from a directory that holds the job file")
    return path.relative_to(cwd).as_posix()


def submit_job(job: str, overrides: list[str], address: str, *, run_dir: str, job_name: str,
               until: str | None = None, only: list[str] | None = None, force: list[str] | None = None,
               wait: bool = True, echo: Callable[[str], None] = print) -> int:
    """Submit ``medalign run job`` to the cluster at ``address``; 0 when it succeeded (or, with
    ``wait=False``, was submitted)."""
    client = connect(address)
    _quiet_upload_logs()
    command = entrypoint(job_file_in_upload(job), overrides, run_dir, until=until, only=only, force=force)
    env = {GIT_COMMIT_ENV: commit} if (commit := git_commit(Path.cwd())) else {}
    report = f"{run_dir.rstrip('/')}/{job_name}/report{'.partial' if until or only else ''}.json"
    job_id = client.submit_job(entrypoint=command,
                               runtime_env={"working_dir": ".", "excludes": EXCLUDES, "env_vars": env},
                               metadata={"medalign_job": job_name, "medalign_report": report})
    echo(f"submitted {job_id}: {command}")
    if not wait:
        for line in follow_hints(job_id, address, report):
            echo(line)
        return 0
    return follow_job(client, job_id, echo)


def _quiet_upload_logs() -> None:
    """Ray logs a line per ignored file while packaging the working directory, and warns that it
    leaves out .git (which EXCLUDES leaves out anyway); the submitter needs neither."""
    import logging

    for name in ("ray._private.runtime_env", "ray.dashboard.modules.dashboard_sdk"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("ray._private.runtime_env.working_dir").addFilter(
        lambda record: "'.git' is now ignored" not in record.getMessage())


def follow_hints(job_id: str, address: str, report: str) -> list[str]:
    """How to follow a job submitted with ``--no-wait``, and where its report will be."""
    return [f"  follow:  medalign submit --follow {job_id} --address {address}",
            f"           (or, with RAY_AUTH_MODE=token and the token set: ray job logs --follow {job_id} "
            f"--address {address})",
            f"  stop:    ray job stop {job_id} --address {address}",
            f"  report:  {report} (and .html beside it) on the cluster's storage when the job ends"]


def follow_job(client: JobSubmissionClient, job_id: str, echo: Callable[[str], None] = print) -> int:
    """Stream a job's log until it ends; print its status and report path; 0 when it succeeded."""
    for line in _follow(client, job_id):
        echo(line)
    info = client.get_job_info(job_id)
    echo(f"{job_id}: {info.status}" + (f" ({info.message})" if info.status != JobStatus.SUCCEEDED and info.message
                                       else ""))
    report = (info.metadata or {}).get("medalign_report")
    if report:
        echo(f"report: {report} on the cluster's storage")
    return 0 if info.status == JobStatus.SUCCEEDED else 1


def follow(job_id: str, address: str, echo: Callable[[str], None] = print) -> int:
    """``medalign submit --follow ID``: follow a job submitted earlier."""
    client = connect(address)
    try:
        client.get_job_info(job_id)
    except RuntimeError as e:
        raise UserError(f"no job {job_id} on the cluster at {address} ({_first_line(e)})") from None
    return follow_job(client, job_id, echo)


# A line Ray prefixes with the task that printed it and nothing else: "(_run_stage pid=123) "
_EMPTY_PREFIXED = re.compile(r"^\([^()]*pid=\d+[^()]*\)\s*$")


def printable_lines(text: str) -> list[str]:
    """The lines of a chunk of job log worth showing: no blank lines, no Ray prefix alone, and a
    progress bar's carriage-return updates reduced to their last state."""
    out = []
    for line in text.split("\n"):
        line = line.rsplit("\r", 1)[-1].rstrip()
        if line.strip() and not _EMPTY_PREFIXED.match(line):
            out.append(line)
    return out


def _follow(client: JobSubmissionClient, job_id: str, poll_s: float = 1.0):
    """Yield the job's new log lines (complete lines only) until it ends."""
    seen, partial = 0, ""
    while True:
        done = client.get_job_status(job_id) in _DONE        # read before the logs: nothing is missed
        logs = client.get_job_logs(job_id)
        text, seen = partial + logs[seen:], len(logs)
        if done:
            yield from printable_lines(text)
            return
        text, _, partial = text.rpartition("\n")     # hold back a line still being written
        yield from printable_lines(text)
        time.sleep(poll_s)
