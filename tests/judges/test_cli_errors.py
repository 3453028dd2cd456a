"""Judge-side user errors: one clear line naming the file, line or field; never a traceback.
Bad input rows are quarantined with their file and line, not fatal."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from medalign.cli import main


def _rows(cases, n=3):
    return [{"prompt_id": c["prompt_id"], "messages": [{"role": "user", "content": c["question"]}],
             "reference": c["reference"], "responses": [c["answers"]["hybrid"], c["answers"]["weak"]]}
            for c in cases(n)]


def _config(tmp_path, input_path, extra="", judge="{name: rubric}"):
    cfg = tmp_path / "judge.yaml"
    cfg.write_text(f"judges:\n  - {judge}\ninput: {{kind: tuples, path: {input_path}}}\n"
                   f"output_dir: {tmp_path / 'out'}\n{extra}", encoding="utf-8")
    return str(cfg)


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err
    return err


def test_bad_lines_and_long_responses_are_quarantined_with_file_and_line(tmp_path, cases, capsys):
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in _rows(cases)]
    lines.insert(1, b'{"prompt_id": "cut", "messages": [{"role": "us')          # truncated
    lines.insert(2, '{"prompt_id": "latin1", "question": "caf\xe9"}'.encode("latin-1"))
    long = _rows(cases, 1)[0] | {"prompt_id": "long"}
    long["responses"] = long["responses"] + ["x" * 5000]
    lines.append(json.dumps(long).encode())
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    cfg = _config(tmp_path, src)
    assert main(["judge", "run", cfg, "input.max_response_chars=3000", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "4 prompts" in out and "3 quarantined" in out
    assert f"{src}:2: not valid JSON" in out and f"{src}:3: not valid UTF-8" in out
    assert f"{src}:6: response 2 (long#2): 5,000 characters > max_response_chars 3,000" in out
    bad = [json.loads(x) for x in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    assert [q["row"] for q in bad] == [2, 3, 6]
    report = json.loads((tmp_path / "out" / "judge_report.json").read_text())
    assert report["quarantined"] == 3 and report["prompts"] == 4


def test_a_file_that_is_not_utf8_at_all(tmp_path, cases, capsys):
    src = tmp_path / "utf16.jsonl"
    src.write_bytes("\n".join(json.dumps(r, ensure_ascii=False) for r in _rows(cases)).encode("utf-16"))
    assert main(["judge", "run", _config(tmp_path, src), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert f"{src}:1: not valid UTF-8" in captured.out
    assert "no usable rows" in captured.err and "Traceback" not in captured.err


@pytest.mark.parametrize("judge, needles", [
    ("{name: remote, base_url: 'http://127.0.0.1:9/v1', api_key_env: MEDALIGN_NO_SUCH_KEY}",
     ("MEDALIGN_NO_SUCH_KEY", "is not set")),
    ("{name: rubric, template: no_such_template}", ("judges.0.template", "no_such_template",
                                                    "huatuo_pairwise")),
    ("{name: rubric, template: /no/such/template.yaml}", ("judges.0.template",)),
])
def test_setup_errors_are_one_line(tmp_path, cases, capsys, monkeypatch, judge, needles):
    monkeypatch.delenv("MEDALIGN_NO_SUCH_KEY", raising=False)
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in _rows(cases)) + "\n")
    assert main(["judge", "run", _config(tmp_path, src, judge=judge), "--no-progress"]) == 2
    _one_line_error(capsys, *needles)
    assert not (tmp_path / "out" / "transcripts.jsonl").exists()


def test_missing_and_unreadable_files(tmp_path, capsys):
    assert main(["judge", "run", _config(tmp_path, tmp_path / "nope.jsonl")]) == 2
    _one_line_error(capsys, "nope.jsonl")
    fake = tmp_path / "fake.parquet"
    fake.write_text("not parquet")
    assert main(["judge", "run", _config(tmp_path, fake)]) == 2
    _one_line_error(capsys, "fake.parquet", "not a readable parquet file")
    for cmd in (["audit", "verify"], ["audit", "summary"], ["audit", "list"]):
        assert main([*cmd, str(tmp_path / "none.jsonl")]) == 2
        _one_line_error(capsys, "none.jsonl")
    assert main(["audit", "view", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "a.html")]) == 2
    _one_line_error(capsys, "none.jsonl")


def test_serve_refuses_an_open_non_loopback_endpoint(capsys, monkeypatch):
    assert main(["judge", "serve", "--host", "0.0.0.0"]) == 2
    _one_line_error(capsys, "0.0.0.0", "--api-key-env")
    monkeypatch.delenv("MEDALIGN_NO_SUCH_KEY", raising=False)
    assert main(["judge", "serve", "--host", "0.0.0.0", "--api-key-env", "MEDALIGN_NO_SUCH_KEY"]) == 2
    _one_line_error(capsys, "MEDALIGN_NO_SUCH_KEY")


def test_a_real_process_prints_no_traceback(tmp_path, cases):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in _rows(cases)) + "\n")
    cfg = _config(tmp_path, src, judge="{name: r, base_url: 'http://127.0.0.1:9/v1', "
                                       "api_key_env: MEDALIGN_NO_SUCH_KEY}")
    proc = subprocess.run([sys.executable, "-m", "medalign.cli", "judge", "run", cfg],
                          capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in __import__("os").environ.items()
                               if k != "MEDALIGN_NO_SUCH_KEY"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: judge 'r': environment variable")
