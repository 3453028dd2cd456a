"""Run a trl stage on several processes (torchrun, gloo on CPU / NCCL on GPU) or under DeepSpeed.

Three ways a stage ends up distributed:

1. ``medalign train sft --nproc 2 --deepspeed zero2 ...`` or a stage config with
   ``distributed: {nproc: 2, deepspeed: zero2}``: :func:`maybe_launch` spawns
   ``torchrun --nproc_per_node 2 -m alignment.distributed ...``; every rank runs the same stage
   function (this module's ``__main__``), rank 0 writes the outputs and its metrics, and the
   parent returns those metrics as if the stage had run in-process.
2. The job runner's Ray Train group (``resources.num_workers > 1``) starts the ranks itself; the
   environment then already says ``WORLD_SIZE > 1`` and nothing is spawned.
3. Single process: everything here is a no-op.

Whoever started the ranks may listen for the stages' checkpoints (:func:`on_checkpoint`): every
rank calls :func:`checkpoint_saved` once a checkpoint is complete on all ranks (PPO's own, the
trainers' through :class:`CheckpointNotice`). The Ray Train group reports them to Ray Train; this
module stays free of ray. :func:`my_shard` / :func:`gather_shards` split a list over the ranks and
put it back together in order (stages that sample: each rank generates for its share of prompts).

DeepSpeed configs live in ``alignment/deepspeed/`` (``zero2.json``, ``zero3.json``; "auto" values
are filled from the trainer arguments). They name no optimizer, so the trainer's torch AdamW is
used and nothing needs compiling: that is what lets ZeRO run on a CPU (``DS_BUILD_OPS=0``,
``DS_ACCELERATOR=cpu``, ``use_cpu=True``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Callable, Literal

from pydantic import Field

from medalign.config import StrictModel

DEEPSPEED_DIR = Path(__file__).resolve().parent / "deepspeed"
_CHILD_FLAG = "MEDALIGN_DISTRIBUTED_CHILD"


class DistributedSpec(StrictModel):
    """How many processes train, and whether DeepSpeed ZeRO shards them."""

    nproc: int = Field(1, ge=1)              # processes on this machine (torchrun); 1 = in-process
    deepspeed: Literal["none", "zero2", "zero3"] | str = "none"  # a ZeRO preset or a DeepSpeed JSON path
    timeout_s: int = Field(3600, ge=10)      # the spawned torchrun is killed after this long


def rank() -> int:
    """This process's global rank (0 outside a distributed run)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True on the rank that writes outputs (rank 0, or the only process)."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (no-op without an initialised process group)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


_checkpoint_listeners: list[Callable[[int, Path], None]] = []


def on_checkpoint(listener: Callable[[int, Path], None]) -> Callable[[], None]:
    """Call ``listener(step, path)`` after every checkpoint a stage completes in this process;
    returns the function that removes it again. Every rank calls its listeners, after a barrier,
    so a listener may itself be a collective (Ray Train's ``report``)."""
    _checkpoint_listeners.append(listener)
    return lambda: _checkpoint_listeners.remove(listener)


def checkpoint_saved(step: int, path: Path) -> None:
    """A stage's checkpoint ``path`` (after ``step`` optimizer / PPO steps) is complete on every
    rank; tell the listeners. Collective: every rank calls it, once per checkpoint."""
    if not _checkpoint_listeners:
        return
    barrier()
    for listener in list(_checkpoint_listeners):
        listener(step, Path(path))


