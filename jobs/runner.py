"""The DAG runner: reuse complete stages, run the rest as Ray tasks, write the job report.

    plan = load_plan("jobs/quickstart.yaml", overrides)
    report = run_job(plan)            # -> dict, also written to runs/<job>/report.json

Order of work:
1. Without Ray, walk the stages in dependency order and recompute each key from its resolved
   config and its inputs' digests; a stage whose directory holds a manifest for that key is
   reused. A job whose stages are all complete therefore finishes without starting Ray.
2. Start Ray (in-process, or join ``ray.address``) and submit every stage whose inputs are ready
   as a task with the stage's resources; independent branches run concurrently. A failed stage
   stops its descendants only; the job exits non-zero.
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

from medalign.stage import StageContext

from jobs.execute import ResolvedStage, execute_stage, is_complete, resolve_stage
from jobs.gpu_plan import check_stages_fit
from jobs.plan import Plan, PlannedStage
from jobs.report import StageOutcome, write_report

log = logging.getLogger("medalign.jobs")

# Environment every stage task gets: offline hubs (nothing is downloaded unless a user asks for a
# hub id on a cluster that can reach it), quiet tokenizers.
STAGE_ENV = {"TOKENIZERS_PARALLELISM": "false", "HF_HUB_DISABLE_TELEMETRY": "1", "WANDB_DISABLED": "true"}


def select_stages(plan: Plan, until: str | None = None, only: list[str] | None = None) -> list[str]:
    """Names of the stages to bring up to date: all, or ``until`` and its ancestors, or ``only``."""
    names = list(plan.stages)
    for name in [until, *(only or [])]:
        if name and name not in plan.stages:
            raise KeyError(f"no stage {name!r} in job {plan.job.name}; stages: {', '.join(names)}")
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
            echo: Callable[[str], None] = print) -> dict:
    """Bring the selected stages up to date; return the report (also written as report.json)."""
    started = time.time()
    names = select_stages(plan, until, only)
    force = set(force or [])
    plan.job_dir.mkdir(parents=True, exist_ok=True)
    outcomes: dict[str, StageOutcome] = {}
    with _job_lock(plan.job_dir):
        pending = _reuse_complete(plan, names, force, outcomes, echo)
        if pending:
            check_stages_fit(plan, pending, echo)   # stages declaring GPU memory they cannot fit: refused
            runner = _run_with_ray if use_ray else _run_in_process
            runner(plan, pending, force, outcomes, progress, echo)
    return write_report(plan, names, outcomes, started, echo=echo)


def _reuse_complete(plan: Plan, names: list[str], force: set[str],
                    outcomes: dict[str, StageOutcome], echo) -> list[str]:
    """Mark complete stages as reused (no Ray needed); return the names still to run."""
    manifests: dict[str, dict] = {}
    dirs: dict[str, Path] = {}
    pending = []
    for name in names:
        stage = plan.stages[name]
        if any(dep in pending for dep in stage.deps) or name in force:
            pending.append(name)
            continue
        resolved = _absolute(resolve_stage(plan, stage, manifests, dirs))
        manifest = is_complete(resolved)
        if manifest is None:
            pending.append(name)
            continue
        manifests[name], dirs[name] = manifest, resolved.out_dir
        outcomes[name] = StageOutcome(name, stage.kind, "reused", resolved.out_dir, manifest)
        echo(f"= {name:<13} reused   {resolved.out_dir}")
    return pending


def _context(plan: Plan, stage: PlannedStage, progress: bool) -> StageContext:
    r = stage.entry.resources
    return StageContext(job=plan.job.name, stage=stage.name, seed=plan.job.seed,
                        device="cuda" if r.num_gpus > 0 else "cpu", num_cpus=max(1, int(r.num_cpus)),
                        num_gpus=r.num_gpus, progress=progress)


def _absolute(resolved: ResolvedStage) -> ResolvedStage:
    """Absolute paths, so a Ray worker with another working directory finds them."""
    inputs = {k: (str(Path(v).resolve()) if Path(v).exists() else v) for k, v in resolved.inputs.items()}
    return replace(resolved, out_dir=resolved.out_dir.resolve(), inputs=inputs)


def _ready(plan: Plan, pending: list[str], outcomes: dict[str, StageOutcome]) -> list[str]:
    return [n for n in pending
            if all(d in outcomes and outcomes[d].ok for d in plan.stages[n].deps)]


def _blocked(plan: Plan, pending: list[str], outcomes: dict[str, StageOutcome]) -> list[str]:
    return [n for n in pending
            if any(d in outcomes and not outcomes[d].ok for d in plan.stages[n].deps)]


def _resolve_ready(plan: Plan, name: str, outcomes: dict[str, StageOutcome]) -> ResolvedStage:
    manifests = {n: o.manifest for n, o in outcomes.items() if o.ok}
    dirs = {n: o.out_dir for n, o in outcomes.items() if o.ok}
    return _absolute(resolve_stage(plan, plan.stages[name], manifests, dirs))


def _run_in_process(plan: Plan, pending: list[str], force: set[str],
                    outcomes: dict[str, StageOutcome], progress: bool, echo) -> None:
    """Run stages one by one in this process (tests, debugging: ``--no-ray``)."""
    for name in list(pending):
        if name in _blocked(plan, [name], outcomes):
            outcomes[name] = StageOutcome(name, plan.stages[name].kind, "skipped", None, None)
            continue
        resolved = _resolve_ready(plan, name, outcomes)
        _start_message(resolved, force, echo)
        try:
            manifest = _reuse_or_execute(resolved, _context(plan, plan.stages[name], progress), force)
            outcomes[name] = _finished(name, resolved, manifest, echo)
        except Exception as e:  # noqa: BLE001 - recorded as the stage's status, job exits non-zero
            outcomes[name] = _failed(name, resolved, e, echo)


def _reuse_or_execute(resolved: ResolvedStage, ctx: StageContext, force: set[str]) -> dict:
    if resolved.name not in force and (manifest := is_complete(resolved)):
        return dict(manifest, _reused=True)
    return execute_stage(resolved, ctx)


def _run_with_ray(plan: Plan, pending: list[str], force: set[str],
                  outcomes: dict[str, StageOutcome], progress: bool, echo) -> None:
    """Submit ready stages as Ray tasks until every pending stage ran, failed or was skipped."""
    from jobs import ray_tasks  # the only place that imports ray

    ray_tasks.init_ray(plan.job.ray, {**STAGE_ENV, "MEDALIGN_COMMAND": " ".join(sys.argv)}, echo)
    running: dict = {}
    waiting = list(pending)
    while waiting or running:
        for name in _blocked(plan, waiting, outcomes):
            waiting.remove(name)
            outcomes[name] = StageOutcome(name, plan.stages[name].kind, "skipped", None, None)
            echo(f"- {name:<13} skipped  (an input failed)")
        for name in _ready(plan, waiting, outcomes):
            waiting.remove(name)
            resolved = _resolve_ready(plan, name, outcomes)
            stage = plan.stages[name]
            _start_message(resolved, force, echo)
            ref = ray_tasks.submit(resolved, _context(plan, stage, progress), stage.entry.resources)
            running[ref] = (name, resolved)
        if not running:
            break
        done_ref, name, resolved, result = ray_tasks.wait_one(running)
        del running[done_ref]
        if isinstance(result, BaseException):
            outcomes[name] = _failed(name, resolved, result, echo)
        else:
            outcomes[name] = _finished(name, resolved, result, echo)


def _start_message(resolved: ResolvedStage, force: set[str], echo) -> None:
    """Announce a stage; a forced stage starts from an empty directory (no stale checkpoints)."""
    if resolved.name in force and resolved.out_dir.exists():
        shutil.rmtree(resolved.out_dir)
        echo(f"> {resolved.name:<13} running  {resolved.out_dir} (forced: old directory removed)")
        return
    resume = " (resuming a killed attempt)" if resolved.out_dir.exists() else ""
    echo(f"> {resolved.name:<13} running  {resolved.out_dir}{resume}")


def _finished(name: str, resolved: ResolvedStage, manifest: dict, echo) -> StageOutcome:
    status = "reused" if manifest.pop("_reused", False) else "ran"
    wall = manifest.get("timings", {}).get("wall_s")
    echo(f"+ {name:<13} {status:<8} {wall:8.1f} s" if wall is not None else f"+ {name} {status}")
    return StageOutcome(name, resolved.kind, status, resolved.out_dir, manifest)


def _failed(name: str, resolved: ResolvedStage, error: BaseException, echo) -> StageOutcome:
    message = _short_error(error)
    echo(f"! {name:<13} FAILED   {message}\n  log: {resolved.out_dir / 'logs' / 'stage.log'}")
    return StageOutcome(name, resolved.kind, "failed", resolved.out_dir, None, error=message)


def _short_error(error: BaseException) -> str:
    cause = getattr(error, "cause", None) or error   # RayTaskError wraps the stage's exception
    text = f"{type(cause).__name__}: {cause}"
    return text if len(text) < 2000 else text[:2000] + " ..."


@contextmanager
def _job_lock(job_dir: Path) -> Iterator[None]:
    """One run of a job at a time: a second concurrent run fails at once with a clear message."""
    path = job_dir / ".lock"
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another run of this job holds {path}; wait for it or stop it") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
