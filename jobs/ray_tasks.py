"""Ray wrappers: start or join Ray, run a stage as a task with the resources its YAML asks for.

The only module (with ``jobs/submit.py``, ``jobs/train_group.py`` and ``jobs/ray_data_build.py``)
that imports ray. A stage with ``resources.num_workers > 1`` runs data-parallel on Ray Train
workers (``jobs/train_group.py``); every other stage is one task.
"""

from __future__ import annotations

import os
import time

import ray

from medalign.executor import StageRun, execute_stage
from medalign.stage import StageContext

from jobs.schema import RayConfig, Resources


def init_ray(cfg: RayConfig, env: dict[str, str], echo) -> None:
    """Start Ray in-process (``address: null``) or join a cluster; no-op when already started."""
    if ray.is_initialized():
        return
    t0 = time.time()
    env_vars = {**env, **cfg.env_vars}
    # offline hub flags travel to local workers only; a cluster decides for itself (a submitted
    # job's own variables, such as MEDALIGN_GIT_COMMIT, reach its tasks through the job's runtime env)
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if name in os.environ:
            env_vars.setdefault(name, os.environ[name])
    # stages write their output to their own log files (medalign.stagelog); nothing of a worker's
    # output is forwarded to the driver's terminal, which shows the job's view instead
    kwargs = dict(namespace=cfg.namespace, runtime_env={"env_vars": env_vars},
                  log_to_driver=False, logging_level="WARNING")
    if cfg.address is None:
        _quiet_default_token_notice()
        ray.init(num_cpus=cfg.num_cpus, include_dashboard=cfg.include_dashboard, **kwargs)
    else:
        ray.init(address=cfg.address, **kwargs)
    res = ray.cluster_resources()
    echo(f"  ray {'started' if cfg.address is None else 'joined ' + cfg.address} in "
         f"{time.time() - t0:.1f} s: {res.get('CPU', 0):g} CPU, {res.get('GPU', 0):g} GPU")


def _quiet_default_token_notice() -> None:
    """An in-process Ray started by `medalign run` turns token auth on by default and says so on
    every run; the notice is for people who start clusters, not for a laptop job. Other Ray
    warnings (and the notice when joining a cluster) still show."""
    import logging

    def drop(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")

    logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(drop)


def _run_stage(run: StageRun, ctx: StageContext) -> dict:
    from jobs.ray_generation import register
    register()                            # generation.backend: ray_actors, in this worker
    return execute_stage(run, ctx)


def submit(run: StageRun, ctx: StageContext, resources: Resources):
    """Submit one stage; returns an ObjectRef to its manifest."""
    if resources.num_workers > 1:
        from jobs.train_group import submit_data_parallel

        return submit_data_parallel(run, ctx, resources)
    options = dict(num_cpus=resources.num_cpus, num_gpus=resources.num_gpus, max_retries=0,
                   name=f"medalign:{run.name}")
    if resources.memory_gb:
        options["memory"] = int(resources.memory_gb * (1 << 30))
    if resources.accelerator_type:
        options["accelerator_type"] = resources.accelerator_type
    return ray.remote(_run_stage).options(**options).remote(run, ctx)


def wait_one(running: dict):
    """Wait for any running stage; return (ref, name, run, manifest or the exception)."""
    ready, _ = ray.wait(list(running), num_returns=1)
    ref = ready[0]
    name, run = running[ref]
    try:
        result = ray.get(ref)
    except Exception as e:  # noqa: BLE001 - the caller records it as the stage's failure
        result = e
    return ref, name, run, result
