"""The judge stage end to end on a small samples.parquet, an ensemble, and resume."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from judges import stage
from judges.config import JudgeConfig, LocalServerOptions
from judges.pipeline import RankingConfig, pairs_to_judge
from judges.transcript_verify import verify_transcript
from judges.transcripts import read_rows
from medalign.stage import StageContext

BAD_ROWS = [
    {"prompt_id": "bad1", "messages": [{"role": "assistant", "content": "hi"}], "reference": None,
     "language": "en", "responses": ["a", "b"], "response_ids": ["bad1#0", "bad1#1"], "policy": "x"},
    {"prompt_id": "bad2", "messages": [{"role": "user", "content": "hi"}], "reference": None,
     "language": "en", "responses": ["a", "b"], "response_ids": ["bad2#0"], "policy": "x"},
]


def _ctx():
    return StageContext(stage="judge", progress=False)


@pytest.mark.slow
def test_judge_stage_end_to_end_and_rerun(tmp_path, samples_dir):
    src = samples_dir(6, extra_rows=BAD_ROWS)
    out = tmp_path / "judge"
    metrics = stage.run(stage.Config(), {"samples": str(src)}, out, _ctx())
    assert metrics["prompts"] == 6 and metrics["quarantined"] == 2
    assert metrics["judgments"] == 72 and metrics["calls"] == 72 and metrics["ok_fraction"] == 1.0
    assert metrics["swap_consistency"] == 1.0 and metrics["first_position_win_rate"] == 0.5
    assert set(metrics) >= {"calls", "ok_fraction", "swap_consistency", "pairs"}
    quarantine = [json.loads(x) for x in (out / "quarantine.jsonl").read_text().splitlines()]
    assert [q["row"] for q in quarantine] == [7, 8] and "user turn" in quarantine[0]["reason"]

    assert verify_transcript(out / "transcripts.jsonl").ok
    scores = pq.read_table(out / "scores.parquet").to_pylist()
    assert len(scores) == 24 and all(s["comparisons"] == 6 for s in scores)
    ranked = pq.read_table(out / "ranked.parquet")
    assert {"prompt_id", "messages", "responses", "scores", "ranks"} <= set(ranked.column_names)
    # index 2 is the hybrid answer, 3 the weak one (see conftest: one response per style)
    rows = ranked.to_pylist()
    assert sum(r["ranks"][2] == 0 for r in rows) >= 5
    assert sum(r["ranks"][3] == max(r["ranks"]) for r in rows) >= 5
    pairs = pq.read_table(out / "pairs.parquet")
    assert {"prompt_id", "messages", "chosen", "rejected", "chosen_score", "rejected_score",
            "margin"} <= set(pairs.column_names)
    assert pairs.num_rows == metrics["pairs"] > 0
    assert all(p["margin"] > 0 and p["chosen_score"] > p["rejected_score"] for p in pairs.to_pylist())
    report = json.loads((out / "judge_report.json").read_text())
    assert report["status_counts"] == {"ok": 72} and report["audit"]["judges"]["rubric"]

    again = stage.run(stage.Config(), {"samples": str(src)}, out, _ctx())
    assert again["calls"] == 0 and again["ok_fraction"] == 1.0
    assert len(read_rows(out / "transcripts.jsonl")) == 72
    assert pq.read_table(out / "pairs.parquet").equals(pairs)


@pytest.mark.slow
def test_ensemble_with_a_biased_judge_reports_agreement(tmp_path, samples_dir):
    src = samples_dir(4)
    cfg = stage.Config(
        judges=[JudgeConfig(name="rubric"),
                JudgeConfig(name="biased", local=LocalServerOptions(position_bias=2.5, noise_std=1.5,
                                                                   noise_seed=7)),
                JudgeConfig(name="verdict", template="verdict_pairwise")],
        ranking=RankingConfig(pairing="round_robin", pair_mode="best_vs_worst"))
    out = tmp_path / "judge"
    metrics = stage.run(cfg, {"samples": str(src)}, out, _ctx())
    assert metrics["judgments"] == 3 * 4 * 4 * 2               # judges x prompts x pairs x orders
    audit = json.loads((out / "judge_report.json").read_text())["audit"]
    assert audit["judges"]["biased"]["first_position_win_rate"] > 0.6
    assert audit["judges"]["rubric"]["first_position_win_rate"] == 0.5
    assert audit["judges"]["biased"]["swap_consistency"] < 1.0
    inter = audit["inter_judge"]
    assert set(inter["kappa"]) == {"biased vs rubric", "biased vs verdict", "rubric vs verdict"}
    k = inter["kappa"]["rubric vs verdict"]
    assert k["ci95"][0] <= k["kappa"] <= k["ci95"][1]
    assert inter["alpha_ordinal"]["units"] == 16


def test_round_robin_pairs():
    assert pairs_to_judge(4, RankingConfig()) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert pairs_to_judge(4, RankingConfig(pairing="round_robin")) == [(0, 1), (0, 3), (1, 2), (2, 3)]
    assert len(pairs_to_judge(5, RankingConfig(pairing="round_robin", round_robin_rounds=2))) == 10


def test_stage_needs_its_input(tmp_path):
    with pytest.raises(ValueError, match="samples"):
        stage.run(stage.Config(), {}, tmp_path, _ctx())
    with pytest.raises(FileNotFoundError, match="samples.parquet"):
        stage.run(stage.Config(), {"samples": str(tmp_path)}, tmp_path / "o", _ctx())
