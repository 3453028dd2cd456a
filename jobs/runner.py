"""The DAG runner: reuse complete stages, run the rest as Ray tasks, write the job report.

    plan = load_plan("jobs/quickstart.yaml", overrides)
    report = run_job(plan)            # -> dict, also written to runs/<job>/report.json

Order of work:
1. Without Ray, walk the stages in dependency order and recompute each key from its resolved
   config and its inputs' digests; a stage whose directory holds a manifest for that key is
   reused. A job whose stages are all complete therefore finishes without starting Ray.
2. Start Ray (in-process, or join ``ray.address``) and submit every stage whose inputs are ready
   as a task with the stage's resources; independent branches run concurrently. A failed stage
   (it raised, or its acceptance rule rejected its metrics) stops its descendants only, keeps a
   manifest with ``status: failed`` for the auditor, and is redone by the next run; the job
   exits non-zero.

Each stage's output goes to its ``logs/stage.log``; the driver shows one view of the job
(:mod:`jobs.view`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

from medalign.errors import StageFailed, UserError
from medalign.executor import StageRun, attempt_state, describe_error, execute_stage, is_complete
from medalign.stage import StageContext

from jobs.execute import resolve_stage
from jobs.gpu_plan import check_stages_fit
from jobs.plan import Plan, PlannedStage
from jobs.report import StageOutcome, write_report
from jobs.view import JobView

log = logging.getLogger("medalign.jobs")

# Environment every stage task gets: offline hubs (nothing is downloaded unless a user asks for a
# hub id on a cluster that can reach it), quiet tokenizers.
STAGE_ENV = {"TOKENIZERS_PARALLELISM": "false", "HF_HUB_DISABLE_TELEMETRY": "1", "WANDB_DISABLED": "true"}


def select_stages(plan: Plan, until: str | None = None, only: list[str] | None = None,
                  force: list[str] | None = None) -> list[str]:
    """Names of the stages to bring up to date: all, or ``until`` and its ancestors, or ``only``.

    Raises :class:`UserError` when ``--until``, ``--only`` or ``--force`` names no stage of the job."""
    names = list(plan.stages)
    for flag, values in (("--until", [until] if until else []), ("--only", only or []), ("--force", force or [])):
        for name in values:
            if name not in plan.stages:
                raise UserError(f"{flag} {name}: no stage {name!r} in job {plan.job.name} "
                                f"({plan.source}); its stages: {', '.join(names)}")
    if only:
        wanted = set()
        for name in only:
            wanted |= _ancestors(plan, name) | {name}
        return [n for n in names if n in wanted]
    if until:
        wanted = _ancestors(plan, until) | {until}
        return [n for n in names if n in wanted]
    return names


def _ancestors(plan: Plan, name: str) -> set[str]:
    seen: set[str] = set()
    stack = list(plan.stages[name].deps)
    while stack:
        dep = stack.pop()
        if dep not in seen:
            seen.add(dep)
            stack.extend(plan.stages[dep].deps)
    return seen


def run_job(plan: Plan, *, until: str | None = None, only: list[str] | None = None,
            force: list[str] | None = None, use_ray: bool = True, progress: bool = True,
            echo: Callable[[str], None] = print, view: JobView | None = None) -> dict:
    """Bring the selected stages up to date; return the report (also written as report.json).

    ``view`` shows events and progress (default: one line per event through ``echo``)."""
    started = time.time()
    names = select_stages(plan, until, only, force)
    force = set(force or [])
    view = view or JobView(echo)
    plan.job_dir.mkdir(parents=True, exist_ok=True)
    outcomes: dict[str, StageOutcome] = {}
    with _job_lock(plan.job_dir):
        pending = _reuse_complete(plan, names, force, outcomes, view)
        if pending:
            check_stages_fit(plan, pending, echo)   # stages declaring GPU memory they cannot fit: refused
            runner = _run_with_ray if use_ray else _run_in_process
            with view.watching():
                runner(plan, pending, force, outcomes, progress, view)
    return write_report(plan, names, outcomes, started, echo=echo)


def _reuse_complete(plan: Plan, names: list[str], force: set[str],
                    outcomes: dict[str, StageOutcome], view: JobView) -> list[str]:
    """Mark complete stages as reused (no Ray needed); return the names still to run."""
    manifests: dict[str, dict] = {}
    dirs: dict[str, Path] = {}
    pending = []
    for name in names:
        stage = plan.stages[name]
        if any(dep in pending for dep in stage.deps) or name in force:
            pending.append(name)
            continue
        run = _absolute(resolve_stage(plan, stage, manifests, dirs))
        manifest = is_complete(run)
        if manifest is None:
            pending.append(name)
            continue
        manifests[name], dirs[name] = manifest, run.out_dir
        outcomes[name] = StageOutcome(name, stage.kind, "reused", run.out_dir, manifest)
        view.reused(name, run.out_dir)
    return pending


def _context(plan: Plan, stage: PlannedStage, progress: bool) -> StageContext:
    r = stage.entry.resources
    return StageContext(job=plan.job.name, stage=stage.name, seed=plan.job.seed,
                        device="cuda" if r.num_gpus > 0 else "cpu", num_cpus=max(1, int(r.num_cpus)),
                        num_gpus=r.num_gpus, progress=progress)


def _absolute(run: StageRun) -> StageRun:
    """Absolute paths, so a Ray worker with another working directory finds them."""
    inputs = {k: (str(Path(v).resolve()) if Path(v).exists() else v) for k, v in run.inputs.items()}
    return replace(run, out_dir=run.out_dir.resolve(), inputs=inputs)


def _ready(plan: Plan, pending: list[str], outcomes: dict[str, StageOutcome]) -> list[str]:
    return [n for n in pending
            if all(d in outcomes and outcomes[d].ok for d in plan.stages[n].deps)]


def _blocked(plan: Plan, pending: list[str], outcomes: dict[str, StageOutcome]) -> list[str]:
    return [n for n in pending
            if any(d in outcomes and not outcomes[d].ok for d in plan.stages[n].deps)]


def _resolve_ready(plan: Plan, name: str, outcomes: dict[str, StageOutcome]) -> StageRun:
    manifests = {n: o.manifest for n, o in outcomes.items() if o.ok}
    dirs = {n: o.out_dir for n, o in outcomes.items() if o.ok}
    return _absolute(resolve_stage(plan, plan.stages[name], manifests, dirs))


def _run_in_process(plan: Plan, pending: list[str], force: set[str],
                    outcomes: dict[str, StageOutcome], progress: bool, view: JobView) -> None:
    """Run stages one by one in this process (tests, debugging: ``--no-ray``)."""
    for name in list(pending):
        if name in _blocked(plan, [name], outcomes):
            outcomes[name] = StageOutcome(name, plan.stages[name].kind, "skipped", None, None)
            view.skipped(name)
            continue
        run = _resolve_ready(plan, name, outcomes)
        if name not in force and (manifest := is_complete(run)):
            outcomes[name] = _finished(name, run, manifest, "reused", view)
            continue
        _start(run, force, view)
        try:
            manifest = execute_stage(run, _context(plan, plan.stages[name], progress))
            outcomes[name] = _finished(name, run, manifest, "ran", view)
        except Exception as e:  # noqa: BLE001 - recorded as the stage's status, job exits non-zero
            outcomes[name] = _failed(name, run, e, view)


def _run_with_ray(plan: Plan, pending: list[str], force: set[str],
                  outcomes: dict[str, StageOutcome], progress: bool, view: JobView) -> None:
    """Submit ready stages as Ray tasks until every pending stage ran, failed or was skipped."""
    from jobs import ray_tasks  # the only place that imports ray

    ray_tasks.init_ray(plan.job.ray, {**STAGE_ENV, "MEDALIGN_COMMAND": " ".join(sys.argv)}, view.note)
    running: dict = {}
    waiting = list(pending)
    while waiting or running:
        for name in _blocked(plan, waiting, outcomes):
            waiting.remove(name)
            outcomes[name] = StageOutcome(name, plan.stages[name].kind, "skipped", None, None)
            view.skipped(name)
        for name in _ready(plan, waiting, outcomes):
            waiting.remove(name)
            run = _resolve_ready(plan, name, outcomes)
            if name not in force and (manifest := is_complete(run)):
                outcomes[name] = _finished(name, run, manifest, "reused", view)
                continue
            stage = plan.stages[name]
            _start(run, force, view)
            ref = ray_tasks.submit(run, _context(plan, stage, progress), stage.entry.resources)
            running[ref] = (name, run)
        if not running:
            if waiting and (_ready(plan, waiting, outcomes) or _blocked(plan, waiting, outcomes)):
                continue          # a stage reused just now made others ready
            break
        done_ref, name, run, result = ray_tasks.wait_one(running)
        del running[done_ref]
        if isinstance(result, BaseException):
            outcomes[name] = _failed(name, run, result, view)
        else:
            outcomes[name] = _finished(name, run, result, "ran", view)


def _start(run: StageRun, force: set[str], view: JobView) -> None:
    """Announce a stage; a forced stage starts from an empty directory (no stale checkpoints)."""
    if run.name in force and run.out_dir.exists():
        shutil.rmtree(run.out_dir)
        view.started(run.name, run.kind, run.out_dir, " (forced: old directory removed)")
        return
    state = attempt_state(run.out_dir, run.key)
    note = {"killed": " (resuming a killed attempt)", "failed": " (redoing a failed attempt)"}.get(state, "")
    view.started(run.name, run.kind, run.out_dir, note)


def _finished(name: str, run: StageRun, manifest: dict, status: str, view: JobView) -> StageOutcome:
    view.finished(name, run.kind, status, manifest)
    return StageOutcome(name, run.kind, status, run.out_dir, manifest)


def _failed(name: str, run: StageRun, error: BaseException, view: JobView) -> StageOutcome:
    message = stage_error(error)
    view.failed(name, run.out_dir, message)
    return StageOutcome(name, run.kind, "failed", run.out_dir, None, error=message)


def stage_error(error: BaseException) -> str:
    """One line for a stage's failure, unwrapping Ray's task error."""
    cause = getattr(error, "cause", None) or error   # RayTaskError wraps the stage's exception
    return str(cause) if isinstance(cause, StageFailed) else describe_error(cause)


@contextmanager
def _job_lock(job_dir: Path) -> Iterator[None]:
    """One run of a job at a time: a second concurrent run fails at once with a clear message."""
    path = job_dir / ".lock"
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another run of this job holds {path}; wait for it or stop it") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
