"""kill -9 a judge run midway, run it again, and compare with an uninterrupted run."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from judges.api import judge_pairs_multi
from judges.config import JudgeConfig, LocalServerOptions
from judges.transcript_verify import verify_transcript
from judges.transcripts import read_rows

SCRIPT = """
import json, sys
from judges.api import PairItem, judge_pairs
from judges.config import JudgeConfig
items = [PairItem(**d) for d in json.load(open(sys.argv[1]))]
cfg = JudgeConfig.model_validate_json(open(sys.argv[2]).read())
judge_pairs(items, cfg, sys.argv[3])
print("finished")
"""


def _count_lines(path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_kill9_midway_then_resume_matches_an_uninterrupted_run(tmp_path, pair_items):
    items = pair_items(20)                                 # 40 judgments, >= 4 s of calls
    cfg = JudgeConfig(concurrency=2, local=LocalServerOptions(latency_ms=200))
    (tmp_path / "items.json").write_text(json.dumps([dataclasses.asdict(i) for i in items]))
    (tmp_path / "cfg.json").write_text(cfg.model_dump_json())
    (tmp_path / "run.py").write_text(SCRIPT)
    store = tmp_path / "killed"
    transcript = store / "transcripts.jsonl"
    proc = subprocess.Popen([sys.executable, str(tmp_path / "run.py"), str(tmp_path / "items.json"),
                             str(tmp_path / "cfg.json"), str(store)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    while _count_lines(transcript) < 8 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read().decode()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    killed_lines = _count_lines(transcript)
    assert 8 <= killed_lines < 40
    with open(transcript, "ab") as f:                      # as if killed inside a write
        f.write(b'{"judgment_id": "half a li')

    resumed, stats = judge_pairs_multi(items, [cfg.model_copy(update={"local": LocalServerOptions()})],
                                       store)
    assert stats[0].truncated_bytes == len(b'{"judgment_id": "half a li')
    assert stats[0].already_done == killed_lines and stats[0].api_calls == 40 - killed_lines
    clean, _ = judge_pairs_multi(items, [JudgeConfig(concurrency=8)], tmp_path / "clean")

    rows_resumed = read_rows(transcript)
    rows_clean = read_rows(tmp_path / "clean" / "transcripts.jsonl")
    ids = [r["judgment_id"] for r in rows_resumed]
    assert len(ids) == len(set(ids)) == 40                 # no duplicates, nothing missing
    assert set(ids) == {r["judgment_id"] for r in rows_clean}
    by_id = {r["judgment_id"]: r["scores"] for r in rows_clean}
    assert all(r["scores"] == by_id[r["judgment_id"]] for r in rows_resumed)
    assert verify_transcript(transcript).ok
    assert [(r.status, r.score_a, r.score_b, r.consistent) for r in resumed["rubric"]] == \
           [(r.status, r.score_a, r.score_b, r.consistent) for r in clean["rubric"]]
