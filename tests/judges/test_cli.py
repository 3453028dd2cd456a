"""``medalign judge run|serve`` and ``medalign audit verify|summary`` through the real CLI."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

from medalign.cli import main


def _tuples_file(path, cases, n=4):
    """CMD-style ranked tuples without ranks: the ranking comes from the sources."""
    rows = []
    for c in cases(n):
        rows.append({"prompt_id": c["prompt_id"],
                     "messages": [{"role": "user", "content": c["question"]}],
                     "reference": c["reference"],
                     "responses": [c["answers"]["weak"], c["answers"]["hybrid"]],
                     "response_sources": ["weak", "doctor"]})
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def _config(tmp_path, input_path, kind="tuples", extra=""):
    cfg = tmp_path / "judge.yaml"
    cfg.write_text(f"judges:\n  - {{name: rubric}}\ntemplate: huatuo_pairwise\n"
                   f"input: {{kind: {kind}, path: {input_path}}}\noutput_dir: {tmp_path / 'out'}\n"
                   + extra, encoding="utf-8")
    return cfg


@pytest.mark.slow
def test_judge_run_dry_run_then_run_then_audit(tmp_path, cases, capsys):
    tuples = _tuples_file(tmp_path / "tuples.jsonl", cases)
    cfg = tmp_path / "judge.yaml"
    cfg.write_text(f"""judges:
  - {{name: rubric}}
  - {{name: remote, base_url: 'https://judge.invalid/v1', model: big,
     price: {{input_per_mtok: 2.0, output_per_mtok: 8.0}}}}
template: huatuo_pairwise
input: {{kind: tuples, path: {tuples}}}
output_dir: {tmp_path / 'out'}
""", encoding="utf-8")
    assert main(["judge", "run", str(cfg), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "judge rubric" in out and "8 judgments" in out and "-> 8 calls" in out
    assert "judge remote" in out and "cost <= " in out
    assert not (tmp_path / "out").exists()                       # a dry run writes nothing

    assert main(["judge", "run", str(cfg), "judges=[{name: rubric}]", "--no-progress"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.index("{"):out.rindex("}") + 1])
    assert summary["calls"] == 8 and summary["reference_agreement"] == 1.0
    transcripts = tmp_path / "out" / "transcripts.jsonl"

    assert main(["audit", "verify", str(transcripts)]) == 0
    assert "hash chain intact" in capsys.readouterr().out
    ranking = tmp_path / "ranking.jsonl"
    ranking.write_text("\n".join(json.dumps({"prompt_id": f"p{i}", "ranks": [1, 0]})
                                 for i in range(4)) + "\n")
    assert main(["audit", "summary", str(transcripts), "--reference-ranking", str(ranking),
                 "--resamples", "50", "--json", str(tmp_path / "summary.json")]) == 0
    text = capsys.readouterr().out
    assert "swap consistency 1.000" in text and "first-position win rate 0.500" in text
    assert "agreement with the reference ranking 1.000 over 4 response pairs" in text
    assert json.loads((tmp_path / "summary.json").read_text())["judges"]["rubric"]["calls"] == 8

    lines = transcripts.read_text().splitlines(keepends=True)
    transcripts.write_text("".join(lines[:2] + lines[3:]))
    assert main(["audit", "verify", str(transcripts)]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_judge_run_pairs_input_and_bad_config(tmp_path, cases, capsys):
    rows = [{"prompt_id": c["prompt_id"], "messages": [{"role": "user", "content": c["question"]}],
             "chosen": c["answers"]["hybrid"], "rejected": c["answers"]["distilled"],
             "reference": c["reference"]} for c in cases(2)]
    rows.append({"prompt_id": "broken", "messages": [], "chosen": "a", "rejected": "b"})
    src = tmp_path / "prefs.jsonl"
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    cfg = _config(tmp_path, src, kind="pairs")
    assert main(["judge", "run", str(cfg), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "1 quarantined" in out and "prefs.jsonl:3: field 'messages'" in out
    report = json.loads((tmp_path / "out" / "judge_report.json").read_text())
    assert report["judgments"] == 4 and report["reference_agreement"] == 1.0
    assert main(["judge", "run", str(cfg), "judges.0.concurency=3"]) == 2
    assert "judge.yaml" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_judge_serve_command(tmp_path):
    import openai

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "medalign.cli", "judge", "serve", "--port",
                             str(port), "--latency-ms", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="EMPTY", max_retries=0,
                               timeout=2)
        deadline = time.monotonic() + 60
        while True:
            try:
                models = [m.id for m in client.models.list()]
                break
            except openai.APIConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.2)
        assert models == ["medalign-rubric-v2", "medalign-patient", "medalign-grader"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert main(["judge", "serve", "--faults", "rate_limit,oops"]) == 2


@pytest.mark.slow
def test_judge_serve_on_all_interfaces_requires_the_key(tmp_path):
    import os

    import openai

    port = _free_port()
    env = {**os.environ, "MEDALIGN_TEST_SERVE_KEY": "serve-key-0123456789abcdef"}
    proc = subprocess.Popen([sys.executable, "-m", "medalign.cli", "judge", "serve", "--host",
                             "0.0.0.0", "--port", str(port), "--api-key-env",
                             "MEDALIGN_TEST_SERVE_KEY"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        good = openai.OpenAI(base_url=url, api_key=env["MEDALIGN_TEST_SERVE_KEY"], max_retries=0,
                             timeout=2)
        deadline = time.monotonic() + 60
        while True:
            try:
                assert [m.id for m in good.models.list()] == ["medalign-rubric-v2", "medalign-patient",
                                                                "medalign-grader"]
                break
            except openai.APIConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.2)
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url, api_key="EMPTY", max_retries=0, timeout=2).models.list()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
