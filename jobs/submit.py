"""Submit a job to a Ray cluster through the Ray Jobs API.

The entrypoint is ``python -m medalign.cli run JOB ... ray.address=auto`` run on the head node in
the uploaded working directory. Ray 2.60 authenticates job submission with a token by default:
the Ray client library reads ``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH`` / the default token file
itself, so the token is never put in the runtime env, a log or a manifest. The cluster's image must
have medalign's dependencies installed (``pip install -e .`` or the same pins); the runs directory
should be on storage shared by the nodes (``run_dir=/mnt/shared/runs``).
"""

from __future__ import annotations

import shlex
import time

from ray.job_submission import JobStatus, JobSubmissionClient

# Kept out of the uploaded working directory (Ray's limit is 500 MiB; keep it small).
EXCLUDES = [".venv", "runs", ".git", "**/__pycache__", "*.parquet", "*.safetensors", "*.bin",
            ".pytest_cache", "benchmarks/out"]


def submit_job(job: str, overrides: list[str], address: str, *, wait: bool = True, echo=print) -> int:
    """Submit ``medalign run job overrides`` to the cluster at ``address``; 0 when it succeeded."""
    client = JobSubmissionClient(address)
    entrypoint = " ".join(shlex.quote(p) for p in
                          ["python", "-m", "medalign.cli", "run", job, *overrides, "ray.address=auto",
                           "--no-progress"])
    job_id = client.submit_job(entrypoint=entrypoint,
                               runtime_env={"working_dir": ".", "excludes": EXCLUDES},
                               metadata={"medalign_job": job})
    echo(f"submitted {job_id}: {entrypoint}")
    if not wait:
        return 0
    for line in _follow(client, job_id):
        echo(line)
    status = client.get_job_status(job_id)
    echo(f"{job_id}: {status}")
    return 0 if status == JobStatus.SUCCEEDED else 1


def _follow(client: JobSubmissionClient, job_id: str):
    seen = 0
    while True:
        logs = client.get_job_logs(job_id)
        if len(logs) > seen:
            yield logs[seen:].rstrip("\n")
            seen = len(logs)
        if client.get_job_status(job_id) in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
            break
        time.sleep(2)
