"""Routing and recommendation metrics on cases computed by hand: top-k, the confusion table,
the paired gain, TF-IDF retrieval, the department a reply names."""

from __future__ import annotations

import math

import pytest

from alignment.routing.metrics import confusion_table, mean_with_interval, paired_gain, top_k_accuracy, top_k_hits
from alignment.routing.policy import routed_department
from alignment.routing.retrieval import TfidfIndex, char_ngrams

RANKED = [["a", "b", "c"], ["b", "a", "c"], ["c", "b", "a"], ["a", "c", "b"]]
GOLD = ["a", "a", "a", "b"]


def test_top_k_hits_by_hand():
    # case 1: a first; case 2: a second; case 3: a third; case 4: b third
    assert top_k_hits(RANKED, GOLD, 1) == [1.0, 0.0, 0.0, 0.0]
    assert top_k_hits(RANKED, GOLD, 2) == [1.0, 1.0, 0.0, 0.0]
    assert top_k_hits(RANKED, GOLD, 3) == [1.0, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError):
        top_k_hits(RANKED, GOLD[:2], 1)


def test_top_k_accuracy_and_its_interval():
    acc = top_k_accuracy(RANKED, GOLD, ks=(1, 2, 3), n_resamples=500, seed=0)
    assert [acc[f"top{k}"]["accuracy"] for k in (1, 2, 3)] == [0.25, 0.5, 1.0]
    assert acc["top3"]["ci_low"] == acc["top3"]["ci_high"] == 1.0       # every resample is all hits
    assert 0.0 <= acc["top1"]["ci_low"] <= 0.25 <= acc["top1"]["ci_high"] <= 1.0
    assert acc["top1"]["n"] == 4
    assert mean_with_interval([]) == {"accuracy": None, "ci_low": None, "ci_high": None, "n": 0}


def test_confusion_table_by_hand():
    table = confusion_table(["a", "a", "a", "b", "c"], ["a", "b", "a", "b", "b"])
    assert table["labels"] == ["a", "b", "c"]                            # by support, then name
    assert table["matrix"] == [[2, 1, 0], [0, 1, 0], [0, 1, 0]]
    a, b, c = (table["per_label"][x] for x in "abc")
    assert (a["support"], a["correct"], a["recall"], a["precision"]) == (3, 2, 2 / 3, 1.0)
    assert (b["support"], b["predicted"], b["recall"], b["precision"]) == (1, 3, 1.0, 1 / 3)
    assert (c["recall"], c["precision"]) == (0.0, None)                  # never predicted: no precision
    # a prediction outside the given labels lands in no column
    assert confusion_table(["a"], ["z"], labels=["a"])["matrix"] == [[0]]


def test_paired_gain_by_hand():
    base, cand = [1, 0, 0, 1, 0], [1, 1, 0, 1, 1]
    gain = paired_gain(base, cand, n_resamples=1000, seed=0)
    assert (gain["baseline"], gain["candidate"], gain["gain"]) == (0.4, 0.8, pytest.approx(0.4))
    assert (gain["candidate_only"], gain["baseline_only"], gain["n"]) == (2, 0, 5)
    assert 0.0 <= gain["ci_low"] <= 0.4 <= gain["ci_high"] <= 0.8        # differences are 0 or +1
    same = paired_gain([1, 0, 1], [1, 0, 1])
    assert same["gain"] == same["ci_low"] == same["ci_high"] == 0.0


def test_char_ngrams_and_tfidf_by_hand():
    assert char_ngrams("Ab c", 1, 2) == {"a": 1, "b": 1, "c": 1, "ab": 1, "bc": 1}
    index = TfidfIndex(["ab", "bc"], n_min=1, n_max=1)
    # df: a 1, b 2, c 1; idf = ln(3/2)+1 for a and c, ln(3/3)+1 = 1 for b
    idf_rare = math.log(3 / 2) + 1
    doc = [idf_rare, 1.0]                                  # document "ab": (a, b)
    cos = (1.0 * 1.0) / math.hypot(*doc)                   # query "b": (b) only
    assert index.scores("b") == pytest.approx([cos, cos])
    assert index.rank("a") == [0, 1] and index.rank("c") == [1, 0]
    assert index.rank("zz") == [0, 1]                      # nothing known: ties keep document order
    assert index.scores("zz") == [0.0, 0.0]


def test_tfidf_ranks_the_profile_that_shares_the_words():
    index = TfidfIndex(["皮肤科主任医师，擅长湿疹、荨麻疹", "骨科医师，擅长腰椎间盘突出症、腰痛"])
    assert index.rank("手臂起湿疹，很痒") == [0, 1]
    assert index.rank("腰痛两周，坐久了更痛") == [1, 0]


@pytest.mark.parametrize("reply, gold, correct, named", [
    ("考虑偏头痛，建议神经内科就诊。", "神经内科", True, "neurology"),
    ("建议先去消化内科，不行再看神经内科。", "神经内科", False, "gastroenterology"),   # several: not routed
    ("建议神经内科就诊，也可以看消化内科。", "神经内科", False, "neurology"),        # gold first, then another
    ("多喝水，注意休息。", "神经内科", False, None),
    ("Please see neurology.", "neurology", True, "neurology"),
])
def test_a_reply_routes_when_it_names_the_gold_department_alone(reply, gold, correct, named):
    verdict = routed_department(reply, gold)
    assert (verdict["correct"], verdict["named"]) == (correct, named)


def test_a_gold_department_outside_the_lexicon_is_found_by_its_name():
    verdict = routed_department("建议去康复医学部看看。", "康复医学部")
    assert verdict == {"correct": True, "outcome": "right", "named": None, "gold_key": None, "gold_anywhere": True}
    assert not routed_department("先去神经内科，再去康复医学部。", "康复医学部")["correct"]
