"""Cache keys, cache hits across stores, budget stops, and resume without duplicates."""

from __future__ import annotations

import pytest

from judges.api import judge_pairs, judge_pairs_multi, plan_judgments
from judges.budget import Budget, estimate_tokens
from judges.cache import CompletionCache, cache_key
from judges.config import BudgetConfig, JudgeConfig, PriceConfig
from judges.templates import load_template
from judges.transcript_verify import verify_transcript
from judges.transcripts import read_rows

BASE = dict(messages=[{"role": "user", "content": "hi"}], endpoint="local:x", model="m",
            decoding={"temperature": 0.0, "top_p": 1.0, "max_tokens": 256}, template_hash="t1",
            parser_version="1", seed=0, sample_index=0)


@pytest.mark.parametrize("part, value", [
    ("messages", [{"role": "user", "content": "hi!"}]),
    ("endpoint", "https://api.example.com/v1"),
    ("model", "m2"),
    ("decoding", {"temperature": 0.0, "top_p": 0.9, "max_tokens": 256}),
    ("decoding", {"temperature": 0.0, "top_p": 1.0, "max_tokens": 257}),
    ("template_hash", "t2"),
    ("parser_version", "2"),
    ("seed", 1),
    ("sample_index", 1),
])
def test_changing_any_key_part_misses(part, value):
    assert cache_key(**BASE) == cache_key(**dict(BASE))
    assert cache_key(**{**BASE, part: value}) != cache_key(**BASE)


def test_cache_file_survives_a_partial_line(tmp_path):
    cache = CompletionCache(tmp_path)
    cache.put("k1", {"completion": "Rating A: 1; Rating B: 2"})
    cache.close()
    with open(tmp_path / "completions.jsonl", "a") as f:
        f.write('{"key": "k2", "compl')                    # a writer killed mid-line
    cache = CompletionCache(tmp_path)
    assert cache.get("k1") and cache.unreadable_lines == 1
    cache.put("k3", {"completion": "x"})
    cache.close()
    again = CompletionCache(tmp_path)
    assert again.get("k3") and again.get("k1") and again.unreadable_lines == 1
    again.close()


def test_shared_cache_serves_a_new_store_and_a_template_change_misses(tmp_path, pair_items):
    items = pair_items(3)
    cache = str(tmp_path / "shared_cache")
    first = judge_pairs(items, JudgeConfig(cache_dir=cache), tmp_path / "a")
    results, stats = judge_pairs_multi(items, [JudgeConfig(cache_dir=cache)], tmp_path / "b")
    assert stats[0].api_calls == 0 and stats[0].cache_hits == 6
    rows = read_rows(tmp_path / "b" / "transcripts.jsonl")
    assert all(r["cache_hit"] and r["status"] == "ok" for r in rows)
    assert [(r.score_a, r.score_b) for r in results["rubric"]] == [(r.score_a, r.score_b) for r in first]
    _, stats = judge_pairs_multi(items, [JudgeConfig(cache_dir=cache, template="verdict_pairwise")],
                                 tmp_path / "c")
    assert stats[0].api_calls == 6 and stats[0].cache_hits == 0


def test_budget_stops_cleanly_and_the_next_run_continues(tmp_path, pair_items):
    items = pair_items(4)                                   # 8 judgments
    cfg = JudgeConfig(concurrency=2, budget=BudgetConfig(max_calls=3))
    results, stats = judge_pairs_multi(items, [cfg], tmp_path)
    assert stats[0].api_calls == 3 and stats[0].not_run == 5
    assert "max_calls" in stats[0].budget_stopped
    assert len(read_rows(tmp_path / "transcripts.jsonl")) == 3
    statuses = [r.status for r in results["rubric"]]
    assert "not_run" in statuses
    assert all(r.score_a is None for r in results["rubric"] if not r.comparisons or
               all(c.status != "ok" for c in r.comparisons))
    results, stats = judge_pairs_multi(items, [JudgeConfig(concurrency=2)], tmp_path)
    assert stats[0].api_calls == 5 and stats[0].already_done == 3
    rows = read_rows(tmp_path / "transcripts.jsonl")
    assert len(rows) == 8 and len({r["judgment_id"] for r in rows}) == 8
    assert all(r.status == "ok" for r in results["rubric"])
    assert verify_transcript(tmp_path / "transcripts.jsonl").ok


def test_token_budget(tmp_path, pair_items):
    items = pair_items(3)
    cfg = JudgeConfig(concurrency=1)
    judgments, _ = plan_judgments(items, cfg, load_template(cfg.template))
    worst = max(estimate_tokens(j.messages) for j in judgments) + cfg.decoding.max_tokens
    limit = 2 * worst                                       # room for two worst-case calls
    cfg = JudgeConfig(concurrency=1, budget=BudgetConfig(max_tokens=limit))
    _, stats = judge_pairs_multi(items, [cfg], tmp_path)
    assert 2 <= stats[0].api_calls < 6 and stats[0].budget_stopped.startswith("max_tokens")
    assert stats[0].prompt_tokens + stats[0].completion_tokens <= limit
    assert stats[0].not_run == 6 - stats[0].api_calls


def test_budget_reservations_never_pass_a_cost_limit():
    price = PriceConfig(input_per_mtok=1_000_000.0, output_per_mtok=2_000_000.0)  # $1 / $2 a token
    budget = Budget(BudgetConfig(max_cost=100.0), price)
    r1 = budget.try_reserve(10, 20)                         # worst case 10 + 40 = 50
    r2 = budget.try_reserve(10, 20)                         # 100 reserved: still allowed
    assert r1 and r2 and budget.try_reserve(1, 0) is None and "max_cost" in budget.stopped
    assert budget.settle(r1, 10, 5) == pytest.approx(20.0)  # actual: 10 + 10
    assert budget.cost == pytest.approx(20.0)
    assert budget.settle(r2, None, None) is not None        # unknown usage counts the reservation
    assert budget.cost == pytest.approx(70.0)


def test_resume_with_more_items_judges_only_the_new_ones(tmp_path, pair_items):
    items = pair_items(5)
    judge_pairs(items[:2], JudgeConfig(), tmp_path)
    results, stats = judge_pairs_multi(items, [JudgeConfig()], tmp_path)
    assert stats[0].already_done == 4 and stats[0].api_calls == 6
    rows = read_rows(tmp_path / "transcripts.jsonl")
    assert len(rows) == 10 and len({r["judgment_id"] for r in rows}) == 10
    assert all(r.status == "ok" for r in results["rubric"])
