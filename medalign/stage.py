"""The stage protocol shared by every package.

A stage is a module with three names:

    NAME = "sft"                                   # the stage's name in a job YAML
    Config = SFTConfig                             # a medalign.config.StrictModel subclass
    def run(cfg: Config, inputs: dict[str, str], out: Path, ctx: StageContext) -> dict: ...

``inputs`` maps an input name (fixed per stage, see docs/CONTRACTS.md) to a path: an upstream
stage's directory, or for model inputs a checkpoint directory or hub id. ``run`` writes its
outputs under ``out`` (which may already hold a previous attempt's checkpoints: resume from them
or overwrite them) and returns a JSON-able dict of metrics. The runner then digests ``out`` and
writes ``manifest.json``; a stage never writes its own manifest.

Stages never import ray; ``jobs/`` wraps them in Ray tasks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from medalign.config import StrictModel


@dataclass
class StageContext:
    """What a stage may know about the job around it."""

    job: str = "adhoc"                   # job name
    stage: str = ""                      # stage name
    seed: int = 0                        # job-level seed; stages derive theirs from it
    device: str = "cpu"                  # "cpu" or "cuda"; decided by the runner from resources
    num_cpus: int = 1                    # CPUs granted to this stage
    num_gpus: float = 0                  # GPUs granted to this stage
    progress: bool = True                # show progress bars
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("medalign"))


class StageModule(Protocol):
    NAME: str
    Config: type[StrictModel]

    def run(self, cfg: StrictModel, inputs: dict[str, str], out: Path, ctx: StageContext) -> dict: ...
