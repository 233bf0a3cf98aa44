"""Subprocess for bench/worker_throughput.py: the plain-consumer ceilings (issue 18).

    python bench/_plain_consumer.py MODE N OUT

mode ``decode``: a plain aiokafka consumer in its own group, ``getmany(max_records=
5000)`` with ``fetch_max_wait_ms=20``, orjson decode of every value, a commit per batch.
mode ``lua``: the same plus, per batch, one non-transactional redis.asyncio pipeline
with one EVALSHA per event (3 HINCRBY and an EXPIRE on the event's user hash): the
minimal per-user state update. Writes ``{"events", "seconds", "cpu"}`` (first batch to
the N-th event) to OUT.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import orjson
from aiokafka import AIOKafkaConsumer

from core.settings import Settings

MINIMAL = ("redis.call('HINCRBY', KEYS[1], 'n', 1) "
           "redis.call('HINCRBY', KEYS[1], 't:' .. ARGV[1], 1) "
           "redis.call('HINCRBY', KEYS[1], 'd:' .. ARGV[2], 1) "
           "redis.call('EXPIRE', KEYS[1], 2592000) return 1")


async def consume(mode: str, n: int) -> dict[str, float]:
    import redis.asyncio as aioredis

    settings = Settings.load()
    consumer = AIOKafkaConsumer(settings.events_topic,
                                bootstrap_servers=settings.kafka_bootstrap,
                                group_id=settings.app_id, auto_offset_reset="earliest",
                                enable_auto_commit=False, fetch_max_wait_ms=20,
                                session_timeout_ms=6000, heartbeat_interval_ms=1000,
                                max_partition_fetch_bytes=4 << 20)
    r = aioredis.Redis.from_url(settings.redis_url, protocol=2)
    sha = await r.script_load(MINIMAL)
    prefix = settings.redis_prefix
    await consumer.start()
    done, t0, c0 = 0, 0.0, 0.0
    try:
        while done < n:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if not batches:
                continue
            if not done:
                t0, c0 = time.perf_counter(), time.process_time()
            pipe = r.pipeline(transaction=False) if mode == "lua" else None
            for records in batches.values():
                for msg in records:
                    ev = orjson.loads(msg.value)
                    if pipe is not None:
                        pipe.evalsha(sha, 1, f"{prefix}:{{u:{ev['user_id']}}}",
                                     ev["event_type"], str(ev["event_time"])[:10])
                    done += 1
            if pipe is not None:
                await pipe.execute()
            await consumer.commit()
    finally:
        await consumer.stop()
        await r.aclose()
    return {"events": done, "seconds": time.perf_counter() - t0,
            "cpu": time.process_time() - c0}


def main() -> None:
    mode, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    res = asyncio.run(consume(mode, n))
    with open(out, "w") as fh:
        json.dump(res, fh)


if __name__ == "__main__":
    main()
