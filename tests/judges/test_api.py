"""judge_pairs from threads and running loops, soft scores, single-answer templates, no ray."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

from judges.api import judge_pairs, judge_pairs_multi
from judges.config import DecodingConfig, JudgeConfig
from judges.transcripts import read_rows


def test_from_a_thread_and_from_inside_a_running_loop(tmp_path, pair_items):
    items = pair_items(2)
    box = {}
    t = threading.Thread(target=lambda: box.update(r=judge_pairs(items, JudgeConfig(), tmp_path / "t")))
    t.start()
    t.join(timeout=120)
    assert [r.status for r in box["r"]] == ["ok", "ok"]

    async def notebook_cell():
        return judge_pairs(items, JudgeConfig(), tmp_path / "loop")

    results = asyncio.run(notebook_cell())
    assert [(r.score_a, r.score_b) for r in results] == [(r.score_a, r.score_b) for r in box["r"]]
    assert all(r.score_a > r.score_b and r.consistent for r in results)   # hybrid beats weak


def test_soft_scores_from_logprobs(tmp_path, pair_items):
    cfg = JudgeConfig(decoding=DecodingConfig(logprobs=True, top_logprobs=5))
    results = judge_pairs(pair_items(2), cfg, tmp_path)
    rows = read_rows(tmp_path / "transcripts.jsonl")
    for row in rows:
        assert row["soft_scores"] is not None
        assert abs(row["soft_scores"]["A"] - row["scores"]["A"]) <= 1.0
    assert all(r.status == "ok" for r in results)
    soft = judge_pairs(pair_items(2), cfg.model_copy(update={"soft_scores": True}), tmp_path)
    assert [r.score_a for r in soft] != [r.score_a for r in results]      # not the integers
    assert all(abs(s.score_a - r.score_a) <= 1.0 for s, r in zip(soft, results))


def test_single_answer_template_rates_each_response_once(tmp_path, pair_items):
    items = pair_items(2, a_style="hybrid", b_style="weak") + pair_items(2, a_style="hybrid",
                                                                          b_style="distilled")
    results, stats = judge_pairs_multi(items, [JudgeConfig(template="single_rubric")], tmp_path)
    assert stats[0].planned == 6                           # 2 prompts x 3 distinct responses
    rows = read_rows(tmp_path / "transcripts.jsonl")
    assert all(r["order"] == "single" and r["details"]["overall"] == r["scores"]["A"] for r in rows)
    for r in results["rubric"]:
        assert r.status == "ok" and r.consistent is None and r.score_a > r.score_b


def test_judges_package_does_not_import_ray():
    code = ("import sys, judges.api, judges.stage, judges.cli, judges.server, judges.audit, "
            "judges.pipeline; assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
