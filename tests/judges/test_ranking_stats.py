"""Ranking with ties, pair extraction, both-order assembly, and the statistics by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from judges.api import Comparison, PairItem, PairResult, assemble
from judges.engine import Judgment
from judges.ranking import (comparison_counts, dense_ranks, exclusion, extract_pairs,
                            response_evidence, response_scores, source_ranks)
from judges.stats import (average_ranks, bootstrap_ci, cohen_kappa, krippendorff_alpha, pearson,
                          spearman)


def test_dense_ranks_keep_ties():
    assert dense_ranks([7, 9, 7, 3]) == [1, 0, 1, 2]
    assert dense_ranks([5.0, 5.0]) == [0, 0]
    assert dense_ranks([8.0, 7.9, 5.0], tie_tolerance=0.2) == [0, 0, 1]


def test_source_ranks_chimed_order():
    order = ["doctor", "gpt-4", "gpt-3.5", "weak"]
    assert source_ranks(["weak", "doctor", "gpt-3.5", "gpt-4"], order) == [3, 0, 2, 1]
    assert source_ranks(["weak", "doctor"], order) == [1, 0]          # dense: no gaps
    with pytest.raises(ValueError, match="bard"):
        source_ranks(["bard", "doctor"], order)


def test_extract_pairs_modes_and_margins():
    ranks, scores = [1, 0, 1, 2], [7.0, 9.0, 7.0, 3.0]
    adjacent, _ = extract_pairs(ranks, scores, "adjacent")
    assert {(p.chosen, p.rejected) for p in adjacent} == {(1, 0), (1, 2), (0, 3), (2, 3)}
    every, _ = extract_pairs(ranks, scores, "all")
    assert len(every) == 5                                  # the tied pair (0, 2) is not a pair
    bvw, _ = extract_pairs(ranks, scores, "best_vs_worst")
    assert [(p.chosen, p.rejected, p.margin) for p in bvw] == [(1, 3, 6.0)]
    kept, dropped = extract_pairs(ranks, scores, "all", min_margin=3.0)
    assert dropped == 2 and all(p.margin >= 3.0 for p in kept)
    no_scores, _ = extract_pairs([0, 1, 2], None, "all")
    assert sorted(p.margin for p in no_scores) == [1.0, 1.0, 2.0]


def _judgment(jid, order, positions):
    return Judgment(jid, "p", positions, order, 0, "en", [], "k")


def test_both_orders_assembly_and_scores():
    item = PairItem("p", [], "q", "r", "x", "tx", "y", "ty")
    js = [_judgment("j1", "ab", {"A": "x", "B": "y"}), _judgment("j2", "ba", {"A": "y", "B": "x"})]
    latest = {"j1": {"status": "ok", "scores": {"A": 8.0, "B": 4.0}},
              "j2": {"status": "ok", "scores": {"A": 6.0, "B": 5.0}}}      # y first: y=6, x=5
    r = assemble(item, js, latest, "rubric")
    assert r.status == "ok" and r.score_a == pytest.approx(6.5) and r.score_b == pytest.approx(5.0)
    assert r.consistent is False                             # x won in ab, lost in ba
    latest["j2"] = {"status": "parse_error", "scores": None}
    r = assemble(item, js, latest, "rubric")
    assert r.status == "parse_error" and r.score_a == 8.0 and r.consistent is None
    r = assemble(item, js, {}, "rubric")
    assert r.status == "not_run" and r.score_a is None


def test_response_scores_use_only_reward_comparisons():
    def result(a, b, comps):
        return PairResult(PairItem("p", [], "q", None, a, "", b, ""), "ok", None, None, None, [],
                          comparisons=comps)
    half = result("x", "y", [Comparison("1", "ab", 0, "ok", 8.0, 2.0),
                             Comparison("2", "ba", 0, "api_error", None, None)])
    whole = result("x", "z", [Comparison("3", "ab", 0, "ok", 6.0, 6.0),
                              Comparison("4", "ba", 0, "ok", 4.0, 5.0)])
    flagged = result("w", "z", [Comparison("5", "ab", 0, "ok", 1.0, 10.0, ["parroted_candidate"]),
                                Comparison("6", "ba", 0, "ok", 3.0, 7.0)])
    results = [half, whole, flagged]
    # by default only pairs with every order ok and no flag count
    assert [exclusion(r) for r in results] == ["half_judged", None, "flagged"]
    assert response_scores(results) == {"x": 5.0, "z": 5.5}
    assert comparison_counts(results) == {"x": 2, "z": 2}
    evidence = response_evidence(results)
    assert evidence["x"].judgment_ids == ["3", "4"]
    # configurable: the ok order of a half-judged pair, and the unflagged order of a flagged one
    loose = response_scores(results, require_both_orders=False)
    assert loose == {"x": pytest.approx(6.0), "y": 2.0, "z": pytest.approx(6.0), "w": 3.0}
    assert response_scores(results, exclude_flagged=False)["w"] == 2.0


def test_cohen_kappa_by_hand():
    # table [[2, 0], [1, 2]] over 5 items: p_o = 4/5, p_e = (2/5)(3/5) + (3/5)(2/5) = 12/25
    a, b = [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]
    assert cohen_kappa(a, b) == pytest.approx((0.8 - 12 / 25) / (1 - 12 / 25))
    assert cohen_kappa([1, 0, 1], [1, 0, 1]) == pytest.approx(1.0)
    assert math.isnan(cohen_kappa([1, 1], [1, 1]))


def test_krippendorff_alpha_published_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", 4 observers x 12 units
    n = np.nan
    data = [[1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
            [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
            [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
            [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n]]
    assert krippendorff_alpha(data, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(data, "ordinal") == pytest.approx(0.815, abs=5e-4)
    assert krippendorff_alpha(data, "interval") == pytest.approx(0.849, abs=5e-4)


def test_krippendorff_alpha_two_raters_by_hand():
    # units (1,1), (2,3): coincidences o11=2, o23=o32=1; n=4, n1=2, n2=1, n3=1
    # interval: D_o = (1*1 + 1*1)/4 = 0.5; D_e = (2*1*1 + 2*1*4 + 1*1*1) * 2 / (4*3) = 11/6
    alpha = krippendorff_alpha([[1, 2], [1, 3]], "interval")
    assert alpha == pytest.approx(1 - 0.5 / (11 / 6))


def test_correlations_by_hand():
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(0.99339927, abs=1e-8)
    assert list(average_ranks([10, 20, 20, 5])) == [2.0, 3.5, 3.5, 1.0]
    # d = [0, 1, -1, 0] -> rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)


def test_bootstrap_interval_brackets_the_mean():
    units = list(range(1, 21))
    lo, hi = bootstrap_ci(units, lambda s: float(np.mean(s)), n_resamples=500, seed=1)
    assert lo < 10.5 < hi and 6 < lo and hi < 15
    assert all(math.isnan(v) for v in bootstrap_ci([], lambda s: 0.0))
