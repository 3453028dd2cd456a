"""Resumable PPO checkpoints under ``<stage dir>/checkpoints/step-XXXXXXXX/``.

A checkpoint holds everything the next step depends on:

* ``policy.pt`` / ``critic.pt`` (or DeepSpeed engine dirs): trainable weights + optimizer state,
* ``rng-rank<r>.pt``: torch / numpy / python RNG states of every process,
* ``state.json`` (written last): the completed step, the data position, the KL controller state,
  every metrics row so far, the config hash and the world size.

It is written into ``.tmp-step-XXXXXXXX`` and renamed when complete, so a run killed while
writing leaves a temp dir that is ignored (and cleared by the next save). The checkpoint to
resume from is the one with the highest step number RECORDED IN its ``state.json``, never the
newest by file time.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from alignment.distributed import barrier, checkpoint_saved
from alignment.rl.parallel import DistInfo
from medalign.artifacts import write_json_atomic

__all__ = ["save_checkpoint", "find_latest_checkpoint", "load_checkpoint_state", "restore_rng",
           "STATE_FILE"]

STATE_FILE = "state.json"
_PREFIX = "step-"


def _name(step: int) -> str:
    return f"{_PREFIX}{step:08d}"


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(directory: Path, rank: int) -> None:
    """Put back the RNG states this process had when ``directory`` was written."""
    path = directory / f"rng-rank{rank}.pt"
    state = torch.load(path, map_location="cpu", weights_only=False)  # our own file: numpy/python states
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(root: Path, step: int, state: dict, updaters: list, dist: DistInfo,
                    keep: int) -> Path:
    """Write checkpoint ``step`` atomically (collective: every process calls it). Returns its path."""
    root.mkdir(parents=True, exist_ok=True)
    tmp, final = root / f".tmp-{_name(step)}", root / _name(step)
    if dist.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    barrier()
    for updater in updaters:
        updater.save(tmp)
    torch.save(_rng_state(), tmp / f"rng-rank{dist.rank}.pt")
    barrier()
    if dist.is_main:
        write_json_atomic(tmp / STATE_FILE, {**state, "step": step, "world_size": dist.world_size})
        if final.exists():  # a rerun of a step that was checkpointed before: replace it whole
            shutil.rmtree(final)
        tmp.rename(final)
        _prune(root, keep)
    barrier()
    checkpoint_saved(step, final)
    return final


def _complete_checkpoints(root: Path) -> list[tuple[int, Path]]:
    out = []
    if not root.is_dir():
        return out
    for d in root.iterdir():
        if not d.is_dir() or not d.name.startswith(_PREFIX):
            continue
        state_path = d / STATE_FILE
        if not state_path.is_file():
            continue
        try:
            step = int(json.loads(state_path.read_text(encoding="utf-8"))["step"])
        except (ValueError, KeyError, json.JSONDecodeError) as e:
            raise ValueError(f"{state_path}: unreadable checkpoint state ({e}); delete that directory") from None
        out.append((step, d))
    return sorted(out)


def _prune(root: Path, keep: int) -> None:
    for _, d in _complete_checkpoints(root)[:-keep]:
        shutil.rmtree(d, ignore_errors=True)


def find_latest_checkpoint(root: Path) -> Path | None:
    """The complete checkpoint with the highest recorded step under ``root``, or None."""
    found = _complete_checkpoints(root)
    return found[-1][1] if found else None


def load_checkpoint_state(directory: Path, *, config_hash: str, dist: DistInfo) -> dict:
    """``state.json`` of ``directory``, checked against this run's config and world size."""
    state = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    if state.get("config_hash") != config_hash:
        raise ValueError(f"{directory}: written by a different PPO config (hash {state.get('config_hash')} "
                         f"!= {config_hash}); resume with the same config or use a fresh output directory")
    if state.get("world_size") != dist.world_size:
        raise ValueError(f"{directory}: written by {state.get('world_size')} processes, this run has "
                         f"{dist.world_size}; an exact resume needs the same number of processes")
    return state
