"""Bradley-Terry on a hand-computed example; the referee's tables on hand-made judge results."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alignment.evaluation.cases import Case
from alignment.evaluation.leaderboard import bradley_terry, leaderboard, win_matrix
from alignment.evaluation.referee import case_outcomes, model_pairs, referee_items, summarise_pair
from judges.api import Comparison, PairItem, PairResult

# Strengths 4 : 2 : 1 predict P(A>B) = 2/3, P(A>C) = 4/5, P(B>C) = 2/3. With 3, 5 and 3 games and
# exactly those shares of wins, every model's wins equal their expected count: the likelihood's
# stationary point, so the MLE is (4, 2, 1) up to scale: log strengths (ln 2, 0, -ln 2) centred.
GAMES = [(0, 1, 1.0)] * 2 + [(0, 1, 0.0)] + [(0, 2, 1.0)] * 4 + [(0, 2, 0.0)] + [(1, 2, 1.0)] * 2 + [(1, 2, 0.0)]


def test_bradley_terry_recovers_the_hand_computed_strengths():
    s = bradley_terry(*win_matrix(3, GAMES))
    assert s == pytest.approx([math.log(2), 0.0, -math.log(2)], abs=1e-9)


def test_two_models_and_ties():
    # 3 wins, 1 loss, 2 ties: 4 of 6 points -> p_a / p_b = 4 / 2 -> strengths +-ln(2)/2
    s = bradley_terry(*win_matrix(2, [(0, 1, 1.0)] * 3 + [(0, 1, 0.0)] + [(0, 1, 0.5)] * 2))
    assert s == pytest.approx([math.log(2) / 2, -math.log(2) / 2], abs=1e-9)


def test_the_prior_keeps_an_unbeaten_model_finite_and_the_board_has_intervals():
    cases = [[(0, 1, 1.0)] for _ in range(8)]                      # A always wins
    assert np.all(np.isfinite(bradley_terry(*win_matrix(2, [c[0] for c in cases]), prior=1.0)))
    rows = leaderboard(["a", "b"], cases, prior=1.0, n_bootstrap=200)
    # 8 wins + 0.5 virtual over 9 games: p_a/p_b = 8.5/0.5 = 17
    assert rows[0]["model"] == "a" and rows[0]["strength"] == pytest.approx(math.log(17) / 2, abs=1e-6)
    assert rows[0]["ci_low"] <= rows[0]["strength"] <= rows[0]["ci_high"]
    assert (rows[0]["games"], rows[0]["wins"], rows[1]["losses"]) == (8, 8, 8)
    assert rows[0]["elo"] == pytest.approx(1000 + 400 / math.log(10) * rows[0]["strength"])


def _case(i: int, category: str, eval_set: str = "s") -> Case:
    return Case(f"c{i}", eval_set, "zh", [{"role": "user", "content": f"q{i}"}], category, None, None, None, None)


def _result(a: float | None, b: float | None, status: str = "ok", flags: list[str] | None = None) -> PairResult:
    item = PairItem("p", [], "q", None, "x#a", "x", "x#b", "y")
    comps = [Comparison("j1", "ab", 0, status, a, b, flags or []), Comparison("j2", "ba", 0, status, a, b)]
    return PairResult(item, status, a, b, True, ["j1", "j2"], "referee", comps)


def test_referee_tables_per_category_ratio_and_exclusions():
    cases = [_case(0, "治疗方案"), _case(1, "治疗方案"), _case(2, "病情诊断"), _case(3, "病情诊断"), _case(4, "病情诊断")]
    results = [_result(8, 6), _result(6, 6), _result(4, 8), _result(None, None, "parse_error"),
               _result(9, 1, flags=["candidate_rating_statement"])]
    s = summarise_pair(cases, results, tie_tolerance=0.0, n_bootstrap=200, seed=0)
    assert s["excluded"] == {"status:parse_error": 1, "flagged": 1} and s["judged"] == 5
    o = s["overall"]
    assert (o["n"], o["wins"], o["ties"], o["losses"]) == (3, 1, 1, 1)
    assert o["mean_a"] == 6.0 and o["mean_b"] == pytest.approx(20 / 3)
    assert o["performance_ratio"] == pytest.approx(18 / 20)            # sum A / sum B = mean A / mean B
    assert o["win_rate"] == 0.5 and o["win_share"]["value"] == pytest.approx(1 / 3)
    cats = s["sets"]["s"]["by_category"]
    assert cats["治疗方案"]["mean_a"] == 7.0 and cats["治疗方案"]["performance_ratio"] == pytest.approx(14 / 12)
    assert cats["病情诊断"]["n"] == 1 and cats["病情诊断"]["losses"] == 1
    with_flagged = summarise_pair(cases, results, 0.0, 200, 0, include_flagged=True)
    assert with_flagged["overall"]["n"] == 4 and with_flagged["excluded"] == {"status:parse_error": 1}


def test_pairs_items_and_case_outcomes():
    assert model_pairs(["a", "b", "c"], "all", None) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert model_pairs(["a", "b", "c"], "baseline", "b") == [("a", "b"), ("c", "b")]
    cases = [_case(0, "x"), _case(1, "y", "t")]
    items = referee_items(cases, {"a": ["ra0", "ra1"], "b": ["rb0", "rb1"]}, [("a", "b")])
    assert [(i.prompt_id, i.a_id, i.b_text, i.tags) for i in items] == [
        ("s/c0", "s/c0#a", "rb0", {"eval_set": "s", "category": "x"}),
        ("t/c1", "t/c1#a", "rb1", {"eval_set": "t", "category": "y"})]
    outcomes = case_outcomes(cases, {("a", "b"): [_result(7, 5), _result(None, None, "api_error")]}, ["a", "b"], 0.0)
    assert outcomes == [[(0, 1, 1.0)], []]
