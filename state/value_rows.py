"""The summaries an event-time value fit is made of, in Redis (core/value_schedule.py).

At the anchor of a fit day ``D`` each partition's worker stores the value summary of each
of the partition's users as of ``D`` (:meth:`ValueRows.put`, before the anchor is marked
done, so a repeated anchor writes the same rows); the learner fits once every partition
expected at ``D`` has delivered (:meth:`missing`), records which version the day made
(:meth:`finish`) and drops the rows. Workers serve by fit day (:meth:`fit_days`).

Keys: ``<prefix>:value:rows:<D>`` (hash: ``r:<p>`` the packed SUMMARY records, ``i:<p>``
the customers' ids, ``n:<p>`` users without a purchase), ``<prefix>:value:due`` (sorted
set: fit day -> wall-clock ms of its first delivery), ``<prefix>:value:days`` (hash: fit
day -> version, 0 for a skipped fit; a negative version, written by earlier releases,
marks a fit that did not serve the model),
``<prefix>:value:served`` (hash: fit day -> the BG/NBD parameters it serves, the newest
120 days: scores as old as two years are explained under their own fit),
``<prefix>:value:job`` (the learner's heartbeat).
Rows that can no longer serve (older than ``every + lag`` days before the newest) are
dropped when new ones are written, so a stack without a learner keeps at most a few sets.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from core.bgnbd import BGNBD
from core.features import DAY_MS
from state.keys import Keys
from state.scripts import SCRIPTS

SUMMARY = np.dtype([("x", "<i4"), ("t_x", "<i4"), ("T", "<i4"), ("n", "<u4"),
                    ("spend", "<f8"), ("recency", "<i4"), ("frequency", "<i4")])
class ValueRows:
    def __init__(self, client: Any, prefix: str = "churn", keys: Keys | None = None) -> None:
        self.r = client
        # the feature store's keys (their placement); the value keys are global ones
        self.keys = keys if keys is not None else Keys(prefix)
        prefix = self.keys.global_prefix
        self.due_key = f"{prefix}:value:due"
        self.days_key = f"{prefix}:value:days"
        self.job_key = f"{prefix}:value:job"
        self.served_key = f"{prefix}:value:served"
        self._rows_prefix = f"{prefix}:value:rows:"
        self._rows = client.register_script(SCRIPTS["value_rows"])

    def rows_key(self, day: int) -> str:
        return f"{self._rows_prefix}{day}"

    async def put(self, partition: int, day: int, frequency_days: int, drop_before: int,
                  chunk: int = 2000) -> int:
        """Store the summaries of ``partition``'s users on ``day``; drop the row sets of
        fit days before ``drop_before``. Returns the number of customers (0, and nothing
        written, for a day already done or too old to serve)."""
        # a partition far behind the others: its day was fitted, given up or dropped
        # already (rows it wrote now would make an incomplete set nobody completes)
        old = [int(d) for d in await self.r.zrange(self.due_key, 0, -1)]  # a few days
        if (old and day < max(old) - (day - drop_before)) or day in await self.fit_days():
            return 0
        users: list[bytes] = []
        for key in (self.keys.active(partition), self.keys.gone(partition)):
            users.extend(await self.r.zrange(key, 0, -1))
        blobs: list[bytes] = []
        ids: list[str] = []
        prospects = 0
        for i in range(0, len(users), chunk):
            keys = [self.keys.user(u.decode(), partition) for u in users[i:i + chunk]]
            res = await self._rows(keys=keys, args=[frequency_days, day])
            blobs.append(res[0])
            prospects += int(res[1])
            ids.extend(self.keys.user_id_of(k.decode()) for k in res[2:])
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self.rows_key(day), mapping={f"r:{partition}": b"".join(blobs),
                                               f"i:{partition}": "\n".join(ids),
                                               f"n:{partition}": prospects})
        pipe.zadd(self.due_key, {str(day): int(time.time() * 1000)}, nx=True)
        for d in old:
            if d < drop_before:
                pipe.delete(self.rows_key(d))
                pipe.zrem(self.due_key, str(d))
        await pipe.execute()
        return len(ids)

    async def missing(self, day: int) -> set[int]:
        """Partitions expected at ``day`` that have not delivered its rows: those whose
        clock started before it (an anchor of ``D`` runs only where the clock passes it)."""
        clock: dict[bytes, bytes] = {}
        for key in self.keys.shards("clock"):
            clock.update(await self.r.hgetall(key))
        expected = {int(k[2:]) for k, v in clock.items()
                    if k.startswith(b"f:") and int(v) < day * DAY_MS}
        got = {int(f[2:]) for f in await self.r.hkeys(self.rows_key(day)) if f[:2] == b"r:"}
        return expected - got

    async def due(self) -> list[tuple[int, int]]:
        """(fit day, wall-clock ms of its first delivery), oldest day first."""
        rows = await self.r.zrange(self.due_key, 0, -1, withscores=True)
        return sorted((int(d), int(ms)) for d, ms in rows)

    async def read(self, day: int) -> tuple[list[str], np.ndarray, int]:
        """Every delivered partition's customers' ids and summaries on ``day`` (partition
        order), and the users without a purchase."""
        raw = await self.r.hgetall(self.rows_key(day))
        parts = sorted(int(f[2:]) for f in raw if f[:2] == b"r:")
        ids: list[str] = []
        for p in parts:
            text = raw[f"i:{p}".encode()].decode()
            ids.extend(text.split("\n") if text else [])
        recs = np.frombuffer(b"".join(raw[f"r:{p}".encode()] for p in parts), dtype=SUMMARY)
        return ids, recs, sum(int(raw[f"n:{p}".encode()]) for p in parts)

    async def finish(self, day: int, version: int, keep: int, served: BGNBD | None = None,
                     history: int = 120) -> None:
        """Record the version made from ``day`` (0: skipped, < 0: not served) and drop
        its rows; forget
        the days of versions no longer kept (the newest ``keep`` are)."""
        days = await self.fit_days()
        days[day] = version
        newest = max(days.values())
        kept = [d for d, v in days.items() if v > newest - keep]
        stale = [d for d, v in days.items() if v <= newest - keep and (v > 0 or d < min(kept))]
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self.days_key, str(day), version)
        if stale:
            pipe.hdel(self.days_key, *map(str, stale))
        if served is not None:  # its BG/NBD parameters, for as long as scores may need them
            pipe.hset(self.served_key, str(day), ",".join(repr(float(v)) for v in served))
            old = sorted(int(d) for d in await self.r.hkeys(self.served_key))
            if len(old) >= history:
                pipe.hdel(self.served_key, *map(str, old[:len(old) - history + 1]))
        pipe.delete(self.rows_key(day))
        pipe.zrem(self.due_key, str(day))
        await pipe.execute()

    async def served_fits(self) -> dict[int, BGNBD]:
        """Fit day -> the BG/NBD parameters it serves (the newest ``history`` days)."""
        raw = await self.r.hgetall(self.served_key)
        return {int(d): BGNBD(*map(float, v.split(b","))) for d, v in raw.items()}

    async def fit_days(self) -> dict[int, int]:
        return {int(d): int(v) for d, v in (await self.r.hgetall(self.days_key)).items()}

    async def beat(self, ttl_ms: int = 5000) -> None:
        """The learner's heartbeat: workers wait for a fit only while it is alive."""
        await self.r.set(self.job_key, b"1", px=ttl_ms)

    async def learner_alive(self) -> bool:
        return bool(await self.r.exists(self.job_key))
