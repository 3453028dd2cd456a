"""Rank agreement of reward-model scores with ground-truth quality, computed by hand; the
ground-truth quality score; the binary RM's pairs; the rungs of held-out rankings."""

from __future__ import annotations

import math

import pytest

from alignment.evaluation.clinical import CaseCheck, QualityWeights, quality_score
from alignment.metrics.rank_agreement import agreement_table, kendall_tau_b, top_pick_quality
from alignment.stages.reward_model import RewardModelStageConfig, ranked_to_adjacent_pairs, training_curves
from alignment.stages.rm_agreement import rung_accuracy


def test_kendall_tau_b_by_hand():
    # 6 pairs: only (2, 3) is discordant -> (5 - 1) / 6
    assert kendall_tau_b([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # x ties its first two: 2 pairs not tied in x, 3 in y, both untied pairs concordant -> 2 / sqrt(6)
    assert kendall_tau_b([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))
    assert kendall_tau_b([3, 2, 1], [1, 2, 3]) == pytest.approx(-1.0)
    assert math.isnan(kendall_tau_b([1, 2, 3], [0.5, 0.5, 0.5]))   # constant quality: no tau
    assert math.isnan(kendall_tau_b([1], [1]))
    with pytest.raises(ValueError):
        kendall_tau_b([1, 2], [1, 2, 3])


def test_top_pick_takes_the_mean_of_tied_top_scores():
    assert top_pick_quality([0.1, 0.9, 0.3], [0.0, 0.5, 1.0]) == 0.5
    assert top_pick_quality([0.9, 0.9, 0.3], [0.0, 0.5, 1.0]) == 0.25


def test_agreement_figures_and_intervals_by_hand():
    """Two cases of three samples. Model ``a`` orders case 1 right and case 2 backwards; ``b`` is
    the truth. A bootstrap over two cases draws {1,1}, {1,2} or {2,2} with probabilities 1/4,
    1/2, 1/4, so the 95% interval of every figure is [the smallest, the largest] of the three."""
    quality = [[0.0, 0.5, 1.0], [0.0, 0.5, 1.0]]
    scores = {"a": [[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]], "b": [[0.0, 0.5, 1.0], [0.0, 0.5, 1.0]]}
    t = agreement_table(quality, scores, n_resamples=2000, seed=1)
    assert (t["cases"], t["samples"]) == (2, 6)
    a = t["models"]["a"]
    # pooled over both cases: score ranks [1.5 3.5 5.5 5.5 3.5 1.5], quality ranks [1.5 3.5 5.5 1.5 3.5 5.5],
    # covariance 0 -> rho 0; {1,1} alone -> 1, {2,2} alone -> -1
    assert a["spearman"] == {"value": pytest.approx(0.0, abs=1e-12), "ci_low": -1.0, "ci_high": 1.0}
    assert a["kendall_within_case"] == {"value": 0.0, "ci_low": -1.0, "ci_high": 1.0}
    assert a["cases_with_tau"] == 2
    # a keeps quality 1 in case 1 and 0 in case 2; a random pick keeps 0.5; the oracle 1
    assert a["top_pick_quality"] == {"value": 0.5, "ci_low": 0.0, "ci_high": 1.0}
    assert a["selection_gain"] == {"value": 0.0, "ci_low": -0.5, "ci_high": 0.5}
    assert t["mean_quality"] == {"value": 0.5, "ci_low": 0.5, "ci_high": 0.5}
    assert t["oracle_quality"] == {"value": 1.0, "ci_low": 1.0, "ci_high": 1.0}
    b = t["models"]["b"]
    assert b["spearman"]["value"] == pytest.approx(1.0) and b["top_pick_quality"]["value"] == 1.0
    # paired on the same draws: b - a is 0, 1 or 2 for spearman
    paired = t["paired"]["b minus a"]
    assert paired["spearman"]["value"] == pytest.approx(1.0)
    assert (paired["spearman"]["ci_low"], paired["spearman"]["ci_high"]) == (pytest.approx(0.0), pytest.approx(2.0))
    assert (paired["top_pick_quality"]["value"], paired["top_pick_quality"]["ci_low"],
            paired["top_pick_quality"]["ci_high"]) == (0.5, 0.0, 1.0)


def test_pooled_spearman_by_hand():
    # d = rank differences (0, 1, -1, 0): rho = 1 - 6 * 2 / (4 * 15) = 0.8
    t = agreement_table([[1.0, 2.0], [3.0, 4.0]], {"m": [[1.0, 3.0], [2.0, 4.0]]}, n_resamples=200)
    assert t["models"]["m"]["spearman"]["value"] == pytest.approx(0.8)


def test_agreement_table_refuses_mismatched_groups():
    with pytest.raises(ValueError, match="'m'"):
        agreement_table([[1.0, 0.0]], {"m": [[1.0, 0.0, 2.0]]})
    with pytest.raises(ValueError):
        agreement_table([], {})


def _check(**kw) -> CaseCheck:
    base = dict(diagnosis=None, department=None, asked=None, missing_info=False, red_flag=None, length=10)
    return CaseCheck(**{**base, **kw})


def test_quality_score_by_hand():
    # diagnosis right (0.4 x 1), department hedged (0.2 x 0.5), asked when info was missing (0.2 x 1)
    check = _check(diagnosis="right", department="hedged", asked=True, missing_info=True)
    assert quality_score(check) == pytest.approx((0.4 + 0.1 + 0.2) / 0.8)
    # asking a patient who left nothing out earns nothing; a red flag warned of earns its weight
    check = _check(diagnosis="wrong", asked=True, missing_info=False, red_flag=True)
    assert quality_score(check) == pytest.approx(0.2 / 0.8)
    assert quality_score(_check()) is None
    assert quality_score(_check(diagnosis="right"), QualityWeights(diagnosis=0)) is None


def test_binary_pairs_are_best_against_worst_of_the_same_ranking():
    row = {"prompt_id": "p", "messages": [{"role": "user", "content": "q"}],
           "responses": ["doc", "g4", "g35", "weak"], "ranks": [0, 1, 2, 3]}
    assert [(p["chosen"], p["rejected"]) for p in ranked_to_adjacent_pairs(row, "best_worst")] == [("doc", "weak")]
    assert len(ranked_to_adjacent_pairs(row, "adjacent")) == 3
    assert ranked_to_adjacent_pairs({**row, "ranks": [0, 0, 0, 0]}, "best_worst") == []


def test_rung_accuracy_names_rungs_by_source():
    t = {"ranks": [0, 1, 2], "response_sources": ["doctor", "gpt-4", "weak"]}
    # scores put gpt-4 above the doctor: doctor>gpt-4 wrong, gpt-4>weak and doctor>weak right
    acc = rung_accuracy([t, t], [[1.0, 2.0, 0.0], [1.0, 2.0, 0.0]], n_bootstrap=200, seed=0)
    assert acc["doctor>gpt-4"]["value"] == 0.0 and acc["doctor>gpt-4"]["n"] == 2
    assert acc["gpt-4>weak"]["value"] == 1.0 and acc["doctor>weak"]["value"] == 1.0
    assert acc["adjacent"]["value"] == 0.5 and acc["adjacent"]["n"] == 4
    assert acc["best_worst"]["value"] == 1.0 and acc["best_worst"]["n"] == 2
    unnamed = rung_accuracy([{"ranks": [0, 1]}], [[0.0, 1.0]], n_bootstrap=200, seed=0)
    assert unnamed["rank0>rank1"]["value"] == 0.0
    tied = rung_accuracy([{"ranks": [0, 1]}], [[1.0, 1.0]], n_bootstrap=200, seed=0)
    assert tied["rank0>rank1"]["value"] == 0.5                     # a tie counts half, as in training


def test_training_curves_from_a_log_history():
    history = [{"step": 0, "eval_loss": 0.69, "eval_accuracy": 0.5}, {"step": 10, "loss": 0.6, "accuracy": 0.7},
               {"step": 10, "eval_loss": 0.5, "eval_accuracy": 0.8}, {"train_runtime": 3.0, "step": 10}]
    train, held = training_curves(history)
    assert train == [{"step": 10, "loss": 0.6, "accuracy": 0.7}]
    assert [h["step"] for h in held] == [0, 10] and held[1]["accuracy"] == 0.8


def test_heldout_curves_are_for_the_pairwise_loss_only():
    with pytest.raises(ValueError, match="eval_every_steps"):
        RewardModelStageConfig(loss="listwise", eval_every_steps=10)
