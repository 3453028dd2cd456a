"""Submit a job to a Ray cluster through the Ray Jobs API.

The entrypoint is ``python -m medalign.cli run JOB ... ray.address=auto`` run on the head node in
the uploaded working directory. Ray 2.60 authenticates job submission with a token by default:
the Ray client library reads ``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH`` / the default token file
itself, so the token is never put in the runtime env, a log or a manifest. The cluster's image must
have medalign's dependencies installed (``pip install -e .`` or the same pins); the runs directory
should be on storage shared by the nodes (``run_dir=/mnt/shared/runs``).
"""

from __future__ import annotations

import re
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
                          ["python", "-m", "medalign.cli", "run", job, *overrides, "ray.address=auto"])
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


def _follow(client: JobSubmissionClient, job_id: str):
    """Yield the job's new log lines (complete lines only) until it ends."""
    seen, partial = 0, ""
    while True:
        logs = client.get_job_logs(job_id)
        done = client.get_job_status(job_id) in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED)
        text, seen = partial + logs[seen:], len(logs)
        if done:
            yield from printable_lines(text)
            break
        text, _, partial = text.rpartition("\n")     # hold back a line still being written
        yield from printable_lines(text)
        time.sleep(2)
