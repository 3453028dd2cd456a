"""The stage protocol shared by every package.

A stage is a module that declares, once, everything the job runner, the planner and the
command line need to know about it:

    NAME = "sft"                                   # the stage's kind in a job YAML
    Config = SFTStageConfig                        # a medalign.config.StrictModel subclass
    INPUTS = {                                     # input name -> where it may come from
        "data": Input(("data",), "data stage directory", reads=("sft",)),
        "model": Input(("pretrain", "bootstrap"), "checkpoint to fine-tune", model=True),
    }
    def run(cfg: Config, inputs: dict[str, str], out: Path, ctx: StageContext) -> dict: ...

and optionally:

    def accept(cfg: Config, metrics: dict) -> list[str]: ...   # problems; any -> the stage failed
    def input_files(cfg: Config) -> list[Path]: ...            # files whose content enters the key
    def provides(cfg: Config) -> set[str]: ...                 # datasets a data stage will write
    def plan_problems(cfg: Config) -> list[str]: ...           # files the config names that are missing or bad
    DATA_PARALLEL = True      # may run on several Ray Train workers (default: Config has ``distributed``)

``inputs`` maps an input name to a path: an upstream stage's directory (``model=True``: its
``out/model`` checkpoint), or a path / hub id the user gave. ``run`` writes its outputs under
``out`` (which may already hold a killed attempt's checkpoints: resume from them or overwrite
them) and returns a JSON-able dict of metrics. ``accept`` names what makes those metrics a
failure even though ``run`` returned (a judge stage whose calls all failed, a reward model with
almost no pairs): such a stage is recorded as failed and never reused. ``plan_problems`` is
checked when a job is planned (``--plan`` and before any stage runs): a file the config names
that is missing or invalid (a scale, a names list) fails the plan, not the stage an hour later. The executor
(:mod:`medalign.executor`) digests ``out`` and writes ``manifest.json``; a stage never writes
its own manifest.

A custom stage module (``kind: mypkg.stages.filter`` in a job) may write an input as a bare
tuple of kinds, ``INPUTS = {"data": ("mypkg.stages.source",)}``: a required, non-model input.

Stages never import ray; ``jobs/`` wraps them in Ray tasks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from types import ModuleType


@dataclass
class StageContext:
    """What a stage may know about the job around it."""

    job: str = "adhoc"                   # job name
    stage: str = ""                      # stage name
    seed: int = 0                        # job-level seed; stages derive theirs from it
    device: str = "cpu"                  # "cpu" or "cuda"; decided by the runner from resources
    num_cpus: int = 1                    # CPUs granted to this stage
    num_gpus: float = 0                  # GPUs granted to this stage
    progress: bool = True                # show progress bars (they go to the stage's log file)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("medalign"))


@dataclass(frozen=True)
class Input:
    """One input of a stage, as its module declares it in ``INPUTS``."""

    kinds: tuple[str, ...]               # upstream stage kinds that may feed it; the first present in the job wins
    doc: str = ""                        # what the path is, for --help and docs/CONTRACTS.md
    model: bool = False                  # True: a checkpoint (an upstream stage's out/model, or a path / hub id)
    optional: bool = False               # True: left out when no upstream stage of those kinds is in the job
    reads: tuple[str, ...] = ()          # datasets read from a data stage's directory (any one suffices)


REQUIRED_NAMES = ("NAME", "Config", "run")


def declared_inputs(module: ModuleType) -> dict[str, Input]:
    """The ``INPUTS`` of a stage module, bare tuples of kinds read as required inputs."""
    out = {}
    for name, spec in dict(getattr(module, "INPUTS", {})).items():
        out[name] = spec if isinstance(spec, Input) else Input(kinds=tuple(spec))
    return out


def input_prefixes(module: ModuleType) -> dict[str, Input]:
    """Prefix -> :class:`Input` of the inputs a stage takes any number of (its ``INPUT_PREFIXES``,
    e.g. the eval stage's ``{"extra_": ...}``: a job wires ``extra_sft_doctor: sft_doctor``, and
    the stage reads every input whose name starts with the prefix). Never filled by default."""
    return dict(getattr(module, "INPUT_PREFIXES", {}))


def inputs_summary(module: ModuleType) -> str:
    """``data, model[, reward_model]``: the inputs of a stage, optional ones in brackets."""
    inputs = declared_inputs(module)
    required = [n for n, i in inputs.items() if not i.optional]
    optional = [n for n, i in inputs.items() if i.optional]
    text = ", ".join(required) or "-"
    return text + (f"[, {', '.join(optional)}]" if optional else "")


def plan_problems(module: ModuleType, cfg) -> list[str]:
    """What the stage's own ``plan_problems`` finds wrong with its config's files (empty: nothing)."""
    check = getattr(module, "plan_problems", None)
    return [str(p) for p in check(cfg)] if check is not None else []


def acceptance_problems(module: ModuleType, cfg, metrics: dict) -> list[str]:
    """What the stage's own ``accept`` rule finds wrong with a finished run (empty: accepted)."""
    accept = getattr(module, "accept", None)
    return [str(p) for p in accept(cfg, metrics)] if accept is not None else []
