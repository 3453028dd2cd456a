"""Judging at a provider's limits: rate-limit headers, pacing and AIMD, the server's limit, and
the Batch API (local server's /v1/files and /v1/batches; resume after the client dies)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from judges.api import PairItem, judge_pairs
from judges.batch import state_path
from judges.config import JudgeConfig, RateLimitConfig
from judges.ratelimit import ProviderQuota, RateController, Ticket, format_duration, parse_duration
from judges.server import running_server
from judges.server.quota import ServerQuota


def _items(n: int) -> list[PairItem]:
    return [PairItem(f"p{i}", [], f"我头痛第{i}天，一侧跳痛，怎么办？", "考虑偏头痛，建议去神经内科就诊。",
                     f"p{i}#0", "考虑偏头痛，建议去神经内科就诊。请问有没有恶心？", f"p{i}#1", "多喝水。", "zh")
            for i in range(n)]


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_reset_durations_read_and_written_like_openai():
    assert parse_duration("12ms") == pytest.approx(0.012)
    assert parse_duration("6m0s") == 360 and parse_duration("1h2m3.5s") == pytest.approx(3723.5)
    assert parse_duration("2.5") == 2.5 and parse_duration("soon") is None and parse_duration(None) is None
    for seconds in (0.12, 1.5, 59.0, 360.0):
        assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, rel=0.01)
    quota = ProviderQuota.from_headers({"x-ratelimit-limit-tokens": "100000", "x-ratelimit-remaining-tokens": "-1",
                                        "x-ratelimit-reset-tokens": "6m0s"})
    assert quota.limit_tokens == 100000 and quota.remaining_tokens is None and quota.reset_tokens_s == 360
    assert ProviderQuota.from_headers({"content-type": "x"}) is None


def test_aimd_window_one_decrease_per_round():
    clock = Clock()
    ctl = RateController(RateLimitConfig(), max_concurrency=16, clock=clock)
    old = Ticket(100, clock.t, 1, 100)
    clock.t += 1
    ctl.on_rate_limited(Ticket(100, clock.t, 2, 200), None, retry_after_s=2.0)
    assert ctl.window == 8 and ctl.paused_until == clock.t + 2.0
    ctl.on_rate_limited(old, None, None)                   # sent before the decrease: same round
    assert ctl.window == 8 and ctl.stats.rate_limited == 2 and ctl.stats.decreases == 1
    for _ in range(8):
        ctl.on_reply(Ticket(100, clock.t, 3, 300), None)
    assert 8.9 < ctl.window < 9.1                          # +1 per window of successes


def test_provider_headers_set_the_pace_and_a_shared_quota_decreases():
    clock = Clock()
    ctl = RateController(RateLimitConfig(tokens_per_minute=60_000), max_concurrency=8, clock=clock)
    assert ctl.tokens.rate == 1000
    t = Ticket(500, clock.t, 1, 500)
    ctl.sent_requests, ctl.sent_tokens = 3, 1500            # two more calls went out after it
    headers = {"x-ratelimit-limit-tokens": "30000", "x-ratelimit-remaining-tokens": "20000",
               "x-ratelimit-reset-tokens": "10s", "x-ratelimit-limit-requests": "600",
               "x-ratelimit-remaining-requests": "590", "x-ratelimit-reset-requests": "1s"}
    ctl.on_reply(t, headers)
    assert ctl.tokens.rate == 500                           # the provider's lower limit is adopted
    assert ctl.tokens.capacity == pytest.approx(25_000)     # remaining + reset * rate
    assert ctl.tokens.level == pytest.approx(19_000)        # its remaining less what we sent since
    assert ctl.requests.rate == 10 and ctl.window == 8      # no decrease: plenty left
    clock.t += 1
    low = {**headers, "x-ratelimit-remaining-tokens": "100"}
    ctl.on_reply(Ticket(500, clock.t, 4, 2000), low)        # near zero where we expected ~19k: shared
    assert ctl.window == 4 and ctl.stats.decreases == 1


def test_server_quota_admits_then_refuses_with_openai_headers():
    clock = Clock()
    quota = ServerQuota(requests_per_minute=120, tokens_per_minute=6000, window_s=10, clock=clock)
    ok, headers = quota.admit(400)
    assert ok and headers["x-ratelimit-remaining-tokens"] == "600" and headers["x-ratelimit-limit-requests"] == "120"
    assert parse_duration(headers["x-ratelimit-reset-tokens"]) == pytest.approx(4.0, rel=0.01)
    ok, headers = quota.admit(700)                          # 600 left
    assert not ok and float(headers["retry-after-ms"]) == pytest.approx(1000, abs=2)
    clock.t += 1.0                                          # 100 tokens a second refill
    assert quota.admit(700)[0]


def test_judge_run_paced_by_headers_gets_no_429(tmp_path):
    """No budget given: the client learns the limit from the headers; the server counts no 429."""
    with running_server(requests_per_minute=300, rate_window_s=1.0) as url:
        cfg = JudgeConfig(base_url=url, concurrency=16)
        results = judge_pairs(_items(12), cfg, tmp_path)
        with urllib.request.urlopen(url + "/medalign/rate") as reply:
            rate = json.loads(reply.read())
    assert all(r.status == "ok" for r in results)
    assert sum(s.get("rate_limited", 0) for s in rate["timeline"]) == 0
    assert sum(s.get("requests", 0) for s in rate["timeline"]) == 24
    run = json.loads((tmp_path / "judge_runs.jsonl").read_text().splitlines()[-1])
    assert run["rate"]["provider"]["limit_requests"] == 300


def test_batch_mode_fills_the_same_transcript_and_cache(tmp_path):
    items = _items(5)
    with running_server() as url:
        results = judge_pairs(items, JudgeConfig(base_url=url, mode="batch", batch={"poll_interval_s": 0.05}),
                              tmp_path)
        assert all(r.status == "ok" for r in results)
        rows = [json.loads(line) for line in (tmp_path / "transcripts.jsonl").read_text().splitlines()]
        assert len(rows) == 10 and all(r["attempts"][0]["batch_id"].startswith("batch_") for r in rows)
        state = json.loads(state_path(tmp_path, "rubric").read_text())["batches"]
        assert len(state) == 1 and state[0]["collected"] and state[0]["requests"] == 10
        online = judge_pairs(items, JudgeConfig(base_url=url), tmp_path / "online")
    assert [(r.score_a, r.score_b) for r in online] == [(r.score_a, r.score_b) for r in results]
    again = judge_pairs(items, JudgeConfig(base_url=url, cache_dir=str(tmp_path / "cache")), tmp_path / "third")
    assert all(r.status == "ok" for r in again)             # answered from the batch's cache entries


def test_batch_errors_are_api_errors_and_a_rerun_fills_them(tmp_path):
    items = _items(6)
    batch = {"poll_interval_s": 0.05}
    faulty = JudgeConfig(mode="batch", batch=batch, local={"faults": ["server_error"], "fault_rate": 0.5})
    first = judge_pairs(items, faulty, tmp_path)            # the local server (faults are not its identity)
    assert "api_error" in {r.status for r in first}
    rows = [json.loads(line) for line in (tmp_path / "transcripts.jsonl").read_text().splitlines()]
    failed = [r for r in rows if r["status"] == "api_error"]
    assert failed and all("HTTP 500" in r["error"] and r["error"].startswith("batch batch_") for r in failed)
    second = judge_pairs(items, JudgeConfig(mode="batch", batch=batch), tmp_path)
    assert all(r.status == "ok" for r in second)
    state = json.loads(state_path(tmp_path, "rubric").read_text())["batches"]
    assert len(state) == 2 and state[1]["requests"] == len(failed)   # only the failures sent again


def test_a_batch_the_provider_forgot_is_sent_again(tmp_path):
    path = state_path(tmp_path, "rubric")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"batches": [{"id": "batch_gone", "judgment_ids": ["x"], "collected": False}]}))
    with running_server() as url:
        results = judge_pairs(_items(2), JudgeConfig(base_url=url, mode="batch", batch={"poll_interval_s": 0.05}),
                              tmp_path)
    assert all(r.status == "ok" for r in results)
    gone, sent = json.loads(path.read_text())["batches"]
    assert gone["id"] == "batch_gone" and gone["collected"] and "unknown to the provider" in gone["status"]
    assert sent["collected"] and sent["requests"] == 4


CLIENT = textwrap.dedent('''
    import sys
    sys.path.insert(0, {tests!r})
    from test_rate_limit_batch import _items
    from judges.api import judge_pairs
    from judges.config import JudgeConfig
    judge_pairs(_items(4), JudgeConfig(base_url={url!r}, mode="batch", batch={{"poll_interval_s": 0.1}}), {store!r})
''')


def test_a_client_killed_while_its_batch_runs_resumes_the_same_batch(tmp_path):
    with running_server(batch_min_s=6.0) as url:
        script = CLIENT.format(tests=str(Path(__file__).parent), url=url, store=str(tmp_path))
        proc = subprocess.Popen([sys.executable, "-c", script], env=os.environ.copy(), start_new_session=True)
        path = state_path(tmp_path, "rubric")
        deadline = time.monotonic() + 60
        while not path.is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert path.is_file(), "the client saved no batch id"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        saved = json.loads(path.read_text())["batches"]
        assert len(saved) == 1 and not saved[0]["collected"]
        results = judge_pairs(_items(4), JudgeConfig(base_url=url, mode="batch", batch={"poll_interval_s": 0.1}),
                              tmp_path)
        with urllib.request.urlopen(url + "/medalign/stats") as reply:
            counters = json.loads(reply.read())
    assert all(r.status == "ok" for r in results)
    state = json.loads(path.read_text())["batches"]
    assert [b["id"] for b in state] == [saved[0]["id"]] and state[0]["collected"]
    assert counters["requests"] == 8                        # answered once: nothing was sent twice


def test_dry_run_prices_online_and_batch(tmp_path):
    import pandas as pd

    from judges.run_config import JudgeRunConfig, estimate
    from judges.tuples import load_tuples

    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt_id": f"p{i}", "messages": [{"role": "user", "content": "头痛怎么办"}],
                                        "chosen": "看神经内科。", "rejected": "多喝水。"}) + "\n" for i in range(3)))
    cfg = JudgeRunConfig(judges=[{"name": "gpt", "base_url": "https://api.openai.com/v1", "model": "gpt-4o",
                                  "price": {"input_per_mtok": 2.5, "output_per_mtok": 10.0,
                                            "batch_input_per_mtok": 1.25, "batch_output_per_mtok": 5.0}}],
                         input={"kind": "pairs", "path": str(data)}, output_dir=str(tmp_path / "out"))
    tuples, _ = load_tuples(cfg.input.path, "pairs")
    row = estimate(tuples, cfg)[0]
    assert row["cost_max_batch"] == pytest.approx(row["cost_max"] / 2)
    assert pd.isna(estimate(tuples, cfg.model_copy(update={"judges": [cfg.judges[0].model_copy(
        update={"price": cfg.judges[0].price.model_copy(update={"batch_input_per_mtok": None})})]}))[0]["cost_max_batch"])
