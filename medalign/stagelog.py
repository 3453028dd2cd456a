"""A stage's log file and progress file, so the terminal of ``medalign run`` stays calm.

While a stage runs, :func:`capture_output` sends everything it prints (our loggers, tqdm bars,
Hugging Face and trl messages, C-level writes) to ``<stage dir>/logs/stage.log`` instead of the
terminal, and :func:`report_progress` records every tqdm bar's position in
``<stage dir>/logs/progress.json``, which the job's driver polls for its live view. Nothing here
knows about Ray: the same code runs in-process and inside a Ray task.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOG_NAME = "logs/stage.log"
PROGRESS_NAME = "logs/progress.json"
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextmanager
def capture_output(log_path: Path) -> Iterator[None]:
    """Send this process's stdout, stderr and root logging to ``log_path`` (appended) for the
    duration; restore everything afterwards, also on an exception."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        _flush(stream)
    log_file = open(log_path, "a", encoding="utf-8", buffering=1, errors="replace")
    saved_fds = _redirect_fds(log_file.fileno())
    saved_streams = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = log_file
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    handler = logging.StreamHandler(log_file)
    handler.setFormatter(logging.Formatter(_LOG_FORMAT, datefmt="%H:%M:%S"))
    root.handlers = [handler]
    root.setLevel(min(saved_level or logging.INFO, logging.INFO))
    try:
        yield
    finally:
        root.handlers = saved_handlers
        root.setLevel(saved_level)
        sys.stdout, sys.stderr = saved_streams
        _flush(log_file)
        _restore_fds(saved_fds)
        log_file.close()


def _flush(stream) -> None:
    try:
        stream.flush()
    except (OSError, ValueError, AttributeError):
        pass


def _redirect_fds(target: int) -> list[tuple[int, int]]:
    """Point fds 1 and 2 at ``target``; return (fd, saved copy) pairs for :func:`_restore_fds`."""
    saved = []
    for fd in (1, 2):
        try:
            saved.append((fd, os.dup(fd)))
            os.dup2(target, fd)
        except OSError:
            continue
    return saved


def _restore_fds(saved: list[tuple[int, int]]) -> None:
    for fd, copy in saved:
        os.dup2(copy, fd)
        os.close(copy)


class _ProgressWriter:
    """Writes the state of every open tqdm bar to a JSON file, at most once a second."""

    def __init__(self, path: Path, interval_s: float = 1.0):
        self.path, self.interval_s = path, interval_s
        self.bars: dict[int, dict] = {}
        self.last_write = 0.0
        self.lock = threading.Lock()

    def update(self, bar, closing: bool = False) -> None:
        d = {} if closing else bar.format_dict
        with self.lock:
            if closing:
                self.bars.pop(id(bar), None)
            else:
                self.bars[id(bar)] = {"desc": (d.get("prefix") or "").rstrip(": "), "n": d.get("n"),
                                      "total": d.get("total"), "elapsed_s": round(d.get("elapsed") or 0, 1),
                                      "rate": d.get("rate"), "unit": d.get("unit"),
                                      "postfix": (d.get("postfix") or "").lstrip(", ")}
            now = time.monotonic()
            if closing or now - self.last_write >= self.interval_s:
                self.last_write = now
                self.write()

    def write(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"time": time.time(), "bars": list(self.bars.values())}), encoding="utf-8")
        os.replace(tmp, self.path)


@contextmanager
def report_progress(progress_path: Path) -> Iterator[None]:
    """Record every tqdm bar shown in this process in ``progress_path`` while the block runs."""
    try:
        from tqdm import std
    except ImportError:
        yield
        return
    progress_path.parent.mkdir(parents=True, exist_ok=True)
    writer = _ProgressWriter(progress_path)
    display, close = std.tqdm.display, std.tqdm.close

    def display_and_record(bar, *args, **kwargs):
        try:
            writer.update(bar)
        except Exception:  # noqa: BLE001 - progress is best effort, never the stage's failure
            pass
        return display(bar, *args, **kwargs)

    def close_and_record(bar):
        was_open = not bar.disable
        result = close(bar)
        if was_open:
            try:
                writer.update(bar, closing=True)
            except Exception:  # noqa: BLE001
                pass
        return result

    std.tqdm.display, std.tqdm.close = display_and_record, close_and_record
    try:
        yield
    finally:
        std.tqdm.display, std.tqdm.close = display, close


def read_progress(stage_dir: Path) -> dict | None:
    """The last progress record of a running stage, or None (no bar shown yet, unreadable)."""
    try:
        return json.loads((Path(stage_dir) / PROGRESS_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def tail_lines(path: Path, n: int = 20, max_bytes: int = 256 << 10) -> list[str]:
    """The last ``n`` lines of a log file; a progress bar's carriage-return updates count as
    one line (its last state)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - max_bytes))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    lines = [line.rsplit("\r", 1)[-1].rstrip() for line in text.rstrip("\r\n").split("\n")]
    return [line for line in lines if line.strip()][-n:]
