"""Data-parallel stages on Ray Train: ``resources.num_workers > 1``.

Every worker runs the same stage function; Ray Train's ``TorchTrainer`` starts the workers and
initialises ``torch.distributed`` (gloo on CPU, NCCL on GPU) before the stage runs, so the stage
sees an initialised process group exactly as under ``torchrun``: HF/trl trainers, the reward
model and our PPO loop shard the data, all-reduce gradients (or run DeepSpeed ZeRO-2/3 inside the
workers when the stage's ``distributed.deepspeed`` says so) and save on rank 0 only. Rank 0 keeps
the books (log, progress, manifest through :func:`medalign.executor.execute_stage`); the other
ranks log to ``logs/rank<N>.log``. The run directory must be on storage every worker can reach
(a shared file system on a cluster).

Failures: a worker that dies (a killed process, a lost node) or raises makes Ray Train stop the
group and start it again, up to ``resources.max_failures`` times (``FailureConfig``). The new
group runs the stage again in the same directory, and the stage resumes from its own last
complete checkpoint there (PPO: ``checkpoints/step-*``; the trl trainers:
``checkpoints/checkpoint-*``), so the result equals an uninterrupted run. Each checkpoint is
reported to Ray Train as metrics (``checkpoint_step``, ``checkpoint``); Ray Train copies nothing.

Test seam: with ``MEDALIGN_FAULT_KILL_AFTER_CHECKPOINT=<rank>:<step>`` in the environment of
``medalign run``, worker ``<rank>`` kills its own process (SIGKILL) right after checkpoint
``<step>`` of a data-parallel stage, once per stage directory (a marker in ``logs/`` says it
did). Tests use it to show the restart; nothing else sets it.
"""

from __future__ import annotations

import os
import signal
from dataclasses import replace
from pathlib import Path

import ray
from ray.train import FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer

from medalign.artifacts import is_successful, read_manifest
from medalign.errors import StageFailed
from medalign.executor import StageRun, execute_stage
from medalign.stage import StageContext

from jobs.schema import Resources

FAULT_ENV = "MEDALIGN_FAULT_KILL_AFTER_CHECKPOINT"


def _worker_loop(run: StageRun, ctx: StageContext, use_gpu: bool) -> None:
    """One rank: run the stage (rank 0 writes the manifest), reporting its checkpoints."""
    from alignment.distributed import on_checkpoint

    os.environ.setdefault("DS_BUILD_OPS", "0")          # DeepSpeed: no CUDA op builds
    if not use_gpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    rank = ray.train.get_context().get_world_rank()
    remove = on_checkpoint(lambda step, path: _checkpoint_reached(run.out_dir, rank, step, path))
    try:
        execute_stage(run, ctx, rank=rank, world_size=ray.train.get_context().get_world_size())
    finally:
        remove()


def _checkpoint_reached(out_dir: Path, rank: int, step: int, path: Path) -> None:
    """Every rank: tell Ray Train (a collective), then honour the test seam."""
    ray.train.report({"checkpoint_step": step, "checkpoint": str(path)})
    spec = os.environ.get(FAULT_ENV)
    if not spec or spec.split(":") != [str(rank), str(step)]:
        return
    marker = Path(out_dir) / "logs" / f"fault-injected-rank{rank}-step{step}"
    if marker.exists():
        return
    marker.write_text(f"{FAULT_ENV}={spec}: worker pid {os.getpid()} killed itself after checkpoint {path}\n")
    os.kill(os.getpid(), signal.SIGKILL)


def worker_resources(resources: Resources) -> dict[str, float]:
    """Ray resources of each worker: the stage's CPUs and GPUs split evenly, at least one CPU."""
    per_worker = {"CPU": max(1.0, resources.num_cpus / resources.num_workers)}
    if resources.num_gpus > 0:
        per_worker["GPU"] = resources.num_gpus / resources.num_workers
    return per_worker


def _fit(run: StageRun, ctx: StageContext, resources: Resources) -> dict:
    use_gpu = resources.num_gpus > 0
    per_worker = worker_resources(resources)
    # each rank gets its share of the stage's CPUs (torch threads) and GPUs
    worker_ctx = replace(ctx, num_cpus=max(1, int(per_worker["CPU"])), num_gpus=per_worker.get("GPU", 0))
    # Ray Train would turn every print() of the stage into a root-logger record; the stage's
    # output already goes to its log files (medalign.stagelog), so leave print alone
    os.environ["RAY_TRAIN_ENABLE_PRINT_PATCH"] = "0"
    # and keep the working directory of the job (relative paths in configs), not a Ray Train folder
    os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"
    trainer = TorchTrainer(
        lambda _config: _worker_loop(run, worker_ctx, use_gpu),
        scaling_config=ScalingConfig(num_workers=resources.num_workers, use_gpu=use_gpu,
                                     resources_per_worker=per_worker),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        run_config=RunConfig(name=f"{ctx.job}-{run.name}-{run.key}",
                             storage_path=str(run.out_dir.parent / ".ray_train"),
                             failure_config=FailureConfig(max_failures=resources.max_failures)),
    )
    try:
        trainer.fit()
    except Exception as e:  # noqa: BLE001 - rank 0's manifest says why, when it got that far
        manifest = read_manifest(run.out_dir)
        why = ("; ".join(manifest["problems"]) if manifest and manifest.get("problems")
               else f"{type(e).__name__}: {str(e)[:1000]}")
        raise StageFailed(f"{why} (data-parallel group of {resources.num_workers}, given up after "
                          f"{resources.max_failures} restart(s): resources.max_failures)") from None
    manifest = read_manifest(run.out_dir)
    if not is_successful(manifest):
        raise StageFailed(f"stage {run.name}: data-parallel run ended without a complete manifest")
    return manifest


def submit_data_parallel(run: StageRun, ctx: StageContext, resources: Resources):
    """Run the stage on ``num_workers`` Ray Train workers; returns an ObjectRef to the manifest."""
    options = dict(num_cpus=0, max_retries=0, name=f"medalign:{run.name}:driver")
    seam = {k: v for k, v in os.environ.items() if k == FAULT_ENV}
    if seam:    # the test seam travels to the group's driver task, and from it to the workers
        options["runtime_env"] = {"env_vars": seam}
    return ray.remote(_fit).options(**options).remote(run, ctx, resources)
