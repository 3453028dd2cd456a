"""Evaluation metrics: reference overlap (BLEU-1..4, GLEU, ROUGE-1/2/L), diversity (Distinct-1/2),
bootstrap confidence intervals and judge win rates. Pure Python + numpy, no downloads.

Text is split into tokens by :func:`alignment.metrics.text.text_tokens`: one token per Chinese
character (the usual practice for Chinese medical QA, e.g. HuatuoGPT's cMedQA2 tables) and one per
lower-cased word for English.
"""

from alignment.metrics.diversity import distinct_n
from alignment.metrics.overlap import corpus_bleu, corpus_gleu, reference_metrics, rouge_l, rouge_n
from alignment.metrics.stats import bootstrap_ci, pairwise_outcome, win_rate
from alignment.metrics.text import detect_language, ngrams, text_tokens

__all__ = ["corpus_bleu", "corpus_gleu", "rouge_n", "rouge_l", "reference_metrics", "distinct_n",
           "bootstrap_ci", "win_rate", "pairwise_outcome", "text_tokens", "ngrams", "detect_language"]
