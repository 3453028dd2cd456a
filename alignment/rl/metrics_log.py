"""Per-step PPO metrics to ``metrics.jsonl`` (one JSON object a line) and TensorBoard.

On resume the JSONL is rewritten from the checkpoint's metrics so far (rows a killed run wrote
after its last checkpoint disappear), and TensorBoard purges events from the resumed step on, so
both logs read as if the run had never stopped. Only the main process writes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = ["MetricsLog"]


class MetricsLog:
    def __init__(self, out: Path, history: list[dict], enabled: bool = True, tensorboard: bool = True):
        self.enabled = enabled
        self.path = out / "metrics.jsonl"
        self.writer = None
        if not enabled:
            return
        tmp = self.path.with_name(".metrics.jsonl.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for row in history:
                f.write(json.dumps(row, sort_keys=True) + "\n")
        tmp.replace(self.path)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            next_step = history[-1]["step"] + 1 if history else 1
            self.writer = SummaryWriter(log_dir=str(out / "tensorboard"), purge_step=next_step)

    def write(self, row: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
        if self.writer is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(key, value, global_step=row["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
