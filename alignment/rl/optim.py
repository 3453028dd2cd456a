"""Optimizer steps for the policy and the critic: plain AdamW (+ gradient sum across processes)
or a DeepSpeed ZeRO engine. The PPO update talks to both through one small protocol::

    updater.module(...)        # forward (the model, or the DeepSpeed engine)
    updater.begin(lr)          # start of a mini-batch: set the learning rate
    updater.backward(loss)     # accumulate gradients of one micro-batch
    updater.finish()           # end of the mini-batch: sync, clip, optimizer step, zero grads
    updater.save(dir) / updater.load(dir)   # optimizer (and engine) state for exact resume

The learning rate is a pure function of the PPO step (:func:`lr_at`), set before every optimizer
step, so a resumed run needs no scheduler state to follow the same schedule.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from alignment.rl.parallel import DistInfo, sync_gradients

__all__ = ["Updater", "PlainUpdater", "DeepSpeedUpdater", "lr_at", "trainable_parameters"]


def lr_at(step: int, total_steps: int, base_lr: float, schedule: str, warmup_steps: int) -> float:
    """Learning rate for PPO step ``step`` (0-based) of ``total_steps``.

    Linear warm-up over ``warmup_steps`` from ``base_lr / warmup_steps``, then constant, linear
    decay to 0, or cosine decay to 0 over the remaining steps.
    """
    if warmup_steps and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    if schedule == "linear":
        return base_lr * (1.0 - progress)
    if schedule == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown lr schedule {schedule!r}")


def trainable_parameters(module: nn.Module) -> list[nn.Parameter]:
    """Parameters with ``requires_grad``, each once (tied weights appear once), in module order."""
    seen, out = set(), []
    for p in module.parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


class Updater(Protocol):
    module: nn.Module

    def begin(self, lr: float) -> None: ...
    def backward(self, loss: torch.Tensor) -> None: ...
    def finish(self) -> float: ...
    def save(self, directory: Path) -> None: ...
    def load(self, directory: Path) -> None: ...


class PlainUpdater:
    """AdamW on the trainable parameters; gradients summed over processes before the step."""

    def __init__(self, module: nn.Module, name: str, lr: float, betas, eps: float,
                 weight_decay: float, max_grad_norm: float | None, dist_info: DistInfo):
        self.module, self.name, self.dist = module, name, dist_info
        self.params = trainable_parameters(module)
        self.optimizer = torch.optim.AdamW(self.params, lr=lr, betas=tuple(betas), eps=eps,
                                           weight_decay=weight_decay)
        self.max_grad_norm = max_grad_norm

    def begin(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def finish(self) -> float:
        """Sync, clip and apply the accumulated gradients; returns the pre-clip global grad norm."""
        sync_gradients(self.params)
        grads = [p.grad for p in self.params if p.grad is not None]
        if self.max_grad_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
        else:
            norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])) if grads else torch.zeros(())
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def save(self, directory: Path) -> None:
        """Trainable weights (rank 0 writes them; every rank holds the same) and optimizer state."""
        if self.dist.is_main:
            names = {id(p): n for n, p in self.module.named_parameters()}
            weights = {names[id(p)]: p.detach().clone() for p in self.params}
            torch.save({"weights": weights, "optimizer": self.optimizer.state_dict()},
                       directory / f"{self.name}.pt")

    def load(self, directory: Path) -> None:
        state = torch.load(directory / f"{self.name}.pt", map_location="cpu", weights_only=True)
        params = dict(self.module.named_parameters())
        missing = [n for n in state["weights"] if n not in params]
        if missing or len(state["weights"]) != len(self.params):
            raise ValueError(f"{directory / (self.name + '.pt')}: the saved trainable weights do not "
                             f"match this model's trainable parameters (unknown: {missing[:3]}, saved "
                             f"{len(state['weights'])}, trainable {len(self.params)})")
        with torch.no_grad():
            for n, tensor in state["weights"].items():
                params[n].copy_(tensor)
        self.optimizer.load_state_dict(state["optimizer"])


class DeepSpeedUpdater:
    """A DeepSpeed ZeRO engine around the module and an AdamW on its trainable parameters.

    ``gradient_accumulation_steps`` in ``ds_config`` must equal the number of micro-batches per
    mini-batch on each process. Our losses are already divided by the global token count, so the
    engine's own averaging is undone: the loss is multiplied by the world size and not divided by
    the accumulation steps (``scale_wrt_gas=False``).
    """

    def __init__(self, module: nn.Module, name: str, lr: float, betas, eps: float,
                 weight_decay: float, ds_config: dict, dist_info: DistInfo):
        import deepspeed

        self.name, self.dist = name, dist_info
        params = trainable_parameters(module)
        optimizer = torch.optim.AdamW(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        self.engine, self.optimizer, _, _ = deepspeed.initialize(
            model=module, optimizer=optimizer, model_parameters=params, config=ds_config)
        self.engine.eval()  # dropout off, as for the plain updater (see alignment/rl/setup.py)
        self.module = self.engine

    def begin(self, lr: float) -> None:
        for group in self.engine.optimizer.param_groups:
            group["lr"] = lr

    def backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss * self.dist.world_size, scale_wrt_gas=False)
        self.engine.step()  # a no-op until the last micro-batch of the mini-batch

    def finish(self) -> float:
        """The engine stepped at the accumulation boundary already; report its grad norm."""
        if not self.engine.was_step_applied():
            raise RuntimeError(f"{self.name}: DeepSpeed did not apply an optimizer step at the end of "
                               "the mini-batch (gradient_accumulation_steps does not match the "
                               "micro-batches per mini-batch, or the step overflowed)")
        norm = self.engine.get_global_grad_norm()
        return float(norm) if norm is not None else float("nan")

    def save(self, directory: Path) -> None:
        self.engine.save_checkpoint(str(directory / self.name), tag="engine", save_latest=False)

    def load(self, directory: Path) -> None:
        path, _ = self.engine.load_checkpoint(str(directory / self.name), tag="engine",
                                              load_optimizer_states=True, load_lr_scheduler_states=False)
        if path is None:
            raise FileNotFoundError(f"no DeepSpeed checkpoint for {self.name} under {directory}")
