"""Per-step PPO metrics to ``metrics.jsonl`` (one JSON object a line), TensorBoard and W&B.

On resume the JSONL is rewritten from the checkpoint's metrics so far (rows a killed run wrote
after its last checkpoint disappear), and TensorBoard purges events from the resumed step on, so
both logs read as if the run had never stopped (a resumed W&B run is a new run from that step).
Only the main process writes. Where the curves go is the stage's ``tracking`` block
(:mod:`alignment.tracking`); ``metrics.jsonl`` is always written.
"""

from __future__ import annotations

import json
from pathlib import Path

from alignment.tracking import TrackingSpec, open_tracker

__all__ = ["MetricsLog"]


class MetricsLog:
    def __init__(self, out: Path, history: list[dict], enabled: bool = True, tracking: TrackingSpec | None = None,
                 config=None):
        self.enabled = enabled
        self.path = out / "metrics.jsonl"
        self.tracker = None
        if not enabled:
            return
        tmp = self.path.with_name(".metrics.jsonl.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for row in history:
                f.write(json.dumps(row, sort_keys=True) + "\n")
        tmp.replace(self.path)
        next_step = history[-1]["step"] + 1 if history else 1
        self.tracker = open_tracker(tracking or TrackingSpec(), out, config, main=True, purge_step=next_step)

    def write(self, row: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
        self.tracker.log({k: v for k, v in row.items() if k != "step"}, step=row["step"])

    def close(self) -> None:
        if self.tracker is not None:
            self.tracker.close()
