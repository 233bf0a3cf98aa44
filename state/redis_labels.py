"""Redis backend, labels and clocks: the active index read at anchors, pending label
snapshots, their release, the population means of the latest snapshots, the clocks."""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence

from redis.exceptions import NoScriptError

from core.features import FEATURE_NAMES, Aggregates
from state.clients.resp import pack
from state.codec import decode_aggregates
from state.redis_base import RedisBase
from state.store import population_means

POP_HEAD = struct.Struct("<qI")  # anchor, users; then the column sums (doubles)


def decode_population(parts: dict[bytes, bytes]) -> tuple[int, dict[str, float]]:
    """(users, means) of the stored per-partition snapshot sums."""
    def rows() -> Iterator[tuple[int, tuple[float, ...]]]:
        for raw in parts.values():
            _, users = POP_HEAD.unpack_from(raw)
            k = (len(raw) - POP_HEAD.size) // 8
            yield users, struct.unpack_from(f"<{k}d", raw, POP_HEAD.size)

    return population_means(rows())


class LabelOps(RedisBase):
    async def aggregates_at(self, user_ids: Sequence[str], now_ms: int,
                            partition: int | None = None) -> list[Aggregates | None]:
        if not user_ids:
            return []
        keys = [self.keys.user(u, partition) for u in user_ids]
        try:
            blobs = await self.r.evalsha(await self._sha("aggregates_at"), len(keys), *keys, now_ms)
        except NoScriptError:
            await self.load_scripts()
            blobs = await self.r.evalsha(await self._sha("aggregates_at"), len(keys), *keys, now_ms)
        return [decode_aggregates(b) if b is not None else None for b in blobs]

    async def active_users(self, partition: int, after_ms: float, until_ms: float
                           ) -> list[tuple[str, int]]:
        lo = "-inf" if after_ms == float("-inf") else f"({int(after_ms)}"
        hi = "+inf" if until_ms == float("inf") else str(int(until_ms))
        rows = await self.r.zrangebyscore(self.keys.active(partition), lo, hi, withscores=True)
        return [(u.decode(), int(t)) for u, t in rows]

    async def last_events(self, user_ids: Sequence[str],
                          partition: int | None = None) -> list[int | None]:
        pipe = self.r.pipeline(transaction=False)
        for u in user_ids:
            pipe.hget(self.keys.user(u, partition), "m")
        out: list[int | None] = []
        for m in await pipe.execute():
            out.append(int(struct.unpack_from("<d", m, 8)[0]) if m is not None else None)
        return out

    async def clock(self) -> dict[str, int]:
        raw = await self.merged("clock")
        return {k.decode(): int(v) for k, v in raw.items()}

    async def set_clock(self, name: str, value_ms: int) -> None:
        """Move the clock ``name`` (``a:<p>``, ``s:<p>``, ``f:<p>``: partition p's) forward."""
        key = self.keys.of("clock", int(name[2:]))
        old = await self.r.hget(key, name)
        if old is None or int(old) < value_ms:
            await self.r.hset(key, name, value_ms)

    async def put_snapshots(self, partition: int, anchor_ms: int,
                            rows: Sequence[tuple[str, Sequence[float]]]) -> None:
        width = len(rows[0][1]) if rows else len(FEATURE_NAMES)  # REASON_NAMES order
        row = struct.Struct(f"<{width}d")
        sums = [0.0] * width
        mapping = {}
        for uid, feats in rows:
            mapping[uid] = row.pack(*feats)
            sums = [s + f for s, f in zip(sums, feats, strict=True)]
        cmds = [pack(b"HSET", self.keys.pending(partition, anchor_ms),
                     *[x for kv in mapping.items() for x in kv])] if mapping else []
        cmds.append(pack(b"HSET", self.keys.of("population", partition), partition,
                         POP_HEAD.pack(anchor_ms, len(rows)) + row.pack(*sums)))
        await self.hot.transactions([(self.keys.offsets_of(partition), cmds, (partition,))])

    async def snapshots(self, partition: int, anchor_ms: int) -> list[tuple[str, list[float]]]:
        raw = await self.r.hgetall(self.keys.pending(partition, anchor_ms))
        return sorted((u.decode(), list(struct.unpack(f"<{len(v) // 8}d", v)))
                      for u, v in raw.items())

    async def finish_anchor(self, partition: int, anchor_ms: int, released_anchor_ms: int,
                            counters: dict[str, int]) -> None:
        keys, p = self.keys, partition
        cmds = [pack(b"DEL", keys.pending(p, released_anchor_ms)),
                pack(b"HSET", keys.of("clock", p), f"a:{p}", anchor_ms)]
        cmds += [pack(b"HINCRBY", keys.of("stats", p), name, inc)
                 for name, inc in counters.items()]
        await self.hot.transactions([(keys.offsets_of(p), cmds, (p,))])

    async def population(self) -> tuple[int, dict[str, float]]:
        return decode_population(await self.merged("population"))
