"""Metric functions against values computed by hand."""

from __future__ import annotations

import math

import pytest

from alignment.metrics import (bootstrap_ci, corpus_bleu, corpus_gleu, detect_language, distinct_n,
                               pairwise_outcome, reference_metrics, rouge_l, rouge_n, text_tokens, win_rate)


def test_tokens_chars_for_chinese_words_for_english():
    assert text_tokens("头痛三天了, Any fever?") == ["头", "痛", "三", "天", "了", "any", "fever"]
    assert text_tokens("Don't panic: 38.5 C") == ["don't", "panic", "38", "5", "c"]
    assert text_tokens(None) == [] and text_tokens("？！，") == []
    assert detect_language("医生您好，我头痛") == "zh" and detect_language("I have a headache") == "en"


def test_bleu_by_hand():
    # p1 = 3/3, c = 3 < r = 6 -> BP = exp(1 - 6/3)
    assert corpus_bleu(["the cat sat"], ["the cat sat on the mat"], 1) == pytest.approx(math.exp(-1))
    assert corpus_bleu(["the cat sat"], ["the cat sat on the mat"], 2) == pytest.approx(math.exp(-1))
    # clipping: 'the' counted at most once; c = 3 >= r = 2 -> BP = 1
    assert corpus_bleu(["the the the"], ["the cat"], 1) == pytest.approx(1 / 3)
    # chinese characters: p1 = 2/2, p2 = 1/1, BP = exp(1 - 4/2)
    assert corpus_bleu(["头痛"], ["头痛发烧"], 2) == pytest.approx(math.exp(-1))
    # no 4-gram in common -> BLEU-4 is 0
    assert corpus_bleu(["a b c d"], ["a b c e"], 4) == 0.0
    # corpus level: counts are summed before dividing. p1 = (2+1)/(2+2), r = 4 = c
    assert corpus_bleu(["a b", "c d"], ["a b", "c e"], 1) == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        corpus_bleu(["a", "b"], ["a"])


def test_gleu_by_hand():
    # 1-grams: 2 of 3 match; 2-grams: 'a b' of 2 matches; 3-grams 0 of 1 -> 3 / max(6, 6)
    assert corpus_gleu(["a b c"], ["a b d"]) == pytest.approx(0.5)
    # a longer reference has more n-grams: 3 matched (a, b, a b) / max(3, 6+... )
    # hyp 'a b': 1g 2, 2g 1 -> 3; ref 'a b c': 1g 3, 2g 2, 3g 1 -> 6; matched 2 + 1 = 3
    assert corpus_gleu(["a b"], ["a b c"]) == pytest.approx(3 / 6)


def test_rouge_by_hand():
    assert rouge_n(["a b c"], ["a b d e"], 1) == pytest.approx(4 / 7)   # p 2/3, r 2/4
    assert rouge_n(["a b c"], ["a b d e"], 2) == pytest.approx(0.4)     # p 1/2, r 1/3
    assert rouge_l(["a c b"], ["a b c"]) == pytest.approx(2 / 3)        # LCS 2
    assert rouge_l(["x"], ["a b"]) == 0.0
    assert rouge_n(["a b", "x"], ["a b", "y"], 1) == pytest.approx(0.5)  # mean of 1 and 0


def test_distinct_by_hand():
    assert distinct_n(["a b a", "b c"], 1) == pytest.approx(3 / 5)
    assert distinct_n(["a b a", "b c"], 2) == pytest.approx(1.0)       # ab, ba, bc
    assert distinct_n(["", "a"], 2) is None


def test_reference_metrics_keys_and_identity():
    m = reference_metrics(["头痛请去神经内科"], ["头痛请去神经内科"])
    assert m["bleu_4"] == pytest.approx(1.0) and m["rouge_l"] == pytest.approx(1.0) and m["gleu"] == 1.0
    assert set(m) >= {"bleu_1", "bleu_2", "bleu_3", "bleu_4", "gleu", "rouge_1", "rouge_2", "rouge_l",
                      "distinct_1", "distinct_2"}


def test_bootstrap_ci_and_win_rate():
    assert bootstrap_ci([2.0] * 10) == (2.0, 2.0)
    assert bootstrap_ci([]) is None
    outcomes = [1.0, 0.0] * 50
    lo, hi = bootstrap_ci(outcomes, seed=1)
    assert lo < 0.5 < hi and 0.15 < hi - lo < 0.25            # ~ 2 x 1.96 x sqrt(.25/100)
    assert bootstrap_ci(outcomes, seed=1) == (lo, hi)         # deterministic
    wr = win_rate([1.0, 0.5, 0.0, 1.0])
    assert wr["win_rate"] == pytest.approx(0.625) and (wr["wins"], wr["ties"], wr["losses"]) == (2, 1, 1)
    assert pairwise_outcome(7, 7) == 0.5 and pairwise_outcome(8, 7) == 1.0 and pairwise_outcome(6, 7) == 0.0
