"""Every user error of the ``medalign`` command: one clear line (file, line, field where there is
one), a non-zero exit, and never a traceback. Each case runs the real CLI in a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

JOB = "jobs/quickstart.yaml"
MISSING = "/nonexistent/medalign-test"

# (argv, regex the error line must match); {tmp} is a fresh directory, {broken} a YAML with a
# syntax error
CASES = {
    "run: missing job file": (["run", f"{MISSING}/job.yaml"], r"job\.yaml: file not found"),
    "run: YAML syntax error": (["run", "{broken}"], r"broken\.yaml:\d+: YAML syntax error"),
    "run: unknown config field": (["run", JOB, "stages.sft.config.bogus=1", "--plan"],
                                  r"quickstart\.yaml \(override 'stages\.sft\.config\.bogus=1'\): stages\.sft\.config\.bogus: Extra inputs"),
    "run: unknown stage kind": (["run", JOB, "stages.sft.kind=nope", "--plan"],
                                r"quickstart\.yaml:\d+: stages\.sft\.kind: unknown stage kind 'nope'"),
    "run: bad override value": (["run", JOB, "stages.sft.config=[", "--plan"], r"override .*not valid YAML"),
    "run: override without =": (["run", JOB, "--plan", "seed"], r"unrecognized arguments: seed"),
    "run: missing input path": (["run", JOB, f"stages.sample.inputs.data={MISSING}", "--plan"],
                                r"stages\.sample\.inputs\.data: .* neither a stage of this job nor an existing path"),
    "run: missing recipe": (["run", JOB, "stages.data.config.recipe=nope.yaml", "--plan"],
                            r"quickstart\.yaml:\d+: stages\.data\.config: recipe 'nope\.yaml' not found"),
    "run: --only unknown stage": (["run", JOB, "--only", "nope"], r"--only nope: no stage 'nope' in job quickstart"),
    "run: --until unknown stage": (["run", JOB, "--until", "nope", "--plan"], r"--until nope: no stage 'nope'"),
    "run: --force unknown stage": (["run", JOB, "--force", "nope"], r"--force nope: no stage 'nope'"),
    "run: --json without --plan": (["run", JOB, "--json"], r"--json goes with --plan"),
    "train: unknown stage": (["train", "nope", "--out", "{tmp}"], r"invalid choice: 'nope'"),
    "train: missing input": (["train", "sft", "--out", "{tmp}"], r"stage sft needs --input data=PATH"),
    "train: unknown input": (["train", "sft", "--input", "foo=bar", "--out", "{tmp}"],
                             r"--input foo: stage sft has no input 'foo'; it takes data, model"),
    "train: input not NAME=PATH": (["train", "sft", "--input", "data", "--out", "{tmp}"], r"expected NAME=PATH"),
    "train: missing input path": (["train", "sft", "--input", f"data={MISSING}", "--input", "model=m", "--out", "{tmp}"],
                                  r"--input data=/nonexistent/medalign-test: no such file or directory"),
    "train: unknown config field": (["train", "sft", "bogus=1", "--out", "{tmp}"], r"<command line>: bogus: Extra inputs"),
    "train: missing config file": (["train", "sft", "--config", f"{MISSING}.yaml", "--out", "{tmp}"],
                                   r"medalign-test\.yaml: file not found"),
    "train: --nproc on a one-process stage": (["train", "sample", "--nproc", "2", "--out", "{tmp}"],
                                              r"stage sample does not run distributed"),
    "bootstrap: missing data dir": (["bootstrap", "--data", MISSING, "--out", "{tmp}"],
                                    r"--data /nonexistent/medalign-test: no such directory"),
    "data: missing recipe": (["data", "validate", f"{MISSING}.yaml"], r"recipe '.*medalign-test\.yaml' not found"),
    "data: recipe with a syntax error": (["data", "validate", "{broken}"], r"broken\.yaml:\d+: YAML syntax error"),
    "judge: missing config": (["judge", "run", f"{MISSING}.yaml"], r"medalign-test\.yaml: file not found"),
    "audit verify: missing transcript": (["audit", "verify", f"{MISSING}.jsonl"],
                                         r"(?i)medalign-test\.jsonl: no such file or directory"),
    "audit summary: missing transcript": (["audit", "summary", f"{MISSING}.jsonl"],
                                          r"(?i)medalign-test\.jsonl: no such file or directory"),
    "submit: missing job file": (["submit", f"{MISSING}/job.yaml", "--address", "http://127.0.0.1:9"],
                                 r"job\.yaml: file not found"),
    "submit: bad job field": (["submit", JOB, "stages.sft.config.bogus=1", "--address", "http://127.0.0.1:9"],
                              r"quickstart\.yaml \(override 'stages\.sft\.config\.bogus=1'\): stages\.sft\.config\.bogus"),
    "submit: relative run_dir": (["submit", JOB, "--address", "http://127.0.0.1:9"],
                                 r"quickstart\.yaml: run_dir 'runs' is relative: .*give --run-dir /shared/runs"),
    "submit: relative --run-dir": (["submit", JOB, "--run-dir", "runs", "--address", "http://127.0.0.1:9"],
                                   r"--run-dir runs: give an absolute path"),
    "submit: --until unknown stage": (["submit", JOB, "--until", "nope", "--address", "http://127.0.0.1:9"],
                                      r"--until nope: no stage 'nope'"),
    "submit: no job file": (["submit", "--address", "http://127.0.0.1:9"], r"needs a job file \(or --follow JOB_ID\)"),
    "submit: no cluster there": (["submit", JOB, "--run-dir", MISSING, "--address", "http://127.0.0.1:9"],
                                 r"cannot reach the Ray dashboard at http://127\.0\.0\.1:9 .*--address"),
}


@pytest.fixture(scope="module")
def outcomes(repo_root, tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Every case's finished process; run four at a time (each is a fresh interpreter)."""
    tmp = tmp_path_factory.mktemp("cli_errors")
    broken = tmp / "broken.yaml"
    broken.write_text("name: x\nstages:\n  a: [\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(repo_root)}

    def run(case: str) -> subprocess.CompletedProcess:
        argv = [a.replace("{tmp}", str(tmp / "out")).replace("{broken}", str(broken)) for a in CASES[case][0]]
        return subprocess.run([sys.executable, "-m", "medalign.cli", *argv], cwd=repo_root,
                              capture_output=True, text=True, timeout=300, env=env)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(CASES, pool.map(run, CASES)))


@pytest.mark.parametrize("case", list(CASES))
def test_a_user_error_is_one_line_without_a_traceback(case, outcomes):
    pattern, proc = CASES[case][1], outcomes[case]
    text = proc.stdout + proc.stderr
    assert proc.returncode not in (0, None), text
    assert "Traceback" not in text, text
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    error = lines[-1] if lines else ""
    assert re.search(pattern, error), f"{case}: {error!r} does not match {pattern!r}\n{text}"
    assert error.startswith(("error: ", "medalign")), error
    if not error.startswith("medalign"):         # argparse usage errors print usage first
        assert len(lines) == 1, f"more than one line: {lines}"
