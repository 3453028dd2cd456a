"""How the ``rsft`` stage scores its k samples per prompt: with the reward model or with a judge.

Both return ``(scores, counts)``: ``scores[i][j]`` is the score of sample j of prompt i (None when
it has none) and ``counts`` the figures the stage reports.

* :func:`score_with_reward_model`: the RM's scalar through
  :func:`alignment.reward_scoring.score_responses` (the rendering the reward_model stage trained on).
* :func:`score_with_judge`: the samples of a prompt are judged against each other in pairs, both
  orders (:func:`judges.api.judge_pairs`, the local rubric server by default), exactly as the
  ``judge`` stage does: the pairs come from :func:`judges.pipeline.build_items` and a sample's score
  is its mean over its ok comparisons (:func:`judges.ranking.response_scores`). A judgment that is
  not ``ok`` (api_error, parse_error, refused, out_of_range, not_run) is counted by status and never
  becomes a score; a sample with fewer than ``min_comparisons`` ok comparisons has no score and
  cannot be kept. Transcripts (hash-chained) and the cache go to the iteration's ``judge/`` folder.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from pydantic import Field

from judges.config import JudgeConfig
from judges.pipeline import PairingSpec

Scores = list[list[float | None]]


class RSFTJudgeSpec(PairingSpec):
    """The judge that scores samples when ``scorer: judge``, and which of a prompt's samples it
    compares (``pairing``, ``round_robin_rounds``, ``min_comparisons``: as in the judge stage's
    ``ranking``)."""

    judge: JudgeConfig = Field(default_factory=JudgeConfig)  # endpoint/template; default: local rubric server


def score_with_reward_model(rm, rm_tokenizer, prompts: list[dict], responses: list[list[str]], batch_size: int,
                            max_length: int, progress: bool) -> tuple[Scores, dict]:
    """RM score of every sample (all samples get one)."""
    from alignment.reward_scoring import score_responses

    flat_prompts = [p["messages"] for p, row in zip(prompts, responses) for _ in row]
    flat = score_responses(rm, rm_tokenizer, flat_prompts, [r for row in responses for r in row],
                           batch_size, max_length, progress)
    scores, start = [], 0
    for row in responses:
        scores.append(flat[start:start + len(row)])
        start += len(row)
    return scores, {"scored_samples": len(flat), "unscored_samples": 0}


def response_tuples(prompts: list[dict], responses: list[list[str]]) -> list:
    """One :class:`judges.tuples.ResponseTuple` per prompt (ids ``<prompt_id>#<j>``, as the sample stage)."""
    from judges.tuples import ResponseTuple

    return [ResponseTuple(prompt_id=p["prompt_id"], messages=p["messages"], reference=p.get("reference"),
                          language=p.get("language"), response_ids=[f"{p['prompt_id']}#{j}" for j in range(len(row))],
                          responses=list(row))
            for p, row in zip(prompts, responses)]


def score_with_judge(prompts: list[dict], responses: list[list[str]], spec: RSFTJudgeSpec, store_dir: Path,
                     progress: bool) -> tuple[Scores, dict]:
    """Mean judge score of every sample over its ok pairwise comparisons (None when too few)."""
    from judges.api import judge_pairs
    from judges.pipeline import build_items
    from judges.ranking import comparison_counts, response_scores

    tuples = response_tuples(prompts, responses)
    items = build_items(tuples, spec)
    Path(store_dir).mkdir(parents=True, exist_ok=True)
    results = judge_pairs(items, spec.judge, store_dir=store_dir, progress=progress)
    means, ok_counts = response_scores(results), comparison_counts(results)
    status = Counter(c.status for r in results for c in r.comparisons)
    scores = [[means[rid] if ok_counts.get(rid, 0) >= spec.min_comparisons else None for rid in t.response_ids]
              for t in tuples]
    flat = [s for row in scores for s in row]
    return scores, {"pairs_judged": len(items), "judgments_ok": status.get("ok", 0),
                    "judgments_not_ok": {k: v for k, v in sorted(status.items()) if k != "ok"},
                    "scored_samples": sum(s is not None for s in flat),
                    "unscored_samples": sum(s is None for s in flat)}
