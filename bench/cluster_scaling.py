"""Worker throughput on a Redis Cluster with 1, 2 and 4 workers vs 1 worker on a single
Redis, in one run, on the same broker and the same produced log (issue 17).

    python bench/cluster_scaling.py [--events 60000] [--users 12000] [--partitions 32]
                                    [--rounds 2] [--workers 1,2,4]

The log is produced once to a topic of ``--partitions`` partitions; every configuration
consumes it from the start with its own consumer group and key prefix (the full worker:
validation, dedupe, state, features, scores, tiers). Its rate is events from the first
consumed to the last, polled from the stored counters every 50 ms, so the group's
start-up is left out but rebalances between the workers that start together are in. CPU
seconds of the workers, the broker and Redis are read from /proc. On this 2-core
machine more workers than cores share the cores with the broker and Redis: the ratios
say what the code allows here, not what more machines would give.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.worker_throughput import cpu_seconds, produce  # noqa: E402
from services.embedded import EmbeddedServices  # noqa: E402
from services.redis_cluster import RedisCluster  # noqa: E402
from state.keys import Keys  # noqa: E402
from stream.topics import ensure_topics  # noqa: E402

COUNTED = ("applied", "late", "late_outside", "duplicate", "rejected")


def consumed(client: object, keys: Keys) -> int:
    total = 0
    for key in keys.shards("stats"):
        raw = client.hmget(key, COUNTED)  # type: ignore[attr-defined]
        total += sum(int(v) for v in raw if v is not None)
    return total


def used_memory(cluster: RedisCluster | None, env: dict[str, str]) -> int:
    """Redis memory in use (on a cluster: summed over the primaries)."""
    import redis

    if cluster is None:
        r = redis.Redis.from_url(env["CHURN_REDIS_URL"], protocol=2)
        nodes = [r]
    else:
        nodes = [redis.Redis(port=p, protocol=2) for p in cluster.ports]
    total = sum(int(n.info("memory")["used_memory"]) for n in nodes)
    for n in nodes:
        n.close()
    return total


def run(env: dict[str, str], workers: int, n: int, name: str, cluster: RedisCluster | None,
        partitions: int, servers: dict[str, int]) -> dict[str, float]:
    import redis

    prefix = f"b{name}"
    e = dict(env, CHURN_APP_ID=f"g{name}", CHURN_REDIS_PREFIX=prefix, CHURN_LOG_LEVEL="warn")
    if cluster is not None:
        e["CHURN_REDIS_URL"] = cluster.url.replace("redis://", "redis+cluster://")
        client: object = redis.RedisCluster.from_url(cluster.url, protocol=2)
        keys = Keys(prefix, partitions=partitions)
    else:
        client = redis.Redis.from_url(env["CHURN_REDIS_URL"], protocol=2)
        keys = Keys(prefix)
    before = {k: cpu_seconds(pid) for k, pid in servers.items()}
    mem0 = used_memory(cluster, env)
    procs = [subprocess.Popen([sys.executable, "-m", "cli.main", "worker"], env=e, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(workers)]
    try:
        deadline = time.monotonic() + 600
        while (got := consumed(client, keys)) == 0:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"{name}: no event consumed")
            time.sleep(0.02)
        t0, first = time.perf_counter(), got
        while (got := consumed(client, keys)) < n:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"{name}: {got} of {n} consumed")
            time.sleep(0.05)
        seconds = time.perf_counter() - t0
        cpu = {k: cpu_seconds(pid) - before[k] for k, pid in servers.items()}
        time.sleep(1.0)  # the last batch's scores and sweeps land
        users = sum(1 for _ in client.scan_iter(match=keys.user_scan_pattern(),  # type: ignore[attr-defined]
                                                count=1000))
        cpu["bytes_per_user"] = (used_memory(cluster, env) - mem0) / max(1, users)
        cpu["workers"] = sum(cpu_seconds(p.pid) for p in procs)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        client.close()  # type: ignore[attr-defined]
    return {"rate": (n - first) / seconds, "seconds": seconds, **cpu,
            "us_per_event": cpu["workers"] / n * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--users", type=int, default=12_000)
    ap.add_argument("--partitions", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", default="1,2,4")
    args = ap.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    with EmbeddedServices() as svc, tempfile.TemporaryDirectory() as tmp:
        cluster = RedisCluster(3).start()
        try:
            env = dict(os.environ, **svc.env, CHURN_KAFKA_SESSION_TIMEOUT="2",
                       CHURN_PARTITIONS=str(args.partitions), CHURN_STATE_DIR=tmp,
                       CHURN_ENV_FILE=os.path.join(tmp, "none.env"),
                       CHURN_WORKER_METRICS_PORT="0")
            settings = svc.settings(partitions=args.partitions)
            ensure_topics(settings)
            n = produce(svc.broker.bootstrap, settings.events_topic, args.events, args.users)
            print(f"produced {n} events to {args.partitions} partitions", flush=True)
            assert svc.broker.proc is not None and svc.redis.proc is not None
            single_servers = {"broker": svc.broker.proc.pid, "redis": svc.redis.proc.pid}
            cluster_servers = {"broker": svc.broker.proc.pid,
                               **{f"redis{i}": p.pid for i, p in enumerate(cluster.nodes)}}
            rates: dict[str, list[float]] = {}
            for r in range(args.rounds):
                configs = [("single Redis, 1 worker", 1, None)] + [
                    (f"cluster, {w} worker{'s' if w > 1 else ''}", w, cluster) for w in counts]
                for label, w, cl in configs:
                    res = run(env, w, n, f"{r}{w}{'c' if cl else 's'}", cl, args.partitions,
                              cluster_servers if cl else single_servers)
                    rates.setdefault(label, []).append(res["rate"])
                    redis_cpu = sum(v for k, v in res.items() if k.startswith("redis"))
                    print(f"round {r + 1}: {label:<24} {res['rate']:>7.0f} events/s | cpu-s "
                          f"workers {res['workers']:.1f}, broker {res['broker']:.1f}, redis "
                          f"{redis_cpu:.1f} | worker CPU {res['us_per_event']:.0f} us/event | "
                          f"redis {res['bytes_per_user']:.0f} bytes/user", flush=True)
        finally:
            cluster.stop()
    base = median(rates["single Redis, 1 worker"])
    for label, got in rates.items():
        print(f"{label:<24} median {median(got):>7.0f} events/s, "
              f"ratio to 1 worker on a single Redis: {median(got) / base:.2f}")
    print(f"({os.cpu_count()} cores, {n} events, {args.partitions} partitions, "
          f"{args.rounds} interleaved rounds)")


if __name__ == "__main__":
    main()
