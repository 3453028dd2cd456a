"""Training curves of every training stage: TensorBoard in the stage directory, W&B optionally.

Every training stage config has the same block (defaults shown)::

    tracking: {tensorboard: true, wandb: {enabled: false, project: medalign, mode: offline}}

Where the files go (both are bookkeeping that the output digest leaves out, so a stage's key and
the digests downstream never depend on event-file timestamps):

* ``out/tensorboard/``: TensorBoard event files (``tensorboard --logdir runs/<job>``). Stages that
  train several models (rsft: one fine-tuning per iteration) write one sub-folder per model.
* ``out/logs/wandb/``: W&B run files. ``mode: offline`` needs no network or account; upload later
  with ``wandb sync out/logs/wandb/offline-run-*``. ``mode: online`` reads the API key from
  ``WANDB_API_KEY`` (wandb's own variable; medalign never logs it).

Use in a stage::

    with start_tracking(cfg.tracking, out, config=cfg) as tracker:
        args = SFTConfig(**common_trainer_kwargs(..., report_to=tracker.report_to))
        trainer = tracker.build_trainer(SFTTrainer, model=model, args=args, ...)  # trl/transformers log
        trainer.train()
        tracker.log({"rsft/mean_score": 3.2}, step=1)                              # our own loops log

W&B is an optional extra (``pip install 'medalign[wandb]'``). It is checked when a stage starts,
not when a config is validated, so a laptop can ``--plan`` a cluster job that logs to W&B.
"""

from __future__ import annotations

import importlib.util
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

from pydantic import Field

from medalign.config import StrictModel

__all__ = ["WandbSpec", "TrackingSpec", "Tracker", "start_tracking", "open_tracker", "check_tracking",
           "read_scalars", "TENSORBOARD_DIR", "WANDB_DIR"]

TENSORBOARD_DIR = "tensorboard"       # inside the stage directory
WANDB_DIR = "logs"                    # wandb writes <this>/wandb/<run>/ inside the stage directory


class WandbSpec(StrictModel):
    """Weights & Biases logging (optional extra: ``pip install 'medalign[wandb]'``)."""

    enabled: bool = False                          # also log to W&B
    project: str = "medalign"                      # W&B project
    entity: str | None = None                      # W&B team or user (None: the account's default)
    mode: Literal["offline", "online"] = "offline"  # offline: run files only, no network (wandb sync uploads them)


class TrackingSpec(StrictModel):
    """Where a training stage's curves go. Part of the stage's config, so changing it reruns the stage."""

    tensorboard: bool = True                       # scalars under out/tensorboard/ (the job's report.html plots them)
    wandb: WandbSpec = Field(default_factory=WandbSpec)  # optional W&B run per stage

    @property
    def report_to(self) -> list[str]:
        """``TrainingArguments.report_to`` for a transformers / trl trainer."""
        return (["tensorboard"] if self.tensorboard else []) + (["wandb"] if self.wandb.enabled else [])


