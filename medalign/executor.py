"""Run one stage into its directory and write its manifest: the only code that does.

    run = prepare_run("sft", cfg, {"data": "runs/demo/data-1a2b", "model": "models/tiny/model"},
                      seed=0, out_dir=Path("runs/manual/sft"))
    manifest = execute_stage(run, StageContext(seed=0))      # raises StageFailed on failure

``medalign run`` (``jobs/execute.py`` computes the run from upstream manifests; a Ray task or
Ray Train's rank 0 calls :func:`execute_stage`) and ``medalign train`` both end here, so one stage
with one config and the same inputs gets the same key and the same output digest either way.

The key hashes the stage kind, its resolved config, the seed, the number of workers and the
inputs' digests; it holds no absolute path, so a copy of a repository with its ``runs/`` reuses
every stage. An input that is a complete stage directory (or its ``model/``) is identified by
that stage's output digest; any other path by its content, a hub id by its name.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from medalign.artifacts import (MANIFEST, digest_path, is_successful, read_manifest, stage_key,
                                write_manifest)
from medalign.config import ConfigError
from medalign.errors import StageFailed, UserError
from medalign.registry import stage_module
from medalign.stage import StageContext, acceptance_problems
from medalign.stagelog import LOG_NAME, PROGRESS_NAME, capture_output, report_progress

# Folders inside a stage directory that are bookkeeping, not outputs: left out of the digest so
# that a re-run with identical outputs gives an identical digest.
NON_OUTPUT_DIRS = frozenset({"logs", "checkpoints", "tensorboard", "wandb", "cache"})
_LARGE_INPUT_BYTES = 256 << 20


@dataclass
class StageRun:
    """One stage ready to run: its key, directory and inputs."""

    name: str                        # the stage's name in its job ("eval_dpo"), or its kind
    kind: str
    key: str
    out_dir: Path
    config: dict                     # resolved config (JSON)
    inputs: dict[str, str]           # input name -> path or hub id
    input_digests: dict[str, str]    # input name -> digest (and file:<path> for input_files)


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
        if sum(f.stat().st_size for f in files) < _LARGE_INPUT_BYTES:
            return digest_path(p)
        listing = [(f.relative_to(p).as_posix(), f.stat().st_size, int(f.stat().st_mtime)) for f in files]
        return "listing:" + stage_key("external", listing, {}, length=32)
    return f"id:{ref}"


def input_digest(ref: str) -> str:
    """Digest of one input path: a complete stage directory gives its output digest, its
    ``model/`` that digest + ``/model`` (what the job runner records for upstream stages)."""
    p = Path(ref)
    manifest = read_manifest(p) if p.is_dir() else None
    if is_successful(manifest):
        return manifest["outputs"]["digest"]
    parent = read_manifest(p.parent) if p.name == "model" and p.is_dir() else None
    if is_successful(parent):
        return parent["outputs"]["digest"] + "/model"
    return external_digest(ref)


def portable_name(path: str | Path) -> str:
    """A file's name for a stage key: relative to the repository or the working directory when
    it lies inside one of them (so a copied repository keeps its keys), else absolute."""
    path = Path(path).resolve()
    for root in (Path(__file__).resolve().parents[1], Path.cwd().resolve()):
        if path.is_relative_to(root):
            return path.relative_to(root).as_posix()
    return path.as_posix()


def prepare_run(kind: str, cfg, inputs: dict[str, str], *, seed: int, name: str | None = None,
                num_workers: int = 1, digests: dict[str, str] | None = None,
                out_dir: Path | None = None, job_dir: Path | None = None) -> StageRun:
    """The key and directory of a stage. ``digests`` gives known input digests (the job runner
    passes its upstream stages'); the others are computed from the paths. The directory is
    ``out_dir``, or ``job_dir/<name>-<key>``."""
    module = stage_module(kind)
    digests = {n: (digests or {}).get(n) or input_digest(p) for n, p in inputs.items()}
    for f in getattr(module, "input_files", lambda cfg: [])(cfg):
        digests[f"file:{portable_name(f)}"] = digest_path(f)
    config = cfg.model_dump(mode="json")
    key = stage_key(kind, {"config": config, "seed": seed, "num_workers": num_workers}, digests)
    name = name or kind
    if out_dir is None:
        if job_dir is None:
            raise ValueError("prepare_run needs out_dir or job_dir")
        out_dir = Path(job_dir) / f"{name}-{key}"
    return StageRun(name=name, kind=kind, key=key, out_dir=Path(out_dir), config=config,
                    inputs=dict(inputs), input_digests=digests)


def attempt_state(out_dir: Path, key: str | None = None) -> str:
    """``new`` (no directory), ``killed`` (a directory without a manifest: an attempt stopped
    midway), ``failed`` (its manifest says so, or is for another key) or ``complete``."""
    if not Path(out_dir).exists():
        return "new"
    manifest = read_manifest(out_dir)
    if manifest is None:
        return "killed"
    if is_successful(manifest) and (key is None or manifest.get("key") == key):
        return "complete"
    return "failed"


def is_complete(run: StageRun) -> dict | None:
    """The manifest when the stage directory is complete (status ok) for this key, else None."""
    manifest = read_manifest(run.out_dir)
    if is_successful(manifest) and manifest.get("key") == run.key:
        return manifest
    return None


def execute_stage(run: StageRun, ctx: StageContext, *, rank: int = 0, world_size: int = 1,
                  capture: bool = True) -> dict:
    """Run a stage into its directory, write the manifest, return it.

    ``capture``: the stage's output (logs, progress bars) goes to ``logs/stage.log`` only; else
    it also reaches the terminal. A killed attempt's files are left for the stage to resume from.
    Raises :class:`StageFailed` when the stage raises or its ``accept`` rule finds problems; the
    manifest then says ``status: failed``. In a data-parallel group every rank runs the stage
    and only rank 0 keeps the books (the manifest records ``world_size``); the other ranks
    return ``{"metrics": ...}``.
    """
    module = stage_module(run.kind)
    cfg = module.Config.model_validate(run.config)
    _limit_threads(ctx.num_cpus)
    _quiet_checkpoint_bars()
    out = run.out_dir
    out.mkdir(parents=True, exist_ok=True)
    if rank != 0:
        with capture_output(out / "logs" / f"rank{rank}.log"):
            return {"metrics": module.run(cfg, dict(run.inputs), out, ctx) or {}}
    (out / MANIFEST).unlink(missing_ok=True)        # a failed attempt's manifest must not outlive it
    (out / PROGRESS_NAME).unlink(missing_ok=True)
    attempt = _record_attempt(out)
    t0, cpu0 = time.time(), time.process_time()
    with ExitStack() as stack:
        stack.enter_context(capture_output(out / LOG_NAME) if capture else _log_file(out / LOG_NAME, ctx.logger))
        if ctx.progress:
            stack.enter_context(report_progress(out / PROGRESS_NAME))
        ctx.logger.info("stage %s (%s), key %s, attempt %d", run.name, run.kind, run.key, attempt)
        try:
            metrics = module.run(cfg, dict(run.inputs), out, ctx) or {}
        except Exception as e:  # noqa: BLE001 - recorded in the manifest, raised as StageFailed
            message = describe_error(e)
            ctx.logger.error("stage %s failed: %s", run.name, message if is_user_error(e) else traceback.format_exc())
            _write(run, ctx, {}, _timings(t0, cpu0, attempt), status="failed", problems=[message],
                   world_size=world_size)
            raise StageFailed(message) from None
        metrics = json.loads(json.dumps(metrics, default=float))
        problems = acceptance_problems(module, cfg, metrics)
        for problem in problems:
            ctx.logger.error("stage %s failed its acceptance rule: %s", run.name, problem)
    manifest = _write(run, ctx, metrics, _timings(t0, cpu0, attempt),
                      status="failed" if problems else "ok", problems=problems, world_size=world_size)
    if problems:
        raise StageFailed("rejected by its acceptance rule: " + "; ".join(problems))
    return manifest


def is_user_error(error: BaseException) -> bool:
    """A mistake in the user's input (one line says it all), not a bug."""
    return isinstance(error, (ConfigError, UserError, FileNotFoundError))


def describe_error(error: BaseException) -> str:
    """One line for an exception: the message of a user error, ``Type: message`` otherwise."""
    if isinstance(error, ConfigError):
        text = "; ".join(error.problems)
    else:
        text = str(error) if is_user_error(error) else f"{type(error).__name__}: {error}"
    return text if len(text) < 2000 else text[:2000] + " ..."


def _timings(t0: float, cpu0: float, attempt: int) -> dict:
    return {"started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
            "wall_s": round(time.time() - t0, 3), "cpu_s": round(time.process_time() - cpu0, 3),
            "attempt": attempt}


def _write(run: StageRun, ctx: StageContext, metrics: dict, timings: dict, *, status: str,
           problems: list[str], world_size: int) -> dict:
    return write_manifest(
        run.out_dir, stage=run.kind, key=run.key, config=run.config,
        inputs={n: {"path": run.inputs.get(n, n.removeprefix("file:")), "digest": d}
                for n, d in run.input_digests.items()},
        metrics=metrics, timings=timings, status=status, problems=problems,
        extra={"name": run.name, "seed": ctx.seed, "log": LOG_NAME, "world_size": world_size},
        exclude=NON_OUTPUT_DIRS)


def _record_attempt(out: Path) -> int:
    """Count attempts at this directory (a killed run leaves a count behind)."""
    marker = out / "logs" / "attempts"
    marker.parent.mkdir(parents=True, exist_ok=True)
    n = int(marker.read_text()) + 1 if marker.exists() else 1
    marker.write_text(str(n))
    return n


@contextmanager
def _log_file(path: Path, logger: logging.Logger) -> Iterator[None]:
    """Also write ``logger``'s records to ``path`` (when the output is not captured)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


def _quiet_checkpoint_bars() -> None:
    """Hide Hugging Face's per-checkpoint "Loading weights" / "Writing model shards" bars: a
    stage loads and saves models many times and each bar would flood its log. Training and
    generation progress stay. A worker process is reused across tasks, so transformers may
    already be imported: switch it off there too."""
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
