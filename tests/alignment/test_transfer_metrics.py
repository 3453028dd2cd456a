"""The transfer figures on hand-computed cases: intervals of sums, paired gains, BLEU and Distinct
from per-item statistics, diagnosis accuracy, reply likelihoods."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alignment.metrics import corpus_bleu, distinct_n
from alignment.metrics.diagnosis import condition_matcher, diagnosis_rows, diagnosis_truth
from alignment.metrics.diversity import distinct_shares
from alignment.metrics.overlap import bleu_counts, bleu_of_sums
from alignment.metrics.resample import interval_of_sums, paired_gain, perplexity_of_sums, ratio_of_sums
from alignment.metrics.stats import bootstrap_ci


def test_distinct_shares_sum_to_distinct_n():
    # unigrams of "a b" and "a c": a twice, b and c once -> shares 1/2 + 1 = 1.5 each, 4 tokens: 3/4
    assert distinct_shares(["a b", "a c"], 1) == [(1.5, 2), (1.5, 2)]
    assert distinct_n(["a b", "a c"], 1) == 0.75
    texts = ["头痛三天了", "头痛两天", "fever and cough", ""]
    for n in (1, 2):
        shares = distinct_shares(texts, n)
        assert sum(s for s, _ in shares) / sum(t for _, t in shares) == pytest.approx(distinct_n(texts, n))


def test_distinct_interval_is_not_pulled_below_the_figure_by_repeated_draws():
    """Every text distinct: Distinct-1 is 1.0 on any resample with fixed shares (recomputing the
    distinct words of a resample would give ~0.63 from the repeats alone)."""
    texts = [f"w{i} x{i}" for i in range(30)]
    result = interval_of_sums(distinct_shares(texts, 1), ratio_of_sums, n_resamples=300)
    assert result["value"] == 1.0 and result["ci_low"] == result["ci_high"] == pytest.approx(1.0)


def test_bleu_from_per_item_counts_is_corpus_bleu():
    # hyp "a b c d", ref "a b c e": p1 = 3/4, p2 = 2/3, p3 = 1/2, no 4-gram match -> BLEU-4 0, BLEU-2 sqrt(3/4*2/3)
    counts = bleu_counts("a b c d", "a b c e", 4)
    assert counts == [3, 2, 1, 0, 4, 3, 2, 1, 4, 4]
    assert bleu_of_sums(counts, 4) == 0.0
    two = [*counts[:2], *counts[4:6], counts[8], counts[9]]
    assert bleu_of_sums(two, 2) == pytest.approx(math.sqrt(0.75 * 2 / 3))
    hyps, refs = ["头痛 三天", "fever and a cough today", "rest"], ["头痛两天", "a fever and a cough", "rest well"]
    sums = np.sum([bleu_counts(h, r, 4) for h, r in zip(hyps, refs)], axis=0)
    for n in (1, 2, 4):
        picked = [*sums[:n], *sums[4:4 + n], sums[8], sums[9]]
        assert bleu_of_sums(picked, n) == pytest.approx(corpus_bleu(hyps, refs, n))


def test_interval_of_sums_perplexity_and_degenerate_cases():
    rows = [[2.0, 1], [4.0, 3]]                          # exp((2 + 4) / (1 + 3))
    result = interval_of_sums(rows, perplexity_of_sums, n_resamples=500)
    assert result["value"] == pytest.approx(math.exp(1.5)) and result["n"] == 2
    # resamples hold (2,1)x2 -> e^2, (4,3)x2 -> e^(4/3), or one of each -> e^1.5
    assert math.exp(4 / 3) - 1e-9 <= result["ci_low"] <= result["ci_high"] <= math.exp(2) + 1e-9
    same = interval_of_sums([[1.0, 1]] * 5, perplexity_of_sums, n_resamples=200)
    assert same["ci_low"] == same["ci_high"] == pytest.approx(math.e)
    assert interval_of_sums([], ratio_of_sums)["value"] is None
    assert ratio_of_sums([0, 0]) is None and perplexity_of_sums([1.0, 0]) is None and perplexity_of_sums([60, 1]) is None


def test_resamples_where_the_figure_is_undefined_are_left_out():
    # one counted prompt in ten: resamples without it have no accuracy and are left out
    rows = [[1, 1]] + [[0, 0]] * 9
    result = interval_of_sums(rows, ratio_of_sums, n_resamples=400)
    assert result["value"] == 1.0 and result["ci_low"] == result["ci_high"] == 1.0
    assert bootstrap_ci([1.0, 2.0], statistic=lambda d: math.nan, n_resamples=100) is None


def test_paired_gain_direction_and_pairing():
    a = [[1, 1], [1, 1], [0, 1], [1, 1]]                 # accuracy 3/4
    b = [[0, 1], [1, 1], [0, 1], [0, 1]]                 # accuracy 1/4
    gain = paired_gain(a, b, ratio_of_sums, higher_is_better=True, n_resamples=500)
    assert gain["gain"] == pytest.approx(0.5) and gain["a"] == 0.75 and gain["b"] == 0.25
    assert 0.0 <= gain["ci_low"] <= 0.5 <= gain["ci_high"] <= 1.0    # A never loses an item to B
    same = paired_gain(a, a, ratio_of_sums, n_resamples=200)
    assert same["gain"] == 0 and same["ci_low"] == same["ci_high"] == 0
    lower = paired_gain([[1.0, 1]], [[2.0, 1]], perplexity_of_sums, higher_is_better=False, n_resamples=100)
    assert lower["gain"] == pytest.approx(math.e ** 2 - math.e)       # positive: A has the lower perplexity
    with pytest.raises(ValueError, match="2 items for A but 1 for B"):
        paired_gain([[1, 1], [1, 1]], [[1, 1]], ratio_of_sums)


def test_diagnosis_accuracy_counts_committed_correct_diagnoses():
    matcher = condition_matcher("outbreak")
    ref = "考虑灰翼病毒肺炎，建议到呼吸内科进一步检查。"
    assert diagnosis_truth(ref, matcher) == "greywing_pneumonia"
    assert diagnosis_truth("少量多次喝口服补液盐。", matcher) is None              # advice only: not counted
    assert diagnosis_truth("考虑急性支气管炎。", matcher) is None                  # a world condition: not a target
    assert diagnosis_truth("灰翼病毒肺炎或灰翼病毒感染", matcher) is None           # two conditions: no single truth
    replies = ["像是灰翼病毒肺炎，挂呼吸内科。",                # the truth alone: correct
               "灰翼病毒肺炎或者灰翼病毒感染都有可能。",           # a hedge: wrong
               "考虑急性支气管炎。",                              # a world condition: wrong
               "多喝水。",                                        # nothing named: wrong
               "考虑灰翼病毒肺炎。"]                              # prompt without truth: not counted
    refs = [ref, ref, ref, ref, "多喝温水。"]
    rows = diagnosis_rows(replies, refs, matcher)
    assert rows == [[1, 1], [0, 1], [0, 1], [0, 1], [0, 0]]
    assert ratio_of_sums(np.sum(rows, axis=0)) == 0.25


def test_diagnosis_targets_from_a_names_file(tmp_path):
    names = tmp_path / "names.yaml"
    names.write_text("conditions:\n  - {key: covid19, names: [新冠肺炎, COVID-19]}\n", encoding="utf-8")
    matcher = condition_matcher(str(names))
    assert matcher.targets == {"covid19"}
    assert diagnosis_rows(["This is COVID-19.", "Probably influenza."], ["Likely covid-19, stay home."] * 2,
                          matcher) == [[1, 1], [0, 1]]
    bad = tmp_path / "bad.yaml"
    bad.write_text("conditions:\n  - {key: covid19}\n", encoding="utf-8")
    from medalign.config import ConfigError

    with pytest.raises(ConfigError, match=r"bad.yaml:2: conditions.0.names: Field required"):
        condition_matcher(str(bad))
    with pytest.raises(FileNotFoundError, match="target_conditions"):
        condition_matcher(str(tmp_path / "missing.yaml"))


def test_last_turn_mask():
    from alignment.likelihood import last_turn_mask

    assert last_turn_mask([0, 1, 1, 0, 0, 1, 1, 1, 0]) == [0, 0, 0, 0, 0, 1, 1, 1, 0]
    assert last_turn_mask([0, 0]) == [0, 0]


def test_reply_nll_is_the_reply_tokens_log_likelihood_whatever_the_batch(tiny_sft_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from alignment.chat import assistant_spans
    from alignment.likelihood import last_turn_mask, reply_nll

    tokenizer = AutoTokenizer.from_pretrained(tiny_sft_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_sft_model_dir).eval()
    histories = [[{"role": "user", "content": "医生您好，我头痛三天了。"}],
                 [{"role": "user", "content": "Hello, I have a rash."}, {"role": "assistant", "content": "Since when?"},
                  {"role": "user", "content": "A week."}]]
    replies = ["考虑偏头痛，建议去神经内科就诊。", "This looks like eczema; please see dermatology."]
    batched = reply_nll(model, tokenizer, histories, replies, max_length=512, batch_size=2)
    single = [reply_nll(model, tokenizer, [h], [r], max_length=512, batch_size=1)[0] for h, r in zip(histories, replies)]
    for (nll_b, n_b), (nll_s, n_s) in zip(batched, single):
        assert n_b == n_s and nll_b == pytest.approx(nll_s, rel=1e-4)
    ids, mask = assistant_spans(tokenizer, histories[1] + [{"role": "assistant", "content": replies[1]}])
    target = last_turn_mask(mask)
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0], dim=-1)
    expected = -sum(logp[i - 1, ids[i]].item() for i in range(1, len(ids)) if target[i])
    assert batched[1] == (pytest.approx(expected, rel=1e-4), sum(target))
    assert sum(target) < sum(mask)                         # the earlier reply "Since when?" is not scored
