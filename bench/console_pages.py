"""Console pages at N users: server time of every page against the 100 ms budget and a
bare FastAPI route, in one run.

    python bench/console_pages.py [--users 1000000] [--requests 200]

Fills Redis through the worker's store and scoring path (bench/sweep_throughput.py's
``fill``: every user scored, tiers, the monthly counters), runs a customer-value fit
(CLV index, segments, value at risk) and stores a learner checkpoint whose quality
history is full (400 anchor days), then starts ``churnstream api`` and the bare app
(bench/_bare_api.py) as processes. Each page is requested ``--requests`` times over
one keep-alive connection, one request at a time, so each latency is the server's
time plus one loopback round trip (the bare route's latency is that floor). Prints
p50 / p90 / max per page, the p50 minus the bare route's, and the p50 as a share of
the 100 ms budget.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from api_latency import get, serve  # noqa: E402
from sweep_throughput import T0  # noqa: E402

from core.champion import example  # noqa: E402
from core.features import DAY_MS  # noqa: E402
from core.settings import Settings  # noqa: E402
from services.redis_server import RedisServer, stop_process  # noqa: E402
from state.models import ModelStore  # noqa: E402
from stream.learner.state import new_state  # noqa: E402

BUDGET_MS = 100.0


async def checkpoint_with_history(client: object, days: int = 400, per_day: int = 25) -> int:
    """A learner state trained on ``days`` anchor days of synthetic examples, saved."""
    state = new_state(Settings(metrics_window=5000))
    rng = random.Random(2)
    for day in range(days):
        for i in range(per_day):
            d = rng.uniform(0, 40)
            state.learn_example(example(d, rng), int(rng.random() < (0.8 if d > 25 else 0.1)),
                                (0, (T0 // DAY_MS - days + day) * DAY_MS, i))
    return await ModelStore(client, "bench").save(state, 0, state.examples, state.summary())


async def timed(port: int, paths: list[str], n: int) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    out = []
    for i in range(n):
        t = time.perf_counter()
        status = await get(reader, writer, paths[i % len(paths)])
        out.append((time.perf_counter() - t) * 1000)
        assert status == 200, (paths[i % len(paths)], status)
    writer.close()
    return sorted(out)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=200)
    args = ap.parse_args()
    server = RedisServer().start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        store, api_port, bare_port = await serve(server, args.users, procs)
        version = await checkpoint_with_history(store.r)
        print(f"checkpoint v{version} with a 400-day quality history", flush=True)
        rng = random.Random(3)
        users = [f"/console/users/user{rng.randrange(args.users):07d}" for _ in range(500)]
        cases = [("bare route (constant)", bare_port, ["/const"]),
                 ("/console (overview)", api_port, ["/console"]),
                 ("/console/users/{id}", api_port, users),
                 ("/console/targets (k=50)", api_port, ["/console/targets"]),
                 ("/console/targets tier=high", api_port, ["/console/targets?k=50&tier=high"]),
                 ("/console/targets saved value", api_port,
                  ["/console/targets?k=50&sort=saved_value"]),
                 ("/console/targets segment=hibernating", api_port,
                  ["/console/targets?k=50&segment=hibernating"]),
                 ("/console/targets segment=loyal (deep)", api_port,
                  ["/console/targets?k=50&segment=loyal"]),
                 ("/console/targets top 1 % (10k rows)", api_port,
                  ["/console/targets?percent=1"]),
                 ("/console/segments", api_port, ["/console/segments"]),
                 ("/console/alerts", api_port, ["/console/alerts"])]
        for _, port, paths in cases:  # warm up (and the 2 s fit cache)
            await timed(port, paths, 5)
        floor = 0.0
        for name, port, paths in cases:
            n = args.requests if "rows" not in name and "deep" not in name else 5
            lat = await timed(port, paths, n)
            p50 = lat[len(lat) // 2]
            if port == bare_port:
                floor = p50
            print(f"{name:<38} p50 {p50:7.2f} ms  p90 {lat[int(0.9 * len(lat))]:7.2f} ms  "
                  f"max {lat[-1]:7.1f} ms  p50 - bare {p50 - floor:7.2f} ms  "
                  f"ratio p50 / 100 ms budget {p50 / BUDGET_MS:.2f}", flush=True)
    finally:
        for p in procs:
            stop_process(p)
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
