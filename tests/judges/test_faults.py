"""Fault modes of the local server: every judgment ends with exactly one final record with the
right status, retries honour Retry-After, and a rerun fills in the failures."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from judges.api import judge_pairs, judge_pairs_multi
from judges.config import JudgeConfig, LocalServerOptions, RetryConfig
from judges.errors import JudgeSetupError
from judges.transcript_verify import verify_transcript
from judges.transcripts import read_rows


def _cfg(faults=(), rate=1.0, **kw) -> JudgeConfig:
    local = LocalServerOptions(faults=list(faults), fault_rate=rate, fault_seed=3,
                               retry_after_s=kw.pop("retry_after_s", 0.05), hang_s=5.0)
    return JudgeConfig(local=local, concurrency=kw.pop("concurrency", 4), timeout_s=kw.pop("timeout_s", 2.0),
                       retry=RetryConfig(max_attempts=kw.pop("attempts", 2), backoff_base_s=0.01,
                                         jitter=0.0), **kw)


def _rows(store):
    return read_rows(store / "transcripts.jsonl")


@pytest.mark.parametrize("fault, status, retried", [
    ("rate_limit", "api_error", True),
    ("server_error", "api_error", True),
    ("hang", "api_error", True),
    ("drop", "api_error", True),
    ("bad_json", "api_error", True),
    ("empty_choices", "api_error", True),
    ("truncated", "parse_error", False),
    ("malformed", "parse_error", False),
    ("refusal", "refused", False),
    ("out_of_range", "out_of_range", False),
])
def test_each_fault_gives_one_final_record_with_its_status(fault, status, retried, tmp_path, pair_items):
    items = pair_items(2)
    results = judge_pairs(items, _cfg([fault], timeout_s=0.3 if fault == "hang" else 2.0), tmp_path)
    rows = _rows(tmp_path)
    assert len(rows) == 4 and len({r["judgment_id"] for r in rows}) == 4
    for row in rows:
        assert row["status"] == status, row["error"]
        assert row["scores"] is None and row["error"]
        assert len(row["attempts"]) == (2 if retried else 1)
    for r in results:
        assert r.status == status and r.score_a is None and r.score_b is None
    assert verify_transcript(tmp_path / "transcripts.jsonl").ok


def test_retry_after_is_honoured(tmp_path, pair_items):
    judge_pairs(pair_items(1), _cfg(["rate_limit"], retry_after_s=0.3), tmp_path)
    for row in _rows(tmp_path):
        first = row["attempts"][0]
        assert first["status_code"] == 429 and first["wait_s"] >= 0.3
        assert row["latency_s"] >= 0.3


def test_non_retryable_error_fails_at_once(tmp_path, pair_items):
    results = judge_pairs(pair_items(1), _cfg(model="not-served", attempts=3), tmp_path)
    rows = _rows(tmp_path)
    assert all(len(r["attempts"]) == 1 and r["attempts"][0]["status_code"] == 404 for r in rows)
    assert results[0].status == "api_error"


def test_mixed_faults_then_rerun_fills_in_the_failures(tmp_path, pair_items):
    items = pair_items(6)
    faults = ["rate_limit", "server_error", "drop", "truncated", "malformed", "empty_choices"]
    # one call at a time: the seeded fault draws then meet the requests in a fixed order
    first = judge_pairs(items, _cfg(faults, rate=0.5, attempts=2, concurrency=1), tmp_path)
    rows1 = _rows(tmp_path)
    assert len(rows1) == 12 and len({r["judgment_id"] for r in rows1}) == 12
    statuses = Counter(r["status"] for r in rows1)
    assert statuses["ok"] < 12 and statuses["ok"] > 0, statuses
    assert any(len(r["attempts"]) > 1 and r["status"] == "ok" for r in rows1)   # a retry that worked
    failed = {r["judgment_id"] for r in rows1 if r["status"] != "ok"}
    assert any(r.status != "ok" for r in first)

    second = judge_pairs(items, _cfg(), tmp_path)         # same endpoint, no faults now
    rows2 = _rows(tmp_path)[len(rows1):]
    assert {r["judgment_id"] for r in rows2} == failed    # only the failures were judged again
    assert all(r["status"] == "ok" for r in rows2)
    assert all(r.status == "ok" and r.consistent is not None for r in second)
    assert verify_transcript(tmp_path / "transcripts.jsonl").ok


def test_api_key_comes_from_env_and_is_never_written(tmp_path, pair_items, monkeypatch, caplog):
    secret = "sk-live-DO-NOT-LOG-0123456789abcdef"
    monkeypatch.setenv("MEDALIGN_TEST_JUDGE_KEY", secret)
    cfg = _cfg(["server_error"], rate=0.5, api_key_env="MEDALIGN_TEST_JUDGE_KEY")
    judge_pairs_multi(pair_items(2), [cfg], tmp_path)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(encoding="utf-8"), path
    assert secret not in caplog.text
    monkeypatch.delenv("MEDALIGN_TEST_JUDGE_KEY")
    with pytest.raises(JudgeSetupError, match="MEDALIGN_TEST_JUDGE_KEY"):
        judge_pairs(pair_items(1), cfg, tmp_path / "other")


def test_run_log_records_each_run(tmp_path, pair_items):
    judge_pairs(pair_items(2), _cfg(), tmp_path)
    judge_pairs(pair_items(2), _cfg(), tmp_path)
    runs = [json.loads(line) for line in (tmp_path / "judge_runs.jsonl").read_text().splitlines()]
    assert [r["api_calls"] for r in runs] == [4, 0]
    assert [r["already_done"] for r in runs] == [0, 4]


def test_a_key_echoed_inside_a_completion_is_masked_in_everything_written(tmp_path, pair_items):
    import asyncio

    from judges.api import plan_judgments
    from judges.budget import Budget
    from judges.cache import CompletionCache
    from judges.client import Completion
    from judges.engine import EngineContext, run_judgments
    from judges.templates import load_template
    from judges.transcripts import TranscriptStore

    secret = "sk-echoed-0123456789abcdefXYZ"

    class EchoingJudge:                    # a server that repeats the caller's key
        name = "rubric"

        async def complete(self, messages):
            return Completion(f"Your key {secret} works.\nRating A: 8; Rating B: 3", "stop", 10, 5,
                              [{"token": secret, "logprob": 0.0, "top_logprobs": []}])

        async def aclose(self):
            pass

    cfg = JudgeConfig()
    spec = load_template(cfg.template)
    judgments, _ = plan_judgments(pair_items(1), cfg, spec)
    store = TranscriptStore.open(tmp_path / "transcripts.jsonl", secrets=(secret,))
    cache = CompletionCache(tmp_path / "cache")
    ctx = EngineContext(cfg, spec, store, cache, Budget(cfg.budget, cfg.price, free=True), "run",
                        secrets=(secret,))
    asyncio.run(run_judgments(judgments, EchoingJudge(), ctx))
    store.close()
    cache.close()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(encoding="utf-8"), path
    for row in _rows(tmp_path):
        assert row["status"] == "ok" and "*" * len(secret) in row["completion"]
        assert row["completion"][slice(*row["span"])] == "Rating A: 8; Rating B: 3"
    assert verify_transcript(tmp_path / "transcripts.jsonl").complete


def test_a_keyed_transcript_from_a_judge_run(tmp_path, pair_items, monkeypatch):
    key = "transcript-key-0123456789abcdef0123"
    monkeypatch.setenv("MEDALIGN_TEST_CHAIN_KEY", key)
    cfg = _cfg(transcript_key_env="MEDALIGN_TEST_CHAIN_KEY")
    judge_pairs(pair_items(2), cfg, tmp_path)
    rows = _rows(tmp_path)
    assert {r["chain"] for r in rows} == {"hmac-sha256"}
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert key not in path.read_text(encoding="utf-8"), path
    assert verify_transcript(tmp_path / "transcripts.jsonl", key=key.encode()).complete
    assert not verify_transcript(tmp_path / "transcripts.jsonl").complete
    monkeypatch.delenv("MEDALIGN_TEST_CHAIN_KEY")
    with pytest.raises(JudgeSetupError, match="transcript_key_env"):
        judge_pairs(pair_items(2), cfg, tmp_path)
