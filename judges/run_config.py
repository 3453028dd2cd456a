"""``medalign judge run CONFIG``: the YAML, and the cost estimate of ``--dry-run``.

    judges:
      - {name: rubric}                                  # the local rubric server
      - {name: gpt4o, base_url: https://api.openai.com/v1, model: gpt-4o,
         api_key_env: OPENAI_API_KEY, price: {input_per_mtok: 2.5, output_per_mtok: 10},
         budget: {max_cost: 5.0}}
    template: huatuo_pairwise                           # for judges that do not name one
    input: {kind: tuples, path: data/ranked/train.parquet}
    output_dir: runs/judge/cmd_ranked
    ranking: {pair_mode: adjacent}

Relative paths are taken from the current directory. The run writes the same outputs as the
``judge`` stage (transcripts, scores, ranked tuples, pairs, report) into ``output_dir``.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field, model_validator

from judges.api import TRANSCRIPTS, plan_judgments
from judges.budget import call_cost, estimate_tokens
from judges.cache import CACHE_FILE
from judges.config import JudgeConfig
from judges.pipeline import RankingConfig, build_items, check_orders
from judges.templates import load_template
from judges.tuples import MAX_RESPONSE_CHARS, InputKind, ResponseTuple
from medalign.config import StrictModel


class RunInput(StrictModel):
    kind: InputKind                                       # samples | tuples | pairs
    path: str                                             # .parquet or .jsonl file
    source_order: list[str] = Field(                      # tuples without ranks: best source first
        default_factory=lambda: ["doctor", "gpt-4", "gpt-3.5", "weak"])
    max_response_chars: int = Field(MAX_RESPONSE_CHARS, ge=1)  # a longer response is quarantined, not judged


class JudgeRunConfig(StrictModel):
    """A standalone judging run."""

    judges: list[JudgeConfig] = Field(min_length=1)       # one or more judges (an ensemble)
    template: str | None = None                           # default template for judges without one
    input: RunInput
    output_dir: str                                       # transcripts, cache, outputs, report
    ranking: RankingConfig = Field(default_factory=RankingConfig)

    @model_validator(mode="after")
    def _default_template(self) -> "JudgeRunConfig":
        if self.template is not None:
            for j in self.judges:
                if "template" not in j.model_fields_set:
                    j.template = self.template
        check_orders(self.judges, self.ranking)
        return self


def _done_and_cached(out: Path, cache_dir: Path) -> tuple[set[str], set[str]]:
    """Judgment ids already ok, and cache keys present (read only: a dry run writes nothing)."""
    done, cached = set(), set()
    for path, field, into, ok_only in ((out / TRANSCRIPTS, "judgment_id", done, True),
                                       (cache_dir / CACHE_FILE, "key", cached, False)):
        if not path.is_file():
            continue
        with open(path, "rb") as f:
            for raw in f:
                try:
                    row = json.loads(raw)
                except json.JSONDecodeError:
                    continue
                if not ok_only or row.get("status") == "ok":
                    into.add(row[field])
                elif field == "judgment_id":
                    into.discard(row[field])
    return done, cached


def estimate(tuples: list[ResponseTuple], cfg: JudgeRunConfig) -> list[dict]:
    """Per judge: judgments, how many are done or cached, and the tokens and cost of the rest.

    Prompt tokens are estimated (see :func:`judges.budget.estimate_tokens`); completion tokens are
    bounded by ``max_tokens``, so the cost is an upper estimate: ``cost_max`` at the online price,
    ``cost_max_batch`` at the Batch API's (``price.batch_*``; None when unknown)."""
    items = build_items(tuples, cfg.ranking)
    out = Path(cfg.output_dir)
    rows = []
    for judge in cfg.judges:
        judgments, _ = plan_judgments(items, judge, load_template(judge.template))
        cache_dir = Path(judge.cache_dir) if judge.cache_dir else out / "cache"
        done, cached = _done_and_cached(out, cache_dir)
        todo = [j for j in judgments if j.judgment_id not in done and j.cache_key not in cached]
        prompt = sum(estimate_tokens(j.messages) for j in todo)
        completion = len(todo) * judge.decoding.max_tokens
        rows.append({
            "judge": judge.name, "model": judge.model, "endpoint": judge.base_url,
            "template": judge.template, "judgments": len(judgments),
            "already_ok": sum(j.judgment_id in done for j in judgments),
            "cached": sum(j.cache_key in cached and j.judgment_id not in done for j in judgments),
            "calls": len(todo), "prompt_tokens_est": prompt, "completion_tokens_max": completion,
            "cost_max": call_cost(judge.price, prompt, completion, free=judge.is_local),
            "cost_max_batch": call_cost(judge.price.for_mode("batch"), prompt, completion, free=judge.is_local),
            "mode": judge.mode,
            "budget": judge.budget.model_dump(exclude_none=True) or None,
        })
    return rows