def checkpoint_notice():
    """A transformers ``TrainerCallback`` that calls :func:`checkpoint_saved` after each save
    (the trainer has written ``checkpoint-<step>`` on every rank by then)."""
    from transformers import TrainerCallback

    class CheckpointNotice(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            checkpoint_saved(state.global_step, Path(args.output_dir) / f"checkpoint-{state.global_step}")

    return CheckpointNotice()


def my_shard(items: list) -> list:
    """This rank's contiguous share of ``items`` (all of them on one process)."""
    n, r, w = len(items), rank(), world_size()
    return items[r * n // w:(r + 1) * n // w]


def gather_shards(local: list) -> list:
    """Every rank's :func:`my_shard` results, concatenated in rank order (= the original order),
    on every rank. Objects travel pickled (``all_gather_object``); one process: ``local``."""
    import torch.distributed as dist

    if world_size() <= 1 or not (dist.is_available() and dist.is_initialized()):
        return list(local)
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, list(local))
    return [x for part in parts for x in part]


def broadcast_from_main(obj):
    """Rank 0's ``obj`` on every rank (``obj`` of the other ranks is ignored); one process: ``obj``."""
    import torch.distributed as dist

    if world_size() <= 1 or not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def deepspeed_config_path(spec: DistributedSpec) -> str | None:
    """The DeepSpeed JSON for ``spec.deepspeed`` (None when DeepSpeed is off)."""
    if spec.deepspeed == "none":
        return None
    if spec.deepspeed in ("zero2", "zero3"):
        return str(DEEPSPEED_DIR / f"{spec.deepspeed}.json")
    path = Path(spec.deepspeed)
    if not path.is_file():
        raise FileNotFoundError(f"distributed.deepspeed: {path} is not a file (use zero2, zero3 or a JSON path)")
    return str(path)


def trainer_kwargs(spec: DistributedSpec, device: str) -> dict:
    """Keyword arguments for a trl/transformers config: CPU or not, DeepSpeed JSON, DDP settings."""
    kwargs = {"use_cpu": device == "cpu", "deepspeed": deepspeed_config_path(spec)}
    if world_size() > 1:
        kwargs["ddp_backend"] = "gloo" if device == "cpu" else "nccl"
        kwargs["ddp_find_unused_parameters"] = False
    return kwargs


def _needs_launch(spec: DistributedSpec) -> bool:
    if os.environ.get(_CHILD_FLAG) or world_size() > 1:
        return False
    return spec.nproc > 1 or spec.deepspeed != "none"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def maybe_launch(stage: str, cfg: StrictModel, inputs: dict[str, str], out: Path, ctx) -> dict | None:
    """Spawn torchrun for ``stage`` when ``cfg.distributed`` asks for it; return rank 0's metrics.

    Returns None when the stage should just run in this process.
    """
    spec: DistributedSpec = cfg.distributed
    if not _needs_launch(spec):
        return None
    launch_dir = Path(out) / "logs" / "launch"
    launch_dir.mkdir(parents=True, exist_ok=True)
    (launch_dir / "config.json").write_text(cfg.model_dump_json(), encoding="utf-8")
    (launch_dir / "inputs.json").write_text(json.dumps(inputs), encoding="utf-8")
    metrics_path = launch_dir / "metrics.json"
    metrics_path.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={spec.nproc}",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
           "-m", "alignment.distributed", "--stage", stage, "--dir", str(launch_dir), "--out", str(out),
           "--seed", str(ctx.seed), "--device", ctx.device, "--job", ctx.job]
    env = {**os.environ, _CHILD_FLAG: "1", "DS_BUILD_OPS": "0", "OMP_NUM_THREADS": "1"}
    if ctx.device == "cpu":
        env["DS_ACCELERATOR"] = "cpu"
    ctx.logger.info("launching %s on %d processes (deepspeed: %s): %s", stage, spec.nproc, spec.deepspeed,
                    " ".join(cmd))
    log_path = launch_dir / "torchrun.log"
    with open(log_path, "w", encoding="utf-8") as log_file:
        proc = subprocess.run(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT, timeout=spec.timeout_s)
    if proc.returncode != 0 or not metrics_path.is_file():
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-4000:]
        raise RuntimeError(f"distributed {stage} failed (exit {proc.returncode}); log {log_path}:\n{tail}")
    return json.loads(metrics_path.read_text(encoding="utf-8"))


def _child_main(argv: list[str] | None = None) -> int:
    """Entry point of each torchrun rank: run the stage, rank 0 writes its metrics."""
    import logging

    from medalign.registry import stage_module
    from medalign.stage import StageContext

    p = argparse.ArgumentParser(description="one rank of a distributed medalign stage (spawned by torchrun)")
    p.add_argument("--stage", required=True)
    p.add_argument("--dir", required=True, help="launch directory with config.json and inputs.json")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--job", default="adhoc")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"[rank {rank()}] %(levelname)s %(name)s: %(message)s")
    module = stage_module(a.stage)
    launch = Path(a.dir)
    cfg = module.Config.model_validate_json((launch / "config.json").read_text(encoding="utf-8"))
    inputs = json.loads((launch / "inputs.json").read_text(encoding="utf-8"))
    ctx = StageContext(job=a.job, stage=a.stage, seed=a.seed, device=a.device, progress=rank() == 0)
    try:
        metrics = module.run(cfg, inputs, Path(a.out), ctx)
        if is_main_process():
            metrics = {**metrics, "world_size": world_size()}
            (launch / "metrics.json").write_text(json.dumps(metrics, default=float), encoding="utf-8")
    finally:
        leave_process_group()
    return 0


def leave_process_group() -> None:
    """Destroy the process group the stage joined (the trainer's or PPO's) before Python exits.

    Left to interpreter teardown, gloo's worker threads can still be alive when their C++ objects
    are destroyed, and a rank dies with "terminate called without an active exception" (SIGABRT)
    after its work is done: seen once in CI on the 2-rank SFT test (pytorch/pytorch#190489).
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(_child_main())
