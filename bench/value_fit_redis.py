"""The customer-value job's Redis side on N users: the summaries scan
(``state/lua/value_scan.lua``, one script call per SCAN step) and the CLV index rebuild,
against a redis-py baseline measured in the same run (SCAN + pipelined HMGET of the
same three fields, decoded in Python).

    python bench/value_fit_redis.py [--users 200000]

Users are written straight into a fresh redis-server: fields ``m``, ``o`` and ``v`` as
the worker writes them (a purchase-day bitmap over ~180 days for 60 % of the users).
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.features import DAY_MS
from core.settings import Settings
from services.redis_server import RedisServer
from state.codec import value_field
from state.keys import Keys
from state.redis_store import connect
from state.value_store import ValueStore
from stream.jobs.value_fit import fit_summaries

DAY0 = 18_200


async def load(client, keys: Keys, n: int, rng: np.random.Generator) -> None:  # type: ignore[no-untyped-def]
    for lo in range(0, n, 5000):
        pipe = client.pipeline(transaction=False)
        for i in range(lo, min(n, lo + 5000)):
            first = DAY0 + int(rng.integers(0, 150))
            last_event = (first + int(rng.integers(0, 30))) * DAY_MS
            fields = {"o": struct.pack("<Hd", i % 4, i)}
            if rng.random() < 0.6:
                days = sorted({first + int(d) for d in rng.integers(0, 180 - (first - DAY0),
                                                                     rng.integers(1, 12))})
                base = days[0] - days[0] % 8
                bits = bytearray((days[-1] - base) // 8 + 1)
                for d in days:
                    bits[(d - base) // 8] |= 1 << ((d - base) % 8)
                spend = float(rng.gamma(4.0, 10.0 / rng.gamma(5.0, 1.0), len(days)).sum())
                fields["v"] = struct.pack("<iIId", base, len(days), len(days),
                                          spend) + bytes(bits)
                last_event = max(last_event, days[-1] * DAY_MS)
                lastp = days[-1] * DAY_MS
            else:
                lastp = -1
            fields["m"] = struct.pack("<ddd", first * DAY_MS, last_event, lastp)
            pipe.hset(keys.user(f"u{i}"), mapping=fields)
        await pipe.execute()
    await client.hset(keys.watermark, mapping={p: (DAY0 + 180) * DAY_MS for p in range(4)})


async def baseline(client, keys: Keys) -> int:  # type: ignore[no-untyped-def]
    """The obvious redis-py version: SCAN, then HMGET per key in one pipeline per step."""
    n = 0
    cursor = 0
    while True:
        cursor, found = await client.scan(cursor, match=keys.user_scan_pattern(), count=2000)
        pipe = client.pipeline(transaction=False)
        for k in found:
            pipe.hmget(k, "v", "m", "o")
        for v, m, _ in await pipe.execute():
            if v is not None and m is not None:
                days, _, _ = value_field(v)
                n += bool(days)
        if cursor == 0:
            return n


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=200_000)
    args = ap.parse_args()
    server = RedisServer().start()
    try:
        client = connect(server.url)
        keys = Keys("bench")
        await load(client, keys, args.users, np.random.default_rng(3))
        vs = ValueStore(client, "bench")
        t = time.perf_counter()
        want = await baseline(client, keys)
        base = time.perf_counter() - t
        t = time.perf_counter()
        s = await vs.summaries(365)
        scan = time.perf_counter() - t
        assert len(s.ids) == want, (len(s.ids), want)
        t = time.perf_counter()
        _, clv = fit_summaries(s.records, s.as_of_ms, Settings())
        fit = time.perf_counter() - t
        t = time.perf_counter()
        await vs.write_index(s.ids, clv)
        index = time.perf_counter() - t
        print(f"{args.users:,} users, {len(s.ids):,} customers: summaries scan {scan:.2f}s "
              f"({base / scan:.1f}x faster than SCAN + HMGET + Python decode, {base:.2f}s); "
              f"fit {fit:.2f}s; CLV index rebuilt {index:.2f}s")
        await client.aclose()
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
