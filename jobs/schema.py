"""The job YAML: which stages run, with which config, inputs and resources, on which Ray cluster.

    name: quickstart
    seed: 0
    ray: {address: null, num_cpus: 2}
    stages:
      data:
        config: {recipe: data_recipes/recipes/quickstart.yaml, ...}
      sft:
        resources: {num_cpus: 2}
        inputs: {model: bootstrap}          # optional: default wiring is each stage module's INPUTS
        config: {epochs: 1, ...}            # validated against alignment.stages.sft.Config

A stage entry's key is its name in the job; ``kind`` (default: the name) picks the stage module,
so one job may hold two stages of a kind (``eval_dpo: {kind: eval, inputs: {policy: dpo}}``).
The top level is validated here; each ``config`` is validated against its module's ``Config`` by
:func:`jobs.plan.load_plan`, with errors naming the job file, line and
``stages.<name>.config.<field>``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from medalign.config import StrictModel


class Resources(StrictModel):
    """What one stage asks of Ray. On a laptop only num_cpus matters."""

    num_cpus: float = Field(1, ge=0, description="CPUs reserved for the stage's Ray task")
    num_gpus: float = Field(0, ge=0, description="GPUs reserved for the stage's Ray task (cluster)")
    memory_gb: float | None = Field(None, gt=0, description="memory reserved, in GB (None: no reservation)")
    num_workers: int = Field(1, ge=1, description=">1: run the stage data-parallel on Ray Train workers")
    max_failures: int = Field(2, ge=0, description="num_workers > 1: Ray Train restarts the worker group this many times after a worker dies; the stage resumes from its own last checkpoint")
    accelerator_type: str | None = Field(None, description="Ray accelerator type, e.g. A100 (cluster)")
    gpu_memory_gb: float | None = Field(None, gt=0, description="memory of each GPU in GB (2^30 bytes); set: medalign run refuses a stage whose plan (medalign plan) needs more")


class RayConfig(StrictModel):
    """Where the stages run."""

    address: str | None = Field(None, description="None: start Ray in-process; 'auto' or ray://host:10001 to join a cluster")
    num_cpus: int | None = Field(None, ge=1, description="CPUs of the in-process Ray (None: all of this machine's)")
    include_dashboard: bool = Field(False, description="start the Ray dashboard with an in-process Ray")
    namespace: str = Field("medalign", description="Ray namespace")
    env_vars: dict[str, str] = Field(default_factory=dict, description="extra environment variables for stage tasks (never secrets: those come from the cluster's environment)")


class StageEntry(StrictModel):
    """One stage of a job."""

    kind: str | None = Field(None, description="stage kind (module); default: the entry's name")
    enabled: bool = Field(True, description="false: leave the stage (and the stages that need it) out")
    inputs: dict[str, str] = Field(default_factory=dict, description="input name -> a stage of this job, or a path / hub id")
    resources: Resources = Field(default_factory=Resources, description="Ray resources of the stage task")
    config: dict[str, Any] = Field(default_factory=dict, description="the stage's own config (see its module's Config)")


class JobConfig(StrictModel):
    """A pipeline: an ordered set of stages sharing a seed and a run directory.

    Top-level keys starting with ``x-`` are ignored: they hold YAML anchors shared by stages
    (``x-judge: &judge {...}`` then ``judge: *judge``), as in docker-compose.
    """

    @model_validator(mode="before")
    @classmethod
    def _drop_extension_keys(cls, data):
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not str(k).startswith("x-")}
        return data

    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$", description="job name: runs go to <run_dir>/<name>/")
    description: str = Field("", description="what this job is for")
    seed: int = Field(0, description="job seed; each stage derives its own from it")
    run_dir: str = Field("runs", description="root of the run directories (relative to the working directory)")
    ray: RayConfig = Field(default_factory=RayConfig, description="where stages run")
    stages: dict[str, StageEntry] = Field(..., min_length=1, description="stage name -> entry, in pipeline order")

    @field_validator("stages")
    @classmethod
    def _names_are_plain(cls, stages: dict[str, StageEntry]) -> dict[str, StageEntry]:
        for name in stages:
            if not name.replace("_", "").isalnum():
                raise ValueError(f"stage name {name!r} must be letters, digits and underscores")
        return stages
