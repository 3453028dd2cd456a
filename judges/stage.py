"""The ``judge`` stage: LLM judges score the sample stage's responses pairwise, in both orders.

Input ``samples``: a sample-stage directory holding ``samples.parquet`` (``prompt_id``,
``messages``, ``reference``, ``language``, ``responses``, ``response_ids``, ``policy``). The
prompt's history is every turn before its final user turn, the question is that turn, and the
standard answer is ``reference``. Outputs and the report: see :mod:`judges.pipeline`.

A killed stage resumes from its own transcript and cache in ``out``: judgments already ``ok``
are not repeated, a partial last transcript line is truncated (and reported).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from judges.config import JudgeConfig
from judges.pipeline import RankingConfig, check_orders, judge_and_rank, stage_metrics
from judges.tuples import MAX_RESPONSE_CHARS, load_tuples
from medalign.config import StrictModel
from medalign.stage import Input, StageContext

NAME = "judge"
INPUTS = {"samples": Input(("sample",), "sample stage directory (samples.parquet)")}


class JudgeStageConfig(StrictModel):
    """Judges and ranking for the judge stage."""

    judges: list[JudgeConfig] = Field(default_factory=lambda: [JudgeConfig()],
                                      min_length=1)   # one or more (an ensemble)
    ranking: RankingConfig = Field(default_factory=RankingConfig)
    min_ok_fraction: float = Field(0.9, ge=0, le=1)   # fewer ok judge calls than this share: the stage failed
    max_response_chars: int = Field(MAX_RESPONSE_CHARS, ge=1)  # a longer response is quarantined, not judged

    @model_validator(mode="after")
    def _orders(self) -> "JudgeStageConfig":
        check_orders(self.judges, self.ranking)
        return self


Config = JudgeStageConfig


def accept(cfg: JudgeStageConfig, metrics: dict) -> list[str]:
    """A judge stage whose calls mostly failed is a failure, not a result with few pairs."""
    ok = metrics.get("ok_fraction")
    if ok is not None and ok >= cfg.min_ok_fraction:
        return []
    counts = ", ".join(f"{k.removeprefix('status_')} {v}" for k, v in metrics.items()
                       if k.startswith("status_") and v)
    return [f"only {ok or 0:.1%} of {metrics.get('calls') or 0} judge calls were ok ({counts or 'no calls'}), "
            f"below min_ok_fraction {cfg.min_ok_fraction:g}; see transcripts.jsonl"]


def run(cfg: JudgeStageConfig, inputs: dict[str, str], out: Path, ctx: StageContext) -> dict:
    if "samples" not in inputs:
        raise ValueError("judge stage: input 'samples' (a sample stage directory) is required")
    src = Path(inputs["samples"])
    path = src / "samples.parquet" if src.is_dir() else src
    tuples, quarantined = load_tuples(path, "samples", max_response_chars=cfg.max_response_chars)
    if quarantined:
        ctx.logger.warning("judge: %d rows of %s quarantined (see quarantine.jsonl)",
                           len(quarantined), path)
    if not tuples:
        raise ValueError(f"{path}: no usable rows to judge ({len(quarantined)} quarantined)")
    ctx.logger.info("judge: %d prompts, %d judges", len(tuples), len(cfg.judges))
    report = judge_and_rank(tuples, quarantined, cfg.judges, cfg.ranking, Path(out),
                            progress=ctx.progress)
    ctx.logger.info("judge: %d calls, ok fraction %.3f, %d pairs", report["calls"],
                    report["ok_fraction"] or 0.0, report["pairs"])
    return stage_metrics(report)
