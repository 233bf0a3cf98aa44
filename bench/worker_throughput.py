"""Worker throughput vs a trivial faust agent on the same broker, same run; Redis memory per user.

    python bench/worker_throughput.py [--events 100000] [--users 20000]

Produces N simulated events once, then consumes them twice with separate
consumer groups: a trivial faust agent that only deserializes, and the full
worker (validation + dedupe + Redis state + features + scores). Prints both
rates, their ratio, and Redis memory per user after the full run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stream import simulate  # noqa: E402
from stream.services import EmbeddedServices  # noqa: E402
from stream.topics import ensure_topics  # noqa: E402


def produce(bootstrap: str, topic: str, n: int, users: int) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaProducer
    prod = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024)
    sent = 0
    for ev in simulate.events(users=users, days=120, seed=11):
        prod.send(topic, key=str(ev["user_id"]).encode(),
                  value=json.dumps(ev, separators=(",", ":")).encode())
        sent += 1
        if sent >= n:
            break
    prod.flush()
    prod.close()
    return sent


def run(mode: str, env: dict[str, str], n: int, group: str) -> dict[str, float]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = fh.name
    e = dict(env, CHURN_APP_ID=group)
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "_faust_runner.py"), mode,
                           str(n), out], env=e, cwd=ROOT, capture_output=True, timeout=900)
    text = Path(out).read_text()
    os.unlink(out)
    if not text:
        raise RuntimeError(f"{mode} runner failed: {proc.stderr.decode()[-2000:]}")
    res = json.loads(text)
    return {"events": res["events"], "seconds": res["seconds"],
            "rate": res["events"] / res["seconds"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--partitions", type=int, default=4)
    args = ap.parse_args()
    with EmbeddedServices() as svc, tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, **svc.env, CHURN_KAFKA_SESSION_TIMEOUT="2",
                   CHURN_PARTITIONS=str(args.partitions), CHURN_STATE_DIR=tmp,
                   CHURN_ENV_FILE=os.path.join(tmp, "none.env"))
        settings = svc.settings(partitions=args.partitions)
        ensure_topics(settings)
        t = time.perf_counter()
        n = produce(svc.broker.bootstrap, settings.events_topic, args.events, args.users)
        print(f"produced {n} events in {time.perf_counter() - t:.1f}s", flush=True)
        r = redis.Redis.from_url(svc.redis.url, protocol=2)
        mem0 = int(r.info("memory")["used_memory"])
        trivial = run("trivial", env, n, "bench-trivial")
        full = run("full", env, n, "bench-full")
        mem1 = int(r.info("memory")["used_memory"])
        users = sum(1 for _ in r.scan_iter(match="churn:{u:*", count=1000))
    print(f"trivial faust agent (deserialize only): {trivial['rate']:>9.0f} events/s")
    print(f"full worker (validate+dedupe+state+features): {full['rate']:>9.0f} events/s")
    print(f"ratio full/trivial: {full['rate'] / trivial['rate']:.2f}")
    print(f"redis memory: {(mem1 - mem0) / users:.0f} bytes per user ({users} users, "
          f"{n} events, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
