"""Sweeper cost: rescoring every silent user of a partition at an anchor.

    python bench/sweep_throughput.py [--users 100000] [--events-per-user 3]

Fills one partition with N users through the worker's batch path (real Redis, rule
scores, tiers), trains a ``StandardScaler | LogisticRegression`` on synthetic
examples, then times, in one run, on the same users:

- ``bare read``: HGETALL of every user hash in pipelines of the sweep's chunk size
  (the I/O floor: reading the state the sweep needs, nothing else);
- ``sweep, vectorised``: :meth:`stream.worker.sweeper.Sweeper.sweep` with the matrix scorer
  (after a first, untimed-for-the-ratio sweep in which the model replaces the rule
  scores of the fill and most users change tier);
- ``sweep, per user``: the same with one ``predict_proba_one`` per user;
- ``sweep, value inputs``: the vectorised sweep with a model that also learned the
  BG/NBD inputs (``CHURN_MODEL_VALUE_INPUTS``): per chunk, the users' summaries and
  P(alive) / expected purchases under a fixed fit.

Prints users/s, the ratios, the time 1,000,000 users would take at that rate, and the
timed vectorised sweep's CPU split (Redis, this process) with Redis's time by command.
``BENCH_PROFILE=/tmp/p`` profiles the timed vectorised sweep (top functions printed,
the stats written to that path).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.bgnbd import BGNBD  # noqa: E402
from core.events import Event  # noqa: E402
from core.features import FEATURE_NAMES  # noqa: E402
from core.gc_tuning import tune_gc  # noqa: E402
from core.long_range import LONG_RANGE_NAMES  # noqa: E402
from core.model import make_pipeline, model_inputs  # noqa: E402
from core.scoring import LinearScorer, PipelineScorer  # noqa: E402
from core.settings import Settings  # noqa: E402
from services.redis_server import RedisServer  # noqa: E402
from state.redis_store import RedisFeatureStore, connect  # noqa: E402
from state.store import Item  # noqa: E402
from state.value_model import ValueModel  # noqa: E402
from stream.worker.live import Live  # noqa: E402
from stream.worker.sweeper import Sweeper  # noqa: E402

DAY = 86_400_000
T0 = 18_300 * DAY


async def fill(store: RedisFeatureStore, live: Live, users: int, per_user: int) -> None:
    rng = random.Random(1)
    batch: list[Item] = []
    n = 0
    for u in range(users):
        for k in range(per_user):
            t = T0 + rng.randrange(20 * DAY)
            ev = Event(event_id=f"{u}-{k}", user_id=f"user{u:07d}",
                       event_type=rng.choice(["view", "view", "cart", "purchase"]),
                       event_time=t, price=round(rng.uniform(1, 200), 2),
                       brand=rng.choice(["acme", "zenith", "nova"]))
            batch.append(Item(ev, 0, n, k == per_user - 1))
            n += 1
        if len(batch) >= 4000 or u == users - 1:
            res = await store.apply(batch)
            await live.rescore([(it.event.user_id, 0, r.aggregates) for it, r
                                in zip(batch, res, strict=True) if r.aggregates is not None])
            batch = []


def trained_pipeline(value: bool = False) -> object:
    rng = random.Random(2)
    m = make_pipeline("logreg", lr=0.01)
    for _ in range(3000):
        # the 17 features and the long-range inputs, as the default model learns them
        f = {n: rng.random() * 10 for n in (*FEATURE_NAMES, *LONG_RANGE_NAMES)}
        if value:
            f.update(bg_customer=float(rng.random() < 0.6), bg_p_alive=rng.random(),
                     bg_expected_purchases=rng.random() * 3, bg_p_no_purchase=rng.random())
        m.learn_one(model_inputs(f), f["days_since_last_event"] > 6)
    return m


async def bare_read(store: RedisFeatureStore, users: Sequence[str], chunk: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(users), chunk):
        pipe = store.r.pipeline(transaction=False)
        for u in users[i:i + chunk]:
            pipe.hgetall(store.keys.user(u))
        await pipe.execute()
    return time.perf_counter() - start


async def _redis_cpu(store: RedisFeatureStore) -> float:
    cpu = await store.r.info("cpu")
    return float(cpu["used_cpu_user"] + cpu["used_cpu_sys"])


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--events-per-user", type=int, default=3)
    ap.add_argument("--no-per-user", action="store_true",
                    help="skip the per-user baseline (slow at 1,000,000 users)")
    args = ap.parse_args()
    settings = Settings()
    server = RedisServer().start()
    try:
        store = RedisFeatureStore(connect(server.url), "bench")

        async def nowhere(messages: Sequence[bytes]) -> None:
            pass

        live = Live.from_settings(store, nowhere, settings)
        t = time.perf_counter()
        await fill(store, live, args.users, args.events_per_user)
        print(f"filled {args.users} users ({args.events_per_user} events each) "
              f"in {time.perf_counter() - t:.1f}s")
        users = [u for u, _ in await store.active_users(0, float("-inf"), float("inf"))]
        pipeline = trained_pipeline()
        tune_gc()  # the sweeper runs inside the worker, which does this at start-up
        sweeper = Sweeper(store, live, asyncio.Lock(), settings.churn_horizon_days,
                          settings.sweep_chunk)
        bare = await bare_read(store, users, settings.sweep_chunk)
        live.scorer = LinearScorer(pipeline, "model:logreg", 1)
        first = await sweeper.sweep(0, T0 + 21 * DAY)  # the model replaces the rule
        print(f"first sweep after the model replaced the rule: {first.seconds:.2f}s, "
              f"{first.alerts} alerts (tier changes)")
        profile = os.environ.get("BENCH_PROFILE")  # a path: profile the timed sweep
        prof = cProfile.Profile() if profile else None
        if prof is not None:
            prof.enable()
        await store.r.config_resetstat()
        cpu0, py0 = await _redis_cpu(store), time.process_time()
        vec = await sweeper.sweep(0, T0 + 22 * DAY)
        cpu1, py1 = await _redis_cpu(store), time.process_time()
        stats = await store.r.info("commandstats")
        print(f"timed vectorised sweep: wall {vec.seconds:.2f}s, Redis CPU {cpu1 - cpu0:.2f}s, "
              f"this process's CPU {py1 - py0:.2f}s (all threads; overlap = their sum "
              f"over the wall time)")
        top = sorted(stats.items(), key=lambda kv: -kv[1]["usec"])[:8]
        print("Redis time by command in it (scripts count their calls inside): " + ", ".join(
            f"{k.removeprefix('cmdstat_')} {v['usec'] / 1e6:.2f}s/{v['calls']}" for k, v in top))
        if prof is not None:
            prof.disable()
            prof.dump_stats(profile)
            pstats.Stats(prof).sort_stats("tottime").print_stats(15)
        n = len(users)
        rows = [("bare read", bare), ("sweep, vectorised", vec.seconds)]
        assert vec.users == n, vec
        if not args.no_per_user:
            live.scorer = PipelineScorer(pipeline, "model:logreg", 1)
            one = await sweeper.sweep(0, T0 + 23 * DAY)
            assert one.users == n, one
            rows.append(("sweep, per user", one.seconds))
        live.scorer = LinearScorer(trained_pipeline(value=True), "model:logreg", 2,
                                   value_inputs=True)
        live.value = ValueModel(None, settings.churn_horizon_days,
                                params=BGNBD(r=0.6, alpha=4.0, a=0.7, b=2.5))
        await sweeper.sweep(0, T0 + 24 * DAY)  # the value model replaces the other
        val = await sweeper.sweep(0, T0 + 25 * DAY)
        assert val.users == n, val
        rows.append(("sweep, value inputs", val.seconds))
        print(f"users swept: {n} (silent 2-23 days, none churned); alerts in the timed "
              f"vectorised sweep: {vec.alerts}")
        for name, secs in rows:
            print(f"  {name:<18} {secs:7.2f}s  {n / secs:9.0f} users/s  "
                  f"1M users: {1e6 / (n / secs):6.1f}s")
        print(f"ratio sweep(vectorised) / bare read: {vec.seconds / bare:.2f}x the time")
        if len(rows) > 3:
            print(f"ratio per-user / vectorised: {rows[2][1] / vec.seconds:.2f}x the time")
        print(f"ratio vectorised with value inputs / without: "
              f"{rows[-1][1] / vec.seconds:.2f}x the time (alerts {val.alerts} vs {vec.alerts})")
        cpu = await store.r.info("cpu")
        used = cpu["used_cpu_user"] + cpu["used_cpu_sys"]
        print(f"redis CPU (whole run, incl. fill): {used:.1f}s")
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
