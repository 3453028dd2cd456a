"""Data-parallel stages on Ray Train: ``resources.num_workers > 1``.

Every worker runs the same stage function; Ray Train's ``TorchTrainer`` starts the workers and
initialises ``torch.distributed`` (gloo on CPU, NCCL on GPU) before the stage runs, so the stage
sees an initialised process group exactly as under ``torchrun``: HF/trl trainers and our PPO loop
shard data, all-reduce gradients and save on rank 0 only. Rank 0 writes the manifest.
The run directory must be on storage every worker can reach (a shared file system on a cluster).
"""

from __future__ import annotations

import ray
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer

from medalign.artifacts import is_successful, read_manifest
from medalign.errors import StageFailed
from medalign.executor import StageRun, execute_stage
from medalign.stage import StageContext

from jobs.schema import Resources


def _fit(run: StageRun, ctx: StageContext, resources: Resources) -> dict:
    use_gpu = resources.num_gpus > 0
    per_worker = {"CPU": max(1.0, resources.num_cpus / resources.num_workers)}
    if use_gpu:
        per_worker["GPU"] = resources.num_gpus / resources.num_workers

    def loop_per_worker(_config: dict) -> None:
        rank = ray.train.get_context().get_world_rank()
        execute_stage(run, ctx, rank=rank)

    trainer = TorchTrainer(
        loop_per_worker,
        scaling_config=ScalingConfig(num_workers=resources.num_workers, use_gpu=use_gpu,
                                     resources_per_worker=per_worker),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        run_config=RunConfig(name=f"{ctx.job}-{run.name}",
                             storage_path=str(run.out_dir.parent / ".ray_train")),
    )
    try:
        trainer.fit()
    except Exception as e:  # noqa: BLE001 - rank 0's manifest says why, when it got that far
        manifest = read_manifest(run.out_dir)
        if manifest and manifest.get("problems"):
            raise StageFailed("; ".join(manifest["problems"])) from None
        raise StageFailed(f"data-parallel run failed: {type(e).__name__}: {str(e)[:1000]}") from None
    manifest = read_manifest(run.out_dir)
    if not is_successful(manifest):
        raise StageFailed(f"stage {run.name}: data-parallel run ended without a complete manifest")
    return manifest


def submit_data_parallel(run: StageRun, ctx: StageContext, resources: Resources):
    """Run the stage on ``num_workers`` Ray Train workers; returns an ObjectRef to the manifest."""
    return ray.remote(_fit).options(num_cpus=0, max_retries=0,
                                    name=f"medalign:{run.name}:driver").remote(run, ctx, resources)
