"""Start an inference server for one checkpoint, wait until it answers, stop it afterwards.

``generation.endpoint.launch`` is the command, with ``{model}`` (the checkpoint path) and
``{port}`` (a free port on this host) filled in, e.g.::

    launch: [vllm, serve, "{model}", --port, "{port}", --served-model-name, "{model}"]
    launch: [transformers, serve, "{model}", --port, "{port}", --device, cpu]

The server runs in its own process group (stopped with SIGTERM, then SIGKILL after 20 s), its
output goes to ``<stage>/logs/generation-server.log``, and it is ready when ``GET <root>/health``
answers 200 (vLLM, SGLang, TGI and transformers serve all have it). ``HF_HOME`` is pointed at a
temporary directory when unset, since ``transformers serve`` wants a hub cache directory to list
its models. A server that exits or is not ready within ``ready_timeout_s`` fails the stage with
the last lines of its log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from alignment.generation_backends import EndpointSpec
from medalign.errors import UserError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ready(root: str) -> bool:
    try:
        with urllib.request.urlopen(root + "/health", timeout=2) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def launched_server(spec: EndpointSpec, model_path: str, log_dir: Path | None, logger) -> Iterator[str]:
    """Run ``spec.launch`` for ``model_path``; yields the server's base URL (``.../v1``)."""
    port = free_port()
    fill = {"model": model_path, "port": str(port)}
    command = [part.format(**fill) for part in spec.launch]
    base_url = (spec.base_url or "http://127.0.0.1:{port}/v1").format(**fill)
    root = base_url.rsplit("/v1", 1)[0]
    with contextlib.ExitStack() as stack:
        if log_dir is None:
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / "generation-server.log"
        env = dict(os.environ)
        if "HF_HOME" not in env:
            env["HF_HOME"] = stack.enter_context(tempfile.TemporaryDirectory(prefix="medalign-hf-"))
        log = stack.enter_context(open(log_path, "ab"))
        try:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)
        except OSError as e:
            raise UserError(f"generation.endpoint.launch: cannot start {command[0]!r}: {e.strerror or e}") from None
        stack.callback(_stop, proc)
        logger.info("generation server: %s (log %s)", " ".join(command), log_path)
        deadline = time.monotonic() + spec.ready_timeout_s
        while not _ready(root):
            if proc.poll() is not None:
                raise UserError(f"generation server exited with code {proc.returncode} before it was "
                                f"ready: {_tail(log_path)}")
            if time.monotonic() > deadline:
                raise UserError(f"generation server not ready after {spec.ready_timeout_s:g} s "
                                f"(generation.endpoint.ready_timeout_s): {_tail(log_path)}")
            time.sleep(0.5)
        yield base_url


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (it is ours: started in a session of its own)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
