"""API speed with N scored users: ``GET /v1/users/{id}`` and ``GET /v1/top?k=100``
against a bare FastAPI route returning a constant, in one run.

    python bench/api_latency.py [--users 1000000] [--rate 1000] [--seconds 10] [--rounds 3]

Fills Redis through the worker's store and scoring path (bench/sweep_throughput.py's
``fill``), starts ``churnstream api`` and the bare app (bench/_bare_api.py) as
processes, then for each endpoint: an open-loop run at ``--rate`` requests/s
(latency measured from each request's scheduled start, so queueing counts:
p50/p99/max) and a closed-loop run with 16 keep-alive connections (requests/s) from
``wrk`` (Debian package ``wrk``; the asyncio client when it is missing). The
closed-loop runs alternate between the endpoints for ``--rounds`` rounds, and the ratio
is the median of the per-round ratios (single runs on this machine vary by 20 %).
The open-loop generator is a small asyncio HTTP/1.1 client on the same 2-core machine;
any generator takes CPU from the server (and from Redis), so read the ratios, not the
absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sweep_throughput import T0, fill  # noqa: E402

from core.features import DAY_MS  # noqa: E402
from core.settings import Settings  # noqa: E402
from services.redis_server import RedisServer, free_port, stop_process, wait_port  # noqa: E402
from state.redis_store import RedisFeatureStore, connect  # noqa: E402
from state.value_store import ValueStore  # noqa: E402
from stream.jobs.value_fit import run_fit  # noqa: E402
from stream.worker.live import Live  # noqa: E402


async def get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> int:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def open_loop(port: int, paths: list[str], rate: float, seconds: float,
                    conns: int = 32) -> list[float]:
    """Requests scheduled every 1/rate s; latency from the scheduled start."""
    queue: asyncio.Queue[tuple[float, str] | None] = asyncio.Queue()
    lat: list[float] = []
    start = time.perf_counter() + 0.2
    n = int(rate * seconds)

    async def conn() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while (item := await queue.get()) is not None:
            at, path = item
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            assert await get(reader, writer, path) == 200
            lat.append(time.perf_counter() - at)
        writer.close()

    tasks = [asyncio.ensure_future(conn()) for _ in range(conns)]
    for i in range(n):
        queue.put_nowait((start + i / rate, paths[i % len(paths)]))
    for _ in tasks:
        queue.put_nowait(None)
    await asyncio.gather(*tasks)
    return sorted(lat)


WRK_SCRIPT = """
local paths = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
"""


async def closed_loop_wrk(port: int, paths: list[str], seconds: float, conns: int = 16) -> float:
    """Requests/s from ``wrk`` (Debian package): one thread, ``conns`` connections, the
    paths in turn; every response must be 2xx."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT % ", ".join(f'"{p}"' for p in paths))
    try:
        proc = await asyncio.create_subprocess_exec(
            "wrk", "-t1", f"-c{conns}", f"-d{seconds:.0f}s", "-s", f.name,
            f"http://127.0.0.1:{port}", stdout=asyncio.subprocess.PIPE)
        out = (await proc.communicate())[0].decode()
    finally:
        os.unlink(f.name)
    if proc.returncode or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk failed or saw errors:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


async def closed_loop(port: int, paths: list[str], seconds: float, conns: int = 16) -> float:
    done = 0
    stop_at = time.perf_counter() + seconds

    async def conn(k: int) -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = k
        while time.perf_counter() < stop_at:
            assert await get(reader, writer, paths[i % len(paths)]) == 200
            done += 1
            i += conns
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*[conn(k) for k in range(conns)])
    return done / (time.perf_counter() - started)


async def serve(server: RedisServer, users: int, procs: list[subprocess.Popen[bytes]]
                ) -> tuple[RedisFeatureStore, int, int]:
    """``users`` scored users and a value fit in ``server`` (prefix ``bench``), then
    ``churnstream api`` and the bare app started (appended to ``procs``); returns the
    store and the two ports once both answer."""
    store = RedisFeatureStore(connect(server.url), "bench")

    async def nowhere(messages: object) -> None:
        pass

    t = time.perf_counter()
    await fill(store, Live.from_settings(store, nowhere, Settings()), users, 3)  # type: ignore[arg-type]
    print(f"{users} users scored in {time.perf_counter() - t:.0f}s", flush=True)
    # a customer-value fit, so that lookups of customers compute their value block
    await store.r.hset("bench:watermark", 0, T0 + 20 * DAY_MS)  # fill() writes no commits
    t = time.perf_counter()
    fit = await run_fit(ValueStore(store.r, "bench"), Settings(value_min_customers=10))
    print(f"value fit: {fit.params.customers if fit else 0} customers in "
          f"{time.perf_counter() - t:.1f}s", flush=True)
    api_port, bare_port = free_port(), free_port()
    env = dict(os.environ, CHURN_REDIS_URL=server.url, CHURN_REDIS_PREFIX="bench",
               CHURN_ENV_FILE="/nonexistent", CHURN_KAFKA_BOOTSTRAP="127.0.0.1:1")
    procs.append(subprocess.Popen([sys.executable, "-m", "cli.main", "api", "--port",
                                   str(api_port)], env=env, cwd=ROOT))
    procs.append(subprocess.Popen([sys.executable, str(ROOT / "bench/_bare_api.py"),
                                   str(bare_port)], cwd=ROOT))
    wait_port(api_port, 30)
    wait_port(bare_port, 30)
    return store, api_port, bare_port


def pct(lat: list[float], q: float) -> float:
    return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--client", choices=["auto", "wrk", "asyncio"], default="auto",
                    help="closed-loop load generator (auto: wrk when installed)")
    args = ap.parse_args()
    server = RedisServer().start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        _, api_port, bare_port = await serve(server, args.users, procs)
        rng = random.Random(3)
        users = [f"/v1/users/user{rng.randrange(args.users):07d}" for _ in range(5000)]
        cases = [("bare route (constant)", bare_port, ["/const"]),
                 ("GET /v1/users/{id}", api_port, users),
                 ("GET /v1/top?k=100", api_port, ["/v1/top?k=100"])]
        for _, port, paths in cases:  # warm up
            await closed_loop(port, paths, 1.0)
        for name, port, paths in cases:
            lat = await open_loop(port, paths, args.rate, args.seconds)
            print(f"{name:<24} at {args.rate:.0f} req/s: p50 {pct(lat, 0.5):6.2f} ms  "
                  f"p99 {pct(lat, 0.99):6.2f} ms  max {lat[-1] * 1000:7.1f} ms", flush=True)
        use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk"))
        loop_run = closed_loop_wrk if use_wrk else closed_loop
        print(f"closed loop: 16 connections from {'wrk' if use_wrk else 'an asyncio client'}, "
              f"{args.rounds} rounds of {args.seconds:.0f} s", flush=True)
        rps: dict[str, list[float]] = {name: [] for name, _, _ in cases}
        for _ in range(args.rounds):
            for name, port, paths in cases:
                rps[name].append(await loop_run(port, paths, args.seconds))
            print("closed loop, req/s: " + ", ".join(
                f"{name} {r[-1]:.0f}" for name, r in rps.items()), flush=True)
        bare = rps[cases[0][0]]
        for name, _, _ in cases[1:]:
            ratios = [a / b for a, b in zip(rps[name], bare, strict=True)]
            print(f"throughput ratio {name} / bare route: median {statistics.median(ratios):.2f} "
                  f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)}; median "
                  f"{statistics.median(rps[name]):.0f} vs {statistics.median(bare):.0f} req/s)")
    finally:
        for p in procs:
            stop_process(p)
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
