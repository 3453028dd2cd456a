"""The config of ``medalign eval CONFIG`` (a YAML; every model is ``extra="forbid"``).

    name: demo
    models:                                   # N models, evaluated in one run
      - {name: sft, path: runs/quickstart/sft-1a2b3c4d5e6f}       # a stage directory (its model/)
      - {name: ppo, path: runs/quickstart/ppo-6f5e4d3c2b1a}
      - {name: mine, path: /models/my-checkpoint}                 # a checkpoint, or a hub id
    eval_sets:
      data: [runs/quickstart/data-0a1b2c3d4e5f]                    # data-stage dirs (their eval/*.parquet)
      files: []                                                   # more eval-set Parquet files
    referee: {pairs: all, judge: {base_url: local, template: huatuo_referee}}
    rubric: {enabled: true}                   # HealthBench-format grading (local medalign-grader)
    multi_turn: {enabled: true, max_cases: 40, max_turns: 4}   # simulated patients (local medalign-patient)
    sampling: {temperature: 0.7, max_new_tokens: 128}

Models are named by path, never by "the latest run": ``medalign run JOB --plan --json`` prints
each stage's directory. Outputs go to ``out_dir`` (default ``runs/eval/<name>``): report.json,
report.html, generations.parquet, the referee's, patient's and grader's transcripts and the
caches that make a second run with one more model generate, play, grade and judge only what
involves that model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from alignment.generation import SamplingSpec
from alignment.models import DType
from judges.config import JudgeConfig
from medalign.config import StrictModel

NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"


class EvalModel(StrictModel):
    """One model to evaluate."""

    name: str = Field(pattern=NAME)           # its label in the report (unique)
    path: str                                 # checkpoint dir, stage dir runs/<job>/<stage>-<key>, or hub id


class EvalSetsSpec(StrictModel):
    """Where the eval sets are (data_recipes/eval_cases.py columns)."""

    data: list[str] = Field(default_factory=list)       # data-stage directories: every eval/*.parquet
    files: list[str] = Field(default_factory=list)      # eval-set Parquet files
    names: list[str] | None = None                      # only these sets (None: all found)
    max_cases: int | None = Field(None, ge=1)           # first N cases of each set (None: all)


def _referee_judge() -> JudgeConfig:
    return JudgeConfig(name="referee", template="huatuo_referee")


class RefereeSpec(StrictModel):
    """HuatuoGPT's referee (alignment/evaluation/referee.py)."""

    enabled: bool = True                                 # run the referee (needs two models or more)
    pairs: Literal["all", "baseline"] = "all"            # every pair, or each model vs `baseline`
    baseline: str | None = None                          # a model name (needed by pairs: baseline)
    judge: JudgeConfig = Field(default_factory=_referee_judge)  # the referee endpoint and template
    tie_tolerance: float = Field(0.0, ge=0)              # |score gap| <= this is a tie
    include_flagged: bool = False                        # score results that carry a judges/flags.py flag
    bt_prior: float = Field(1.0, ge=0)                   # virtual games per pair in the Bradley-Terry fit


def _local_model(judge: JudgeConfig, model: str, where: str) -> None:
    """The local judge server answers a patient or grader prompt only as its model of that name."""
    if judge.is_local and judge.model != model:
        raise ValueError(f"{where}.model: the local judge server plays this part as {model!r}, got "
                         f"{judge.model!r} (or point {where}.base_url at an OpenAI-compatible endpoint)")


class RubricSpec(StrictModel):
    """HealthBench-format rubric grading of each model's answer to the cases that carry a rubric
    (alignment/evaluation/healthbench.py)."""

    enabled: bool = False                                # grade the cases that carry a rubric
    grader: JudgeConfig = Field(default_factory=lambda: JudgeConfig(name="grader", model="medalign-grader"))  # the grader endpoint
    max_cases: int | None = Field(None, ge=1)            # first N cases with a rubric of each set (None: all)

    @model_validator(mode="after")
    def _grader_model(self) -> "RubricSpec":
        _local_model(self.grader, "medalign-grader", "rubric.grader")
        return self


class MultiTurnSpec(StrictModel):
    """Conversations of each model with a simulated patient on the cases that carry a case card
    (alignment/evaluation/multi_turn.py)."""

    enabled: bool = False                                # play the cases that carry a case card
    patient: JudgeConfig = Field(default_factory=lambda: JudgeConfig(name="patient", model="medalign-patient"))  # the patient endpoint
    max_turns: int = Field(4, ge=1)                      # doctor turns before the conversation ends
    max_cases: int | None = Field(None, ge=1)            # first N cases with a case card of each set (None: all)
    referee: bool = True                                 # the referee compares two models' whole conversations
    referee_template: str = "huatuo_referee_multiturn"   # its template, on referee.judge's endpoint

    @model_validator(mode="after")
    def _patient_model(self) -> "MultiTurnSpec":
        _local_model(self.patient, "medalign-patient", "multi_turn.patient")
        return self


class EvalRunConfig(StrictModel):
    """Many models, many eval sets, one run (alignment/evaluation/run.py)."""

    name: str = Field("eval", pattern=NAME)              # report title; default out_dir runs/eval/<name>
    out_dir: str | None = None                           # None: runs/eval/<name>
    models: list[EvalModel] = Field(min_length=1)        # the models to evaluate
    eval_sets: EvalSetsSpec                              # where the cases are
    clinical: bool = True                                # ground-truth metrics (no LLM)
    referee: RefereeSpec = Field(default_factory=RefereeSpec)
    rubric: RubricSpec = Field(default_factory=RubricSpec)
    multi_turn: MultiTurnSpec = Field(default_factory=MultiTurnSpec)
    sampling: SamplingSpec = Field(default_factory=lambda: SamplingSpec(temperature=0.7, top_p=0.9))  # every model
    seed: int = 0                                        # generation seed (and bootstrap seed)
    n_bootstrap: int = Field(1000, ge=100)               # bootstrap resamples of every interval
    dtype: DType = "auto"                                # generation dtype

    @model_validator(mode="after")
    def _consistent(self) -> "EvalRunConfig":
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"models: names must be unique, got {names}")
        if not self.eval_sets.data and not self.eval_sets.files:
            raise ValueError("eval_sets: give data (data-stage directories) or files (eval-set Parquet files)")
        if self.referee.pairs == "baseline" and self.referee.baseline not in names:
            raise ValueError(f"referee.baseline must name one of the models {names} when referee.pairs is baseline")
        return self
