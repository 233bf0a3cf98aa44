"""The cluster's one unsharded write path: the ranking in the global slot.

    python bench/ranking_slot.py [--users 1000000] [--batch 1000] [--batches 300]

On a Redis Cluster every scored user costs one entry of ``state/lua/rank_scores.lua``
(ZADD, ZREVRANK, ZCARD) on the primary that holds the global slot, whatever the number
of primaries. This measures that primary's CPU per ranked write at ``--users`` ranked
users, with batches like the worker's, against a bare ZADD of the same users in the
same run, and prints the writes per second one primary core sustains.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.worker_throughput import cpu_seconds  # noqa: E402
from services.redis_server import RedisServer  # noqa: E402
from state.scripts import SCRIPTS  # noqa: E402


def main() -> None:
    import redis

    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--batches", type=int, default=300)
    args = ap.parse_args()
    server = RedisServer().start()
    try:
        assert server.proc is not None
        r = redis.Redis.from_url(server.url, protocol=2)
        rng = random.Random(1)
        pipe = r.pipeline(transaction=False)
        for i in range(args.users):
            pipe.zadd("{churn}:rank", {f"u{i:08d}": rng.random()})
            if i % 10_000 == 9_999:
                pipe.execute()
        pipe.execute()
        sha = r.script_load(SCRIPTS["rank_scores"])
        batches = [[f"u{rng.randrange(args.users):08d}" for _ in range(args.batch)]
                   for _ in range(args.batches)]
        rows = []
        for rnd in range(3):  # interleaved: the script, then a bare ZADD of the same users
            for kind in ("script", "zadd"):
                c0, t0 = cpu_seconds(server.proc.pid), time.perf_counter()
                for users in batches:
                    if kind == "script":
                        argv: list[object] = []
                        for u in users:
                            argv += (u, repr(rng.random()), "0")
                        r.evalsha(sha, 1, "{churn}:rank", *argv)
                    else:
                        r.zadd("{churn}:rank", {u: rng.random() for u in users})
                cpu = cpu_seconds(server.proc.pid) - c0
                rows.append((rnd, kind, cpu, time.perf_counter() - t0))
        n = args.batch * args.batches
        for rnd, kind, cpu, wall in rows:
            print(f"round {rnd + 1}: {kind:<6} redis CPU {cpu / n * 1e6:6.2f} us/write, "
                  f"wall {wall:5.2f} s for {n} writes")
        script = sorted(cpu for _, k, cpu, _ in rows if k == "script")[1]
        bare = sorted(cpu for _, k, cpu, _ in rows if k == "zadd")[1]
        print(f"ranking write (rank_scores.lua) at {args.users:,} ranked users: "
              f"{script / n * 1e6:.2f} us of Redis CPU (median of 3), "
              f"{script / bare:.2f}x a bare ZADD; one primary core: "
              f"{n / script:,.0f} ranked writes/s")
        r.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
