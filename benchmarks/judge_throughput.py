"""Judge throughput against the local rubric server with an injected latency per call.

For each concurrency C the judge makes enough distinct calls (no cache hits) for about ``rounds``
waves of C calls, with transcripts and the cache on, exactly as a judge run does. It prints calls
per second, the ratio to the limit C / L (L = injected latency), and the CPU time per call of the
client process and of the server process: once the ratio falls, those CPU figures times the call
rate show that the machine's cores, not the waiting, are the bound. ``CPU bound`` is the call
rate those CPU costs allow at best: the client is one process (one core at most), and client
plus server share the machine's cores (with nothing else running on them).

    .venv/bin/python benchmarks/judge_throughput.py                  # L = 100 ms, C = 1 8 64 256
    .venv/bin/python benchmarks/judge_throughput.py --server thread  # server in this process

``--server process`` (default) runs ``medalign judge serve`` in its own process, as a remote
endpoint would be; ``thread`` runs it in a background thread of the judging process, as
``base_url: local`` does.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_items(n: int, seed: int = 0):
    """n distinct pairs (hybrid vs distilled answers to synthetic consultations)."""
    from data_recipes.synthetic.answers import compose_answer, compose_patient_message
    from data_recipes.synthetic.world import CONDITIONS
    from judges.api import PairItem

    items = []
    for i in range(n):
        rng = random.Random(seed * 1_000_003 + i)
        cond, lang = CONDITIONS[i % len(CONDITIONS)], ("zh", "en")[i % 2]
        question = compose_patient_message(cond, lang, rng) + f" (#{i})"   # distinct prompts
        items.append(PairItem(f"b{i}", [], question, compose_answer(cond, lang, "doctor", rng),
                              f"b{i}#0", compose_answer(cond, lang, "hybrid", rng),
                              f"b{i}#1", compose_answer(cond, lang, "distilled", rng), lang))
    return items


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def process_server(latency_ms: float = 0.0, extra_args: tuple[str, ...] = ()):
    """``medalign judge serve`` in its own process (``extra_args``: more of its flags); yields
    (base URL, pid)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "medalign.cli", "judge", "serve", "--port",
                             str(port), "--latency-ms", str(latency_ms), *extra_args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("judge server did not start: " + proc.stderr.read().decode())
                time.sleep(0.2)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def measure(concurrency: int, latency_ms: float, rounds: int, mode: str, store: Path) -> dict:
    from judges.api import judge_pairs_multi
    from judges.config import JudgeConfig, LocalServerOptions

    n_calls = max(concurrency * rounds, 40)
    items = make_items(n_calls // 2, seed=concurrency)       # both orders: 2 calls per item
    local = LocalServerOptions(latency_ms=latency_ms)
    if mode == "thread":
        cfg = JudgeConfig(concurrency=concurrency, local=local, timeout_s=120)
        server = contextlib.nullcontext()
    else:
        server = process_server(latency_ms)
    server_cpu = None
    with server as endpoint:
        if mode != "thread":
            url, pid = endpoint
            cfg = JudgeConfig(base_url=url, concurrency=concurrency, timeout_s=120)
            server_cpu = process_cpu_s(pid)
        cpu0 = time.process_time()
        _, stats = judge_pairs_multi(items, [cfg], store / f"{mode}_c{concurrency}")
        cpu = time.process_time() - cpu0
        if server_cpu is not None:
            server_cpu = process_cpu_s(pid) - server_cpu
    s = stats[0]
    assert s.statuses.get("ok", 0) == s.api_calls == len(items) * 2, s.to_dict()
    rate = s.api_calls / s.wall_s
    limit = concurrency / (latency_ms / 1000.0)
    return {"C": concurrency, "calls": s.api_calls, "wall_s": s.wall_s, "calls_per_s": rate,
            "limit": limit, "ratio": rate / limit, "cpu_ms_per_call": 1000 * cpu / s.api_calls,
            "server_cpu_ms_per_call": None if server_cpu is None else 1000 * server_cpu / s.api_calls}


def _ms(v: float | None) -> str:
    return "(in client)" if v is None else f"{v:.2f}"


def cpu_bound_rate(client_ms: float, server_ms: float | None, cores: int) -> float:
    """Calls/s the CPU costs allow: the client is one process (one core at most); client and
    server together get at most every core."""
    total = client_ms + (server_ms or 0.0)
    return min(1000.0 / client_ms, cores * 1000.0 / total)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--latency-ms", type=float, default=100.0, help="injected latency L per call")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64, 256])
    p.add_argument("--rounds", type=int, default=30,
                   help="waves of C calls per measurement (the first wave also opens the connections)")
    p.add_argument("--server", choices=["process", "thread", "both"], default="both")
    args = p.parse_args(argv)
    modes = ["process", "thread"] if args.server == "both" else [args.server]
    import aiohttp  # noqa: F401  (import once up front, so no row is charged for it)
    import httpx2  # noqa: F401
    import openai  # noqa: F401
    make_items(2)
    cores = os.cpu_count() or 1
    print(f"L = {args.latency_ms:g} ms; transcripts and cache on; {_load()}")
    print("other processes on the machine slow these figures down: compare CPU ms/call first")
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            print(f"\nserver: {mode}")
            print(f"{'C':>5} {'calls':>6} {'wall s':>7} {'calls/s':>8} {'C/L':>7} {'ratio':>6} "
                  f"{'client CPU ms/call':>19} {'server CPU ms/call':>19} {'CPU bound':>10}")
            for c in args.concurrency:
                r = measure(c, args.latency_ms, args.rounds, mode, Path(tmp))
                bound = cpu_bound_rate(r["cpu_ms_per_call"], r["server_cpu_ms_per_call"], cores)
                print(f"{r['C']:>5} {r['calls']:>6} {r['wall_s']:>7.2f} {r['calls_per_s']:>8.1f} "
                      f"{r['limit']:>7.0f} {r['ratio']:>6.2f} {r['cpu_ms_per_call']:>19.2f} "
                      f"{_ms(r['server_cpu_ms_per_call']):>19} {bound:>10.0f}", flush=True)
    print(f"\n{_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