@dataclass
class Tracker:
    """An open tracking session of one stage on one process (only the main process writes)."""

    spec: TrackingSpec
    tb_dir: Path
    main: bool = True
    purge_step: int | None = None                  # resumed runs: TensorBoard drops events from here on
    run: Any = None                                # the wandb run (main process, wandb enabled)
    _writer: Any = field(default=None, repr=False)

    @property
    def report_to(self) -> list[str]:
        return self.spec.report_to

    def build_trainer(self, trainer_cls, subdir: str | None = None, **kwargs):
        """``trainer_cls(**kwargs)`` with its TensorBoard callback writing to ``out/tensorboard[/subdir]``.

        transformers 5 has no ``logging_dir`` argument: its TensorBoard callback reads the
        ``TENSORBOARD_LOGGING_DIR`` environment variable when the trainer is built, so the
        variable is set for the constructor call only.
        """
        target = self.tb_dir / subdir if subdir else self.tb_dir
        with _environ(TENSORBOARD_LOGGING_DIR=str(target)):
            return trainer_cls(**kwargs)

    def log(self, scalars: dict[str, Any], step: int) -> None:
        """Log the finite numbers of ``scalars`` at ``step`` (other values are skipped)."""
        if not self.main:
            return
        values = {k: float(v) for k, v in scalars.items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        if self.spec.tensorboard and values:
            if self._writer is None:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(log_dir=str(self.tb_dir), purge_step=self.purge_step)
            for key, value in values.items():
                self._writer.add_scalar(key, value, global_step=step)
        if self.run is not None and values:
            self.run.log(values, step=step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None
        if self.run is not None:
            import wandb

            self.run.finish()
            wandb.teardown()      # stop wandb's service process: a Ray worker runs many stages
            self.run = None


def check_tracking(spec: TrackingSpec, out: str | Path) -> None:
    """Fail in one line when ``spec`` needs a package that is not installed (W&B). Stages that
    load models before they open their tracker call this first, so the error comes at once."""
    if spec.wandb.enabled and not wandb_installed():
        raise ValueError(f"{_run_name(Path(out))}: tracking.wandb.enabled is true but the wandb package is not "
                         "installed: pip install 'medalign[wandb]', or set tracking.wandb.enabled=false")


def wandb_installed() -> bool:
    """True when the optional ``wandb`` package can be imported (the test transformers uses too)."""
    return importlib.util.find_spec("wandb") is not None


def _run_name(out: Path) -> str:
    """``<job>/<stage directory>``: names a W&B run after the folder it came from."""
    return f"{out.parent.name}/{out.name}"


def open_tracker(spec: TrackingSpec, out: str | Path, config: Any = None, *, main: bool | None = None,
                 purge_step: int | None = None) -> Tracker:
    """Start tracking the stage whose directory is ``out`` (call :meth:`Tracker.close` at the end).

    ``config`` (a pydantic model or a dict) is stored with the W&B run, which is named
    ``<job>/<stage directory>`` so it points back at the run folder. ``main`` (default: rank 0 of
    a distributed run) says whether this process writes; the others only pass ``report_to`` on.
    ``purge_step``: a resumed run's first step; TensorBoard hides older events from there on.
    Raises ValueError (one line) when W&B is enabled but the ``wandb`` package is missing.
    """
    from alignment.distributed import is_main_process

    out = Path(out)
    main = is_main_process() if main is None else main
    check_tracking(spec, out)
    tracker = Tracker(spec=spec, tb_dir=out / TENSORBOARD_DIR, main=main, purge_step=purge_step)
    if main and spec.wandb.enabled:
        import wandb

        if hasattr(config, "model_dump"):
            config = config.model_dump(mode="json")
        (out / WANDB_DIR).mkdir(parents=True, exist_ok=True)
        # console="off": the stage's log (which may quote data) stays in logs/stage.log, never in W&B
        tracker.run = wandb.init(project=spec.wandb.project, entity=spec.wandb.entity, mode=spec.wandb.mode,
                                 dir=str(out / WANDB_DIR), name=_run_name(out), config=config or {},
                                 settings=wandb.Settings(console="off", silent=True, save_code=False))
    return tracker


@contextmanager
def start_tracking(spec: TrackingSpec, out: str | Path, config: Any = None) -> Iterator[Tracker]:
    """:func:`open_tracker` as a context: the tracker is closed (W&B run finished) at the end."""
    tracker = open_tracker(spec, out, config)
    try:
        yield tracker
    finally:
        tracker.close()


def read_scalars(tb_dir: str | Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Every scalar of the TensorBoard event files under ``tb_dir``.

    Returns ``{run: {tag: [(step, value), ...]}}`` where ``run`` is the sub-folder holding the
    events relative to ``tb_dir`` (``"."`` for files directly in it), steps in logged order.
    Empty when there are no event files.
    """
    import logging

    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    # its directory watcher says "No path found after ..." at INFO for every folder it reads
    logging.getLogger("tensorboard").setLevel(logging.WARNING)
    tb_dir = Path(tb_dir)
    folders = sorted({p.parent for p in tb_dir.rglob("events.out.tfevents.*")}) if tb_dir.is_dir() else []
    runs: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for folder in folders:
        acc = EventAccumulator(str(folder), size_guidance={SCALARS: 0})   # 0: keep every point
        acc.Reload()
        tags = acc.Tags().get(SCALARS, [])
        if tags:
            runs[folder.relative_to(tb_dir).as_posix()] = {
                tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in tags}
    return runs


@contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Set environment variables for the duration of the block, then restore them."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
