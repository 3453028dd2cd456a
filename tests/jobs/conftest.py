"""Toy stage modules (tiny, fast, no torch) to test the job runner's bookkeeping.

``toy_stages.source`` writes ``value.txt``; ``toy_stages.double`` doubles its input's value and
keeps a checkpoint file so a killed attempt can be seen resuming. Both can be told to fail or to
sleep; the source's acceptance rule rejects it while ``TOY_REJECT`` is set (the environment is
not part of the stage key, so a rerun has the same key). The package lives in a temp dir put on sys.path and PYTHONPATH (for subprocesses and
Ray workers).
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

SOURCE = '''
"""Toy source stage."""
import os
import time
from pathlib import Path
from medalign.config import StrictModel

NAME = "source"
INPUTS = {}

class Config(StrictModel):
    value: int = 1
    fail: bool = False

def run(cfg, inputs, out, ctx):
    (out / "started.txt").write_text("x")
    # the sleep comes from the environment, not the config, so it does not change the stage key
    time.sleep(float(os.environ.get("TOY_SLEEP_S", "0")))
    if cfg.fail:
        raise RuntimeError("toy source was told to fail")
    (out / "value.txt").write_text(str(cfg.value))
    return {"value": cfg.value}

def accept(cfg, metrics):
    return ["toy source was told to reject its result"] if os.environ.get("TOY_REJECT") else []
'''

DOUBLE = '''
"""Toy stage that doubles its input, with a checkpoint."""
from pathlib import Path
from medalign.config import StrictModel

NAME = "double"
INPUTS = {"data": ("toy_stages.source",)}

class Config(StrictModel):
    factor: int = 2

def run(cfg, inputs, out, ctx):
    value = int((Path(inputs["data"]) / "value.txt").read_text())
    ckpt = out / "checkpoints" / "resumed_from.txt"
    resumed = ckpt.exists()
    ckpt.parent.mkdir(exist_ok=True)
    ckpt.write_text("1")
    (out / "value.txt").write_text(str(value * cfg.factor))
    return {"value": value * cfg.factor, "resumed": resumed}
'''

ALLREDUCE = '''
"""Toy data-parallel stage: every rank adds rank+1 through torch.distributed."""
from medalign.config import StrictModel

NAME = "allreduce"
INPUTS = {}
DATA_PARALLEL = True        # runs on every worker of a Ray Train group

class Config(StrictModel):
    value: int = 1

def run(cfg, inputs, out, ctx):
    import torch
    import torch.distributed as dist
    t = torch.tensor([float(cfg.value * (dist.get_rank() + 1))])
    dist.all_reduce(t)
    if dist.get_rank() == 0:
        (out / "sum.txt").write_text(str(t.item()))
    return {"sum": t.item(), "world_size": dist.get_world_size()}
'''


@pytest.fixture(scope="session")
def toy_stages(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toy_pkg")
    pkg = root / "toy_stages"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "source.py").write_text(textwrap.dedent(SOURCE))
    (pkg / "double.py").write_text(textwrap.dedent(DOUBLE))
    (pkg / "allreduce.py").write_text(textwrap.dedent(ALLREDUCE))
    sys.path.insert(0, str(root))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    return root


@pytest.fixture
def toy_job(tmp_path, toy_stages) -> Path:
    job = tmp_path / "toy.yaml"
    job.write_text(textwrap.dedent(f"""\
        name: toy
        run_dir: {tmp_path / 'runs'}
        ray: {{num_cpus: 2}}
        stages:
          src:
            kind: toy_stages.source
            config: {{value: 3}}
          dbl:
            kind: toy_stages.double
            config: {{factor: 2}}
        """))
    return job


@pytest.fixture
def run_lines():
    """``run_lines(job, *overrides, **kw)``: run a job in-process; the report gets ``_lines``,
    the lines the runner printed."""
    from jobs.plan import load_plan
    from jobs.runner import run_job

    def run(job: Path, *overrides: str, **kw) -> dict:
        lines: list[str] = []
        report = run_job(load_plan(job, list(overrides)), use_ray=False, progress=False,
                         echo=lines.append, **kw)
        report["_lines"] = lines
        return report
    return run


@pytest.fixture(scope="session")
def ray_local(toy_stages):
    """One in-process Ray for the whole session (ray.init takes seconds): 2 CPUs, shut at the end.

    Started after the toy package is on PYTHONPATH, so Ray workers can import it too.
    """
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        env = {k: os.environ[k] for k in ("PYTHONPATH", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                          "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE",
                                          "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM")
               if k in os.environ}
        ray.init(num_cpus=2, include_dashboard=False, namespace="medalign-tests",
                 log_to_driver=False, logging_level="ERROR", runtime_env={"env_vars": env})
    yield ray
    ray.shutdown()
