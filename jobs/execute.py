"""Run one stage in the current process and write its manifest. Ray calls this inside a task.

This module does not import ray, so the same function runs a stage in-process (tests, debugging,
``medalign run --no-ray``) and inside a Ray task (``jobs/runner.py``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from medalign.artifacts import digest_path, read_manifest, stage_key, write_manifest
from medalign.stage import StageContext

from jobs.plan import Plan, PlannedStage
from jobs.registry import stage_module

# Folders inside a stage directory that are bookkeeping, not outputs: left out of the digest so
# that a re-run with identical outputs gives an identical digest.
NON_OUTPUT_DIRS = frozenset({"logs", "checkpoints", "tensorboard", "cache"})


@dataclass
class ResolvedStage:
    """A planned stage whose inputs are known: its key, directory and input paths."""

    name: str
    kind: str
    key: str
    out_dir: Path
    config: dict                     # resolved config (JSON)
    inputs: dict[str, str]           # input name -> path or hub id
    input_digests: dict[str, str]    # input name -> digest (also file:<path> for input_files)


def external_digest(ref: str) -> str:
    """Digest of a user-given path or hub id.

    A local file or small directory is hashed by content. A large directory (a real checkpoint)
    is identified by its file names, sizes and modification times, so a 14 GB model is not re-read
    on every run. A hub id is identified by its name.
    """
    p = Path(ref)
    if p.is_file():
        return digest_path(p)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
        if sum(f.stat().st_size for f in files) < 256 << 20:
            return digest_path(p)
        listing = [(f.relative_to(p).as_posix(), f.stat().st_size, int(f.stat().st_mtime)) for f in files]
        return "listing:" + stage_key("external", listing, {}, length=32)
    return f"id:{ref}"


def resolve_stage(plan: Plan, stage: PlannedStage, manifests: dict[str, dict],
                  dirs: dict[str, Path]) -> ResolvedStage:
    """Compute the key and input paths of ``stage``; every upstream stage must be complete."""
    inputs, digests = {}, {}
    for name, ref in stage.inputs.items():
        if ref.stage:
            up = dirs[ref.stage]
            inputs[name] = str(up / "model") if ref.is_model else str(up)
            digests[name] = manifests[ref.stage]["outputs"]["digest"] + ("/model" if ref.is_model else "")
        else:
            inputs[name] = ref.external
            digests[name] = external_digest(ref.external)
    module = stage_module(stage.kind)
    for f in getattr(module, "input_files", lambda cfg: [])(stage.config):
        digests[f"file:{f}"] = digest_path(f)
    config = stage.config.model_dump(mode="json")
    key = stage_key(stage.kind, {"config": config, "seed": plan.job.seed,
                                 "num_workers": stage.entry.resources.num_workers}, digests)
    return ResolvedStage(name=stage.name, kind=stage.kind, key=key,
                         out_dir=plan.job_dir / f"{stage.name}-{key}", config=config,
                         inputs=inputs, input_digests=digests)


def execute_stage(resolved: ResolvedStage, ctx: StageContext, *, rank: int = 0) -> dict:
    """Run a stage into its directory, write the manifest, return it. Raises on failure.

    A directory left by a killed attempt (no manifest) is passed to the stage as it is, so a
    stage with checkpoints resumes; the others overwrite their files. In a data-parallel group
    every rank runs the stage and only rank 0 keeps the books (attempts, log file, manifest);
    the other ranks return the metrics alone.
    """
    if rank != 0:
        module = stage_module(resolved.kind)
        _limit_threads(ctx.num_cpus)
        _quiet_checkpoint_bars()
        return {"metrics": module.run(module.Config.model_validate(resolved.config),
                                      dict(resolved.inputs), resolved.out_dir, ctx) or {}}
    module = stage_module(resolved.kind)
    cfg = module.Config.model_validate(resolved.config)
    out = resolved.out_dir
    out.mkdir(parents=True, exist_ok=True)
    attempt = _record_attempt(out)
    handler = _log_to_file(out / "logs" / "stage.log", ctx.logger)
    _limit_threads(ctx.num_cpus)
    _quiet_checkpoint_bars()
    t0, cpu0 = time.time(), time.process_time()
    try:
        metrics = module.run(cfg, dict(resolved.inputs), out, ctx) or {}
    except BaseException:
        ctx.logger.error("stage %s failed:\n%s", resolved.name, traceback.format_exc())
        raise
    finally:
        ctx.logger.removeHandler(handler)
        handler.close()
    timings = {"wall_s": round(time.time() - t0, 3), "cpu_s": round(time.process_time() - cpu0, 3),
               "attempt": attempt}
    return write_manifest(
        out, stage=resolved.kind, key=resolved.key, config=resolved.config,
        inputs={n: {"path": resolved.inputs.get(n, n.removeprefix("file:")), "digest": d}
                for n, d in resolved.input_digests.items()},
        metrics=json.loads(json.dumps(metrics, default=float)), timings=timings,
        extra={"name": resolved.name, "seed": ctx.seed}, exclude=NON_OUTPUT_DIRS)


def is_complete(resolved: ResolvedStage) -> dict | None:
    """The manifest when the stage directory is complete for this key, else None."""
    manifest = read_manifest(resolved.out_dir)
    if manifest and manifest.get("key") == resolved.key:
        return manifest
    return None


def _record_attempt(out: Path) -> int:
    """Count attempts at this directory (a killed run leaves a count behind)."""
    marker = out / "logs" / "attempts"
    marker.parent.mkdir(parents=True, exist_ok=True)
    n = int(marker.read_text()) + 1 if marker.exists() else 1
    marker.write_text(str(n))
    return n


def _log_to_file(path: Path, logger: logging.Logger) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    return handler


def _quiet_checkpoint_bars() -> None:
    """Hide Hugging Face's per-checkpoint "Loading weights" / "Writing model shards" bars: a
    stage loads and saves models many times, and under Ray each bar becomes log lines in every
    job log. Training and generation progress stay. A Ray worker process is reused across tasks,
    so transformers may already be imported: switch it off there too."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def _limit_threads(num_cpus: float) -> None:
    """Give torch as many threads as the stage reserved CPUs (Ray sets OMP_NUM_THREADS too)."""
    n = max(1, int(num_cpus))
    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass
