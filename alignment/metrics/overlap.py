"""Overlap with a reference answer: BLEU-1..4, GLEU, ROUGE-1/2/L.

Definitions (one reference per hypothesis; tokens from :func:`alignment.metrics.text.text_tokens`):

* BLEU-n (Papineni et al., 2002), corpus level and cumulative: the geometric mean of the clipped
  n-gram precisions p_1..p_n (summed over the corpus before dividing) times the brevity penalty
  BP = exp(1 - r/c) when the total hypothesis length c is below the total reference length r.
  BLEU-1 is p_1 * BP; BLEU-4 the usual BLEU.
* GLEU (Wu et al., 2016, Google's sentence-level BLEU variant), corpus level as in nltk's
  ``corpus_gleu``: matched 1..4-grams / max(hypothesis 1..4-grams, reference 1..4-grams).
* ROUGE-n: F1 of clipped n-gram overlap per pair; ROUGE-L: F1 of the longest common subsequence
  per pair (beta = 1). Both averaged over pairs.

All figures are fractions in [0, 1] (papers often print them x100).
"""

from __future__ import annotations

import math

from alignment.metrics.diversity import distinct_n
from alignment.metrics.text import ngrams, text_tokens


def _check(hyps: list[str], refs: list[str]) -> None:
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")


def bleu_counts(hyp: str, ref: str, n: int = 4) -> list[int]:
    """One pair's BLEU sufficient statistics: ``[m_1..m_n, t_1..t_n, hyp_len, ref_len]`` (clipped
    k-gram matches, hypothesis k-grams, lengths). Corpus BLEU is :func:`bleu_of_sums` of their sum."""
    h, r = text_tokens(hyp), text_tokens(ref)
    matches, totals = [], []
    for k in range(1, n + 1):
        hg, rg = ngrams(h, k), ngrams(r, k)
        matches.append(sum(min(c, rg[g]) for g, c in hg.items()))
        totals.append(sum(hg.values()))
    return matches + totals + [len(h), len(r)]


def bleu_of_sums(sums, n: int = 4) -> float:
    """Cumulative BLEU-n from summed :func:`bleu_counts` (length ``2n + 2``)."""
    matches, totals = sums[:n], sums[n: 2 * n]
    hyp_len, ref_len = sums[2 * n], sums[2 * n + 1]
    if hyp_len == 0 or any(m == 0 for m in matches):
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / n
    brevity = 1.0 if hyp_len >= ref_len else math.exp(1 - ref_len / hyp_len)
    return float(brevity * math.exp(log_precision))


def corpus_bleu(hyps: list[str], refs: list[str], n: int = 4) -> float | None:
    """Cumulative corpus BLEU-n (None for an empty corpus)."""
    _check(hyps, refs)
    if not hyps:
        return None
    sums = [sum(col) for col in zip(*(bleu_counts(h, r, n) for h, r in zip(hyps, refs)))]
    return bleu_of_sums(sums, n)


def corpus_gleu(hyps: list[str], refs: list[str], min_n: int = 1, max_n: int = 4) -> float | None:
    """Corpus GLEU: sum of matched n-grams / max(sum hyp n-grams, sum ref n-grams), n in min_n..max_n."""
    _check(hyps, refs)
    if not hyps:
        return None
    matched = hyp_total = ref_total = 0
    for hyp, ref in zip(hyps, refs):
        h, r = text_tokens(hyp), text_tokens(ref)
        for k in range(min_n, max_n + 1):
            hg, rg = ngrams(h, k), ngrams(r, k)
            matched += sum(min(c, rg[g]) for g, c in hg.items())
            hyp_total += sum(hg.values())
            ref_total += sum(rg.values())
    denom = max(hyp_total, ref_total)
    return matched / denom if denom else 0.0


def _f1(overlap: int, hyp_count: int, ref_count: int) -> float:
    if overlap == 0 or hyp_count == 0 or ref_count == 0:
        return 0.0
    p, r = overlap / hyp_count, overlap / ref_count
    return 2 * p * r / (p + r)


def rouge_n(hyps: list[str], refs: list[str], n: int) -> float | None:
    """Mean ROUGE-n F1 over pairs."""
    _check(hyps, refs)
    if not hyps:
        return None
    scores = []
    for hyp, ref in zip(hyps, refs):
        hg, rg = ngrams(text_tokens(hyp), n), ngrams(text_tokens(ref), n)
        overlap = sum(min(c, rg[g]) for g, c in hg.items())
        scores.append(_f1(overlap, sum(hg.values()), sum(rg.values())))
    return sum(scores) / len(scores)


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence (O(len(a) * len(b)) time, O(len(b)) memory)."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(hyps: list[str], refs: list[str]) -> float | None:
    """Mean ROUGE-L F1 over pairs."""
    _check(hyps, refs)
    if not hyps:
        return None
    scores = []
    for hyp, ref in zip(hyps, refs):
        h, r = text_tokens(hyp), text_tokens(ref)
        scores.append(_f1(lcs_length(h, r), len(h), len(r)))
    return sum(scores) / len(scores)


def reference_metrics(hyps: list[str], refs: list[str]) -> dict:
    """Every overlap metric of ``hyps`` against ``refs`` plus Distinct-1/2 of ``hyps``."""
    out = {f"bleu_{n}": corpus_bleu(hyps, refs, n) for n in range(1, 5)}
    out.update(gleu=corpus_gleu(hyps, refs), rouge_1=rouge_n(hyps, refs, 1), rouge_2=rouge_n(hyps, refs, 2),
               rouge_l=rouge_l(hyps, refs), distinct_1=distinct_n(hyps, 1), distinct_2=distinct_n(hyps, 2),
               n=len(hyps))
    return out
