"""The local OpenAI-compatible judge server (the rubric model), bound to 127.0.0.1 by default.

    with running_server(latency_ms=20, faults=["rate_limit"], fault_rate=0.1) as base_url:
        client = openai.OpenAI(base_url=base_url, api_key="EMPTY")
        ...

``running_server`` starts uvicorn in a background thread on a free port and stops it on exit;
``serve`` runs it in the foreground (``medalign judge serve``). Options are the fields of
:class:`judges.config.LocalServerOptions`. uvicorn is imported only here.

Workers on other nodes of a cluster reach the server when it binds another address (``host``).
Bound to any address that is not loopback it refuses to start without an API key
(:func:`check_exposure`), and with a key every request must carry it (``Authorization: Bearer
KEY``; 401 otherwise), so a cluster node never exposes an open endpoint.

The server runs on uvloop with httptools' HTTP parser when they are installed (they are
dependencies; asyncio and h11 otherwise): together they cut the server's CPU per call to about
half, which matters when it answers hundreds of calls a second on the same cores as the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Iterator

from judges.config import LocalServerOptions
from judges.errors import JudgeSetupError

HOST = "127.0.0.1"
log = logging.getLogger("medalign.judges.server")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:                    # a host name: it may resolve to anything
        return False


def check_exposure(host: str, api_key: str | None) -> None:
    """Refuse to serve a non-loopback address without an API key."""
    if not is_loopback(host) and not api_key:
        raise JudgeSetupError(
            f"--host {host} is not a loopback address: the judge would be an open endpoint. Give "
            "--api-key-env VAR (an environment variable holding the key clients must send), or "
            "bind 127.0.0.1")


def _uvloop():
    """The uvloop module, or None where it is not installed (e.g. Windows)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop


def _uvicorn_config(app, *, port: int = 0, host: str = HOST):
    import importlib.util

    import uvicorn

    fast_http = importlib.util.find_spec("httptools") is not None
    # access_log off: the server never writes request lines (or headers) anywhere;
    # proxy_headers off: it sits behind no proxy
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                          proxy_headers=False,
                          lifespan="off", backlog=2048, timeout_graceful_shutdown=2,
                          timeout_keep_alive=30, http="httptools" if fast_http else "h11",
                          loop="uvloop" if _uvloop() else "asyncio")


@contextlib.contextmanager
def running_server(startup_timeout_s: float = 20.0, host: str = HOST, api_key: str | None = None,
                   **options) -> Iterator[str]:
    """Run the rubric server in a background thread; yields its base URL (``.../v1``, through
    127.0.0.1 when ``host`` is a wildcard address)."""
    import uvicorn

    from judges.server.app import build_app

    check_exposure(host, api_key)
    opts = LocalServerOptions(**options)
    app = build_app(opts, api_key)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    reach = HOST if host in ("0.0.0.0", "") else host
    server = uvicorn.Server(_uvicorn_config(app))
    loop_box: dict = {}

    def run() -> None:
        uvloop = _uvloop()
        loop = uvloop.new_event_loop() if uvloop else asyncio.new_event_loop()
        loop_box["loop"] = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.serve(sockets=[sock]))
        finally:
            loop.close()

    thread = threading.Thread(target=run, name=f"judge-server-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"local judge server did not start on {host}:{port}")
        time.sleep(0.01)
    try:
        yield f"http://{reach}:{port}/v1"
    finally:
        loop = loop_box.get("loop")
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(app.shutdown.set)   # release hung requests
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def serve(port: int = 8000, host: str = HOST, api_key: str | None = None, **options) -> None:
    """Run the server in the foreground until interrupted (``medalign judge serve``)."""
    import uvicorn

    from judges.server.app import build_app

    check_exposure(host, api_key)
    opts = LocalServerOptions(**options)
    server = uvicorn.Server(_uvicorn_config(build_app(opts, api_key), port=port, host=host))
    log.info("local judge %s on http://%s:%d/v1", opts.model, host, port)
    server.run()
