"""Data parallelism for PPO with plain torch.distributed: who am I, and sums across processes.

Launched by ``torchrun --nproc_per_node N`` (which sets RANK / WORLD_SIZE / MASTER_ADDR), every
process runs the same loop on its own slice of each step's prompts. What crosses processes:

* gradients (summed: every loss is already divided by the GLOBAL token count, so the sum of the
  per-process gradients is the gradient of the global batch),
* the statistics that must be global for the result not to depend on the number of processes
  (advantage whitening moments, token counts, metrics).

Single process (no WORLD_SIZE, or 1): every helper here is a no-op and nothing is initialised.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_distributed", "all_reduce_sum", "all_reduce_sum_", "derived_seed",
           "sync_gradients"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed() -> DistInfo:
    """Join the process group torchrun describes in the environment (once; NCCL on GPU, gloo on
    CPU); return our place in it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(),
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over processes in place (no-op on one process); returns it."""
    if _active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_sum(values: dict[str, float]) -> dict[str, float]:
    """Sum a dict of floats over processes (one collective, float64); same keys on every rank."""
    if not _active():
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return dict(zip(keys, t.tolist()))


def sync_gradients(params: list[torch.nn.Parameter]) -> None:
    """Sum the ``.grad`` of ``params`` over processes with one flat all-reduce.

    A parameter without a gradient this round contributes zeros, so every rank sends a buffer of
    the same layout.
    """
    if not _active() or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def derived_seed(seed: int, *parts: object) -> int:
    """A seed in [0, 2**31) derived from ``seed`` and labels, e.g. ``(seed, "generate", step, rank)``.

    Every random draw of the PPO loop takes a seed derived from (run seed, what, step, ...), so a
    resumed run draws the same numbers as an uninterrupted one without replaying RNG streams.
    """
    text = "/".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big") & 0x7FFFFFFF
