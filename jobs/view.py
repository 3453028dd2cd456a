"""What ``medalign run`` shows on the driver: one view of the job's stages.

Stages write their output to ``<stage dir>/logs/stage.log`` and their progress bars' state to
``logs/progress.json`` (:mod:`medalign.stagelog`); the view polls those files from a thread.

* On a terminal (``live=True``): events scroll above one rich table of the running stages
  (progress, ETA when a bar knows its total, the bar's metrics such as the loss).
* Elsewhere (CI logs, ``medalign submit``): one line per event, plus one progress line per
  running stage every ``line_progress_s`` seconds when its progress changed.
* ``stream_logs`` (``--verbose``): every new line of the running stages' logs, prefixed.
* A failed stage prints its last log lines and the log's path.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from medalign.stagelog import LOG_NAME, read_progress, tail_lines

from jobs.report import _TABLE_METRICS

TAIL_LINES = 20


@dataclass
class _Running:
    out_dir: Path
    kind: str
    started: float = field(default_factory=time.time)
    progress: str = ""              # the stage's progress as last polled
    printed: str = ""               # the progress text last printed (line mode)
    last_line_at: float = 0.0       # when a progress line was last printed (line mode)
    log_offset: int = 0             # bytes of the log already streamed (stream_logs)


def format_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def progress_text(record: dict | None, elapsed_s: float) -> str:
    """``sampling 12/48 25% ETA 1m20s loss=1.23`` from a progress record ('' when none)."""
    bars = (record or {}).get("bars") or []
    if not bars:
        return ""
    bar = next((b for b in bars if b.get("total")), bars[0])
    n, total, rate = bar.get("n") or 0, bar.get("total"), bar.get("rate")
    parts = [bar.get("desc") or "progress", f"{n}/{total}" if total else f"{n}"]
    if total:
        parts.append(f"{100 * n / total:.0f}%")
        if rate and n < total:
            parts.append(f"ETA {format_seconds((total - n) / rate)}")
    postfix = next((b.get("postfix") for b in reversed(bars) if b.get("postfix")), "")
    return " ".join(parts + ([postfix] if postfix else []))


def key_metrics(kind: str, metrics: dict) -> str:
    """The few metrics of a finished stage worth a glance (all of them are in report.json)."""
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    return ", ".join(f"{k}={fmt(metrics[k])}" for k in _TABLE_METRICS.get(kind, ())
                     if metrics.get(k) is not None and not isinstance(metrics[k], (list, dict)))


class JobView:
    """Events and progress of a job run, to ``echo`` (lines) or a rich live table."""

    def __init__(self, echo: Callable[[str], None] = print, *, live: bool = False, stream_logs: bool = False,
                 console_file=None, poll_s: float = 0.5, line_progress_s: float = 30.0):
        self.echo, self.live, self.stream_logs = echo, live, stream_logs
        self.poll_s, self.line_progress_s = poll_s, line_progress_s
        self.running: dict[str, _Running] = {}
        self.lock = threading.RLock()
        self._console_file = console_file
        self._live = None

    # ---- events (called by the runner) -------------------------------------------------------
    def note(self, text: str) -> None:
        self._print(text)

    def reused(self, name: str, out_dir: Path) -> None:
        self._print(f"= {name:<13} reused   {out_dir}")

    def started(self, name: str, kind: str, out_dir: Path, note: str = "") -> None:
        with self.lock:
            self.running[name] = _Running(out_dir=out_dir, kind=kind)
        self._print(f"> {name:<13} running  {out_dir}{note}")

    def finished(self, name: str, kind: str, status: str, manifest: dict) -> None:
        self._stop(name)
        wall = manifest.get("timings", {}).get("wall_s")
        metrics = key_metrics(kind, manifest.get("metrics") or {})
        timing = f"{wall:8.1f} s" if wall is not None else ""
        notes = [f"{manifest['world_size']} workers"] if (manifest.get("world_size") or 1) > 1 else []
        if status == "ran" and manifest.get("timings", {}).get("attempt", 1) > 1:   # a restart or a rerun
            notes.append(f"attempt {manifest['timings']['attempt']}")
        timing += f"  ({', '.join(notes)})" if notes else ""
        self._print(f"+ {name:<13} {status:<8} {timing}" + (f"  {metrics}" if metrics else ""))

    def failed(self, name: str, out_dir: Path | None, message: str) -> None:
        self._stop(name)
        lines = [f"! {name:<13} FAILED   {message}"]
        if out_dir is not None:
            log = out_dir / LOG_NAME
            tail = tail_lines(log, TAIL_LINES)
            if tail:
                lines.append(f"  last {len(tail)} lines of its log:")
                lines += [f"  | {line}" for line in tail]
            lines.append(f"  log: {log}")
        self._print("\n".join(lines))

    def skipped(self, name: str) -> None:
        self._print(f"- {name:<13} skipped  (an input failed)")

    # ---- polling -----------------------------------------------------------------------------
    @contextmanager
    def watching(self) -> Iterator[None]:
        """Poll the running stages' files from a thread while the block runs."""
        stop = threading.Event()
        thread = threading.Thread(target=self._poll_loop, args=(stop,), name="medalign-view", daemon=True)
        self._start_live()
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)
            self._stop_live()

    def _poll_loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.poll_s):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - the view never breaks a run
                pass

    def poll(self) -> None:
        """Read every running stage's progress (and new log lines with ``stream_logs``)."""
        now = time.time()
        with self.lock:
            for name, r in list(self.running.items()):
                if self.stream_logs:
                    self._stream(name, r)
                r.progress = progress_text(read_progress(r.out_dir), now - r.started)
                if (not self.live and r.progress and r.progress != r.printed
                        and now - r.last_line_at >= self.line_progress_s):
                    r.last_line_at, r.printed = now, r.progress
                    self._print(f". {name:<13} {format_seconds(now - r.started):>8}  {r.progress}")
            if self._live is not None:
                self._live.update(self._table())

    def _stream(self, name: str, r: _Running) -> None:
        try:
            with open(r.out_dir / LOG_NAME, "rb") as f:
                f.seek(r.log_offset)
                chunk = f.read()
        except OSError:
            return
        end = chunk.rfind(b"\n") + 1          # complete lines only; the rest waits for the next poll
        r.log_offset += end
        for line in chunk[:end].decode("utf-8", errors="replace").split("\n"):
            line = line.rsplit("\r", 1)[-1].rstrip()
            if line.strip():
                self._print(f"  {name} | {line}")

    def _stop(self, name: str) -> None:
        with self.lock:
            r = self.running.get(name)
            if r is not None and self.stream_logs:
                self._stream(name, r)
            self.running.pop(name, None)
            if self._live is not None:
                self._live.update(self._table())

    # ---- output ------------------------------------------------------------------------------
    def _print(self, text: str) -> None:
        with self.lock:
            if self._live is not None:
                self._live.console.print(text, markup=False, highlight=False, soft_wrap=True)
            else:
                self.echo(text)

    def _table(self):
        from rich.table import Table

        table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
        for col in ("stage", "state", "time", "progress"):
            table.add_column(col, no_wrap=col != "progress")
        now = time.time()
        for name, r in self.running.items():
            table.add_row(name, "running", format_seconds(now - r.started), r.progress or "-")
        return table

    def _start_live(self) -> None:
        if not self.live or self._live is not None:
            return
        from rich.console import Console
        from rich.live import Live

        console = Console(file=self._console_file) if self._console_file is not None else Console()
        self._live = Live(self._table(), console=console, refresh_per_second=2, transient=True,
                          redirect_stdout=False, redirect_stderr=False)
        self._live.start()

    def _stop_live(self) -> None:
        with self.lock:
            if self._live is not None:
                self._live.stop()
                self._live = None
