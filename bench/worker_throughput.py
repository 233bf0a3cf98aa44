"""Worker throughput vs a trivial faust agent on the same broker, same run; Redis memory per user.

    python bench/worker_throughput.py [--events 100000] [--users 20000] [--learned 20000]

Produces N simulated events once, then consumes them twice with separate
consumer groups: a trivial faust agent that only deserializes, and the full
worker (validation + dedupe + Redis state + features + scores). Prints both
rates, their ratio, and Redis memory per user after the full run. ``--learned N``:
before each full round, a learner state trained on N synthetic examples is saved as the
model checkpoint, so the worker scores with what the learner chose (a trained model, or
the champion where the code has candidates) instead of the cold-start rule.
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
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from offline import simulate  # noqa: E402
from services.embedded import EmbeddedServices  # noqa: E402
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


def trained_state(n: int, champion: str | None = None) -> object:
    """A learner state after ``n`` synthetic examples (long-range and BG/NBD inputs too
    where this version of the code has them; older learners ignore them)."""
    import random

    from stream.learner.state import new_state
    from tests.integration.test_learner import examples

    try:
        from core.long_range import LONG_RANGE_NAMES
    except ImportError:  # a version of the code from before them
        LONG_RANGE_NAMES = ()
    from core.model import VALUE_INPUT_NAMES
    from core.settings import Settings

    rng = random.Random(2)
    state = new_state(Settings())
    for i, raw in enumerate(examples(n)):
        body = json.loads(raw)
        body["long"] = {name: rng.random() * 20 for name in LONG_RANGE_NAMES}
        body["value"] = {name: rng.random() for name in VALUE_INPUT_NAMES}
        body["release"] = i // 2000 * 86_400_000
        state.learn(json.dumps(body).encode(), i)  # type: ignore[attr-defined]
    ch = getattr(state, "champion", None)
    if ch is not None and champion:  # speak with this candidate, calibrated on its window
        import numpy as np

        from core.candidates import platt

        ch.flush()
        ch.champion = champion
        ch.calibration = platt(np.fromiter(ch.scores[champion], float),
                               np.fromiter(ch.labels, float), ch.transform(champion))
    return state


def save_model(url: str, prefix: str, state: object) -> str:
    import asyncio

    from state.models import ModelStore
    from state.redis_store import connect

    async def go() -> None:
        client = connect(url)
        await ModelStore(client, prefix).save(state, 0, 1, {})
        await client.aclose()

    asyncio.run(go())
    ready = getattr(state, "champion", None)
    return ready.champion if ready is not None else "model (no candidates in this code)"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


SERVER_PIDS: dict[str, int] = {}
# the plain-consumer ceilings (bench/_plain_consumer.py): decode only; decode + one
# minimal Lua state update per event, pipelined per batch
PLAIN = ("decode", "lua")
# the worker's settings before lanes and chunks (stream/worker/lanes.py)
SEQUENTIAL = {"CHURN_BATCH_LANES": "1", "CHURN_BATCH_CHUNKS": "1", "CHURN_BATCH_SIZE": "1000"}


def run(mode: str, env: dict[str, str], n: int, group: str) -> dict[str, float]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = fh.name
    e = dict(env, CHURN_APP_ID=group)
    before = {name: cpu_seconds(pid) for name, pid in SERVER_PIDS.items()}
    child0 = os.times()
    runner = "_plain_consumer.py" if mode in PLAIN else "_faust_runner.py"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / runner), mode,
                           str(n), out], env=e, cwd=ROOT, capture_output=True, timeout=900)
    text = Path(out).read_text()
    os.unlink(out)
    if not text:
        raise RuntimeError(f"{mode} runner failed: {proc.stderr.decode()[-2000:]}")
    res = json.loads(text)
    child1 = os.times()
    cpu = {name: cpu_seconds(pid) - before[name] for name, pid in SERVER_PIDS.items()}
    cpu["worker"] = (child1.children_user + child1.children_system
                     - child0.children_user - child0.children_system)
    return {"events": res["events"], "seconds": res["seconds"],
            "rate": res["events"] / res["seconds"], "cpu": cpu,  # type: ignore[dict-item]
            "us_per_event": res["cpu"] / res["events"] * 1e6}


def key_bytes(r: redis.Redis, match: str) -> int:
    """The summed MEMORY USAGE of the keys matching ``match`` (used_memory also moves with
    what other clients left: the ceilings' query buffers, the allocator)."""
    total = 0
    keys = list(r.scan_iter(match=match, count=1000))
    for i in range(0, len(keys), 1000):
        pipe = r.pipeline(transaction=False)
        for k in keys[i:i + 1000]:
            pipe.memory_usage(k, samples=0)
        total += sum(int(b or 0) for b in pipe.execute())
    return total


def _cpu(res: dict[str, object]) -> str:
    cpu = res["cpu"]
    assert isinstance(cpu, dict)
    return "/".join(f"{cpu[k]:.1f}" for k in ("worker", "broker", "redis"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=5,
                    help="interleaved trivial/full rounds; the median ratio is reported")
    ap.add_argument("--learned", type=int, default=0,
                    help="examples the saved model learned (0: no model, the rule scores)")
    ap.add_argument("--champion", default="stacked:logreg",
                    help="with --learned, where the code has candidates: the one that speaks")
    ap.add_argument("--no-ceilings", action="store_true",
                    help="skip the plain-consumer ceilings (decode; decode + minimal Lua)")
    ap.add_argument("--sequential", action="store_true",
                    help="each round also runs the worker as before lanes and chunks (one "
                         "lane, one chunk, batches of 1000): the gain, in the same run")
    ap.add_argument("--variant", metavar="NAME=VALUE,...",
                    help="with --sequential: the second worker of each round runs with these "
                         "settings instead (e.g. CHURN_BATCH_LANES=4), the default vs them")
    args = ap.parse_args()
    second = (dict(kv.split("=", 1) for kv in args.variant.split(",")) if args.variant
              else SEQUENTIAL)
    state = trained_state(args.learned, args.champion) if args.learned else None
    with EmbeddedServices() as svc, tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, **svc.env, CHURN_KAFKA_SESSION_TIMEOUT="2",
                   CHURN_PARTITIONS=str(args.partitions), CHURN_STATE_DIR=tmp,
                   CHURN_ENV_FILE=os.path.join(tmp, "none.env"))
        settings = svc.settings(partitions=args.partitions)
        assert svc.broker.proc is not None and svc.redis.proc is not None
        SERVER_PIDS.update(broker=svc.broker.proc.pid, redis=svc.redis.proc.pid)
        ensure_topics(settings)
        t = time.perf_counter()
        n = produce(svc.broker.bootstrap, settings.events_topic, args.events, args.users)
        print(f"produced {n} events in {time.perf_counter() - t:.1f}s", flush=True)
        r = redis.Redis.from_url(svc.redis.url, protocol=2)
        mem0 = int(r.info("memory")["used_memory"])
        rows = []
        ceilings: list[tuple[dict[str, float], dict[str, float], dict[str, float]]] = []
        sequential: list[tuple[dict[str, float], dict[str, float], Any]] = []
        for i in range(args.rounds):
            if not args.no_ceilings:
                plain = run("decode", env, n, f"bench-decode-{i}")
                lua = run("lua", dict(env, CHURN_REDIS_PREFIX=f"plain{i}"), n,
                          f"bench-lua-{i}")
            trivial = run("trivial", env, n, f"bench-trivial-{i}")
            trivial_gc = run("trivial-gc", env, n, f"bench-trivialgc-{i}")
            if state is not None:
                who = save_model(svc.redis.url, env.get("CHURN_REDIS_PREFIX", "churn"), state)
                env["CHURN_MODEL_POLL_SECONDS"] = "0.2"
                if i == 0:
                    print(f"model checkpoint saved; it scores with: {who}", flush=True)
            if i == 0:  # (after the ceilings' runs: their keys are not the worker's)
                mem0 = int(r.info("memory")["used_memory"])
            full = run("full", env, n, f"bench-full-{i}")
            if i == 0:  # state of one full run; later rounds use other key prefixes
                mem1 = int(r.info("memory")["used_memory"])
                users = sum(1 for _ in r.scan_iter(match="churn:{u:*", count=1000))
                held = key_bytes(r, "churn:*")
            if args.sequential:
                seq = run("full", dict(env, CHURN_REDIS_PREFIX=f"seq{i}", **second), n,
                          f"bench-seq-{i}")
                sequential.append((seq, full, lua if not args.no_ceilings else None))
                print(f"round {i + 1}: full {full['rate']:>6.0f}/s "
                      f"({full['us_per_event']:.1f} us/event), sequential "
                      f"{seq['rate']:>6.0f}/s ({seq['us_per_event']:.1f} us/event): "
                      f"{full['rate'] / seq['rate']:.2f}x", flush=True)
            env["CHURN_REDIS_PREFIX"] = f"bench{i}"
            rows.append((trivial["rate"], full["rate"], full["rate"] / trivial["rate"],
                         trivial["us_per_event"], full["us_per_event"],
                         full["rate"] / trivial_gc["rate"], trivial_gc["rate"]))
            if not args.no_ceilings:
                ceilings.append((plain, lua, full))
                print(f"round {i + 1}: plain decode {plain['rate']:>7.0f}/s "
                      f"({plain['us_per_event']:.1f} us/event), plain + minimal Lua "
                      f"{lua['rate']:>7.0f}/s ({lua['us_per_event']:.1f} us/event), full "
                      f"{full['rate']:>6.0f}/s ({full['us_per_event']:.1f} us/event): "
                      f"full / Lua ceiling {full['rate'] / lua['rate']:.3f}", flush=True)
            print(f"round {i + 1}: trivial {trivial['rate']:>6.0f}/s, trivial+gc "
                  f"{trivial_gc['rate']:>6.0f}/s, full {full['rate']:>6.0f}/s; ratio "
                  f"{rows[-1][2]:.2f} (vs trivial+gc {rows[-1][5]:.2f}) | CPU us/event: "
                  f"trivial {trivial['us_per_event']:.0f}, trivial+gc "
                  f"{trivial_gc['us_per_event']:.0f}, full {full['us_per_event']:.0f} | "
                  f"cpu-s worker(incl. start-up)/broker/redis: trivial {_cpu(trivial)}, "
                  f"full {_cpu(full)}", flush=True)
    ratios = sorted(row[2] for row in rows)
    med = rows[[row[2] for row in rows].index(ratios[len(ratios) // 2])]
    print(f"trivial faust agent (deserialize only): {med[0]:>9.0f} events/s")
    print(f"full worker (validate+dedupe+state+features): {med[1]:>9.0f} events/s")
    print(f"ratio full/trivial: {med[2]:.2f} (median of {len(rows)} interleaved rounds; "
          f"min {ratios[0]:.2f}, max {ratios[-1]:.2f})")
    gc_ratios = sorted(row[5] for row in rows)
    print(f"ratio full / trivial with the worker's GC settings: "
          f"{gc_ratios[len(gc_ratios) // 2]:.2f} (median; min {gc_ratios[0]:.2f}, "
          f"max {gc_ratios[-1]:.2f})")
    cpu_ratios = sorted(row[3] / row[4] for row in rows)
    print(f"CPU-time ratio (trivial us/event / full us/event, median): "
          f"{cpu_ratios[len(cpu_ratios) // 2]:.2f}")
    print(f"redis memory: {held / users:.0f} bytes per user in the worker's keys (MEMORY "
          f"USAGE; used_memory grew by {(mem1 - mem0) / users:.0f} per user; {users} users, "
          f"{n} events, {os.cpu_count()} cores)")
    def med(xs: list[float]) -> float:
        return sorted(xs)[len(xs) // 2]

    if sequential:
        gain = med([f["rate"] / q["rate"] for q, f, _ in sequential])
        seq_us = med([q["us_per_event"] for q, _, _ in sequential])
        print(f"full / sequential worker: {gain:.2f}x (median); sequential {seq_us:.1f} "
              f"us CPU/event")
        if all(c is not None for _, _, c in sequential):
            print("ratio sequential / (plain + minimal Lua): "
                  f"{med([q['rate'] / c['rate'] for q, _, c in sequential]):.3f} (median)")
    if ceilings:

        print(f"plain consumer, decode only: {med([c[0]['rate'] for c in ceilings]):>9.0f} "
              f"events/s, {med([c[0]['us_per_event'] for c in ceilings]):.1f} us CPU/event")
        print(f"plain consumer + minimal Lua: {med([c[1]['rate'] for c in ceilings]):>9.0f} "
              f"events/s, {med([c[1]['us_per_event'] for c in ceilings]):.1f} us CPU/event")
        print(f"full worker: {med([c[2]['us_per_event'] for c in ceilings]):.1f} us CPU/event")
        print(f"ratio full / (plain + minimal Lua): "
              f"{med([c[2]['rate'] / c[1]['rate'] for c in ceilings]):.3f}; full / decode "
              f"only: {med([c[2]['rate'] / c[0]['rate'] for c in ceilings]):.3f} (medians of "
              f"{len(ceilings)} interleaved rounds)")


if __name__ == "__main__":
    main()
