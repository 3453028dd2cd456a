"""Worker for test_distributed.py's ZeRO-3 test, launched by torchrun (not a test module itself).

    torchrun --nproc_per_node 2 zero3_worker.py RUNS_JSON

RUNS_JSON is a list of ``{"stage", "config", "inputs", "out"}``. Every rank runs each stage in turn
in this one process group (the stages see WORLD_SIZE=2 and join it instead of spawning their own
torchrun), so the start-up of torch, DeepSpeed and the group is paid once for several checks.
Rank 0 writes each stage's metrics to ``<out>/stage_metrics.json``.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path


def main() -> None:
    import torch

    from alignment.distributed import is_main_process, leave_process_group, world_size
    from medalign.registry import stage_module
    from medalign.stage import StageContext

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    try:
        for run in json.loads(sys.argv[1]):
            module = stage_module(run["stage"])
            cfg = module.Config.model_validate(run["config"])
            ctx = StageContext(stage=run["stage"], seed=0, progress=False)
            metrics = module.run(cfg, run["inputs"], Path(run["out"]), ctx)
            if is_main_process():
                metrics = {**metrics, "world_size": world_size()}
                (Path(run["out"]) / "stage_metrics.json").write_text(json.dumps(metrics, default=float))
    finally:
        leave_process_group()


if __name__ == "__main__":
    main()
