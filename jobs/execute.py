"""Turn a planned stage whose upstream stages are complete into a :class:`StageRun`; describe a
plan with its keys (``medalign run JOB --plan --json``).

The run itself (log file, progress, manifest, acceptance) is :func:`medalign.executor.execute_stage`,
called in-process (``--no-ray``), inside a Ray task (``jobs/ray_tasks.py``) or on Ray Train's
rank 0 (``jobs/train_group.py``). This module does not import ray.
"""

from __future__ import annotations

from pathlib import Path

from medalign.artifacts import read_manifest
from medalign.config import ConfigError
from medalign.errors import UserError
from medalign.executor import StageRun, attempt_state, describe_error, prepare_run

from jobs.plan import Plan, PlannedStage


def resolve_stage(plan: Plan, stage: PlannedStage, manifests: dict[str, dict],
                  dirs: dict[str, Path]) -> StageRun:
    """Compute the key and input paths of ``stage``; every upstream stage must be complete
    (``manifests`` and ``dirs`` hold theirs). Upstream inputs are identified by the upstream
    manifest's output digest (+ ``/model`` for a checkpoint), external ones by content or id."""
    inputs, digests = {}, {}
    for name, ref in stage.inputs.items():
        if ref.stage:
            up = dirs[ref.stage]
            inputs[name] = str(up / "model") if ref.is_model else str(up)
            digests[name] = manifests[ref.stage]["outputs"]["digest"] + ("/model" if ref.is_model else "")
        else:
            inputs[name] = ref.external
    return prepare_run(stage.kind, stage.config, inputs, seed=plan.job.seed, name=stage.name,
                       num_workers=stage.entry.resources.num_workers, digests=digests,
                       job_dir=plan.job_dir)


def describe_plan(plan: Plan) -> dict:
    """Every stage's resolved config, inputs, resources and key, as JSON (``--plan --json``).

    A key is computed when every upstream stage is complete (its output digest is part of the
    key); otherwise ``key`` is null and ``key_reason`` says which upstream stage is missing.
    ``state`` is that of the stage's directory: new, killed, failed or complete."""
    manifests: dict[str, dict] = {}
    dirs: dict[str, Path] = {}
    stages = []
    for name, st in plan.stages.items():
        entry = {"name": name, "kind": st.kind, "config": st.config.model_dump(mode="json"),
                 "inputs": {n: {**({"stage": r.stage} if r.stage else {"path": r.external}), "model": r.is_model}
                            for n, r in st.inputs.items()},
                 "resources": st.entry.resources.model_dump(mode="json"),
                 "key": None, "key_reason": None, "dir": None, "state": None}
        waiting = [d for d in st.deps if d not in manifests]
        if waiting:
            entry["key_reason"] = (f"upstream stage(s) {', '.join(waiting)} not complete yet: the key "
                                   f"needs their output digests")
        else:
            try:
                run = resolve_stage(plan, st, manifests, dirs)
            except (OSError, ConfigError, UserError) as e:
                entry["key_reason"] = f"cannot compute the key: {describe_error(e)}"
            else:
                state = attempt_state(run.out_dir, run.key)
                entry.update(key=run.key, dir=str(run.out_dir), state=state)
                if state == "complete":
                    manifests[name], dirs[name] = read_manifest(run.out_dir), run.out_dir
        stages.append(entry)
    return {"job": plan.job.name, "source": str(plan.source), "seed": plan.job.seed,
            "job_dir": str(plan.job_dir), "ray": plan.job.ray.model_dump(mode="json"), "stages": stages}
