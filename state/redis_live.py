"""Redis side of scores, tiers, the rank/active indexes, label snapshots and clocks.

Mixed into :class:`state.redis_store.RedisFeatureStore` (which owns the connection,
the key layout and the scripts). Score writes run in one MULTI/EXEC per batch on
the hot-path connection; sweeps and anchors use the redis-py client.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator, Sequence
from typing import Any

from redis.exceptions import NoScriptError

from core.features import FEATURE_NAMES, Aggregates
from core.tiers import ALL_TIERS, CHURNED, TierRecord
from state.clients.mux import MuxConnection
from state.clients.resp import ReplyError, RespConnection, pack
from state.codec import (
    decode_aggregates,
    decode_score,
    decode_state,
    decode_tier,
    encode_score,
    encode_tier,
    purchase_days_of,
    retired_key,
)
from state.keys import Keys
from state.store import Placed, ScoreWrite, TierChange, UserView, population_means

POP_HEAD = struct.Struct("<qI")  # anchor, users; then the column sums (doubles)


class RedisLiveOps:
    r: Any
    hot: RespConnection
    mux: MuxConnection
    # user_view: the user-independent commands packed once; population means, read at
    _view_cmds: tuple[bytes, bytes, bytes]
    _view_means: tuple[dict[str, float] | None, float]
    keys: Keys

    async def _sha(self, name: str) -> str:
        raise NotImplementedError

    async def load_scripts(self) -> None:
        raise NotImplementedError

    async def write_scores(self, writes: Sequence[ScoreWrite]) -> list[Placed]:
        if not writes:
            return []
        try:
            replies = await self._write_scores(writes)
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            await self.load_scripts()  # the server restarted or flushed its script cache
            replies = await self._write_scores(writes)
        out = []
        for written, rank, ranked, t in replies:
            out.append(Placed(bool(written), int(rank), int(ranked),
                              decode_tier(t) if t is not None else None))
        return out

    async def _write_scores(self, writes: Sequence[ScoreWrite]) -> list[Any]:
        keys = self.keys
        user, active, enc = keys.user, keys.active, encode_score
        args: list[bytes] = [b"EVALSHA", (await self._sha("write_scores")).encode(),
                             b"%d" % (1 + 2 * len(writes)), keys.rank.encode()]
        for w in writes:
            args += (user(w.user_id).encode(), active(w.partition).encode())
        for w in writes:
            args += (enc(w.score), repr(w.score.risk).encode(), w.user_id.encode(),
                     b"%d" % w.last_ms, b"1" if w.churned else b"0" if w.reindex else b"2")
        cmd = b"".join([b"*%d\r\n" % len(args),
                        *[b"$%d\r\n%b\r\n" % (len(a), a) for a in args]])  # pack(), all bytes
        flat = (await self.hot.transaction([cmd]))[0]
        return [flat[i:i + 4] for i in range(0, len(flat), 4)]

    async def write_tiers(self, changes: Sequence[TierChange], counters: dict[str, int]) -> None:
        keys = self.keys
        cmds = []
        counts: dict[str, int] = {}
        hset = b"*4\r\n$4\r\nHSET\r\n"
        for c in changes:
            uid = c.user_id
            k = keys.user(uid).encode()
            t = encode_tier(c.record)
            cmds.append(b"%b$%d\r\n%b\r\n$1\r\nt\r\n$%d\r\n%b\r\n"
                        % (hset, len(k), k, len(t), t))
            to = ALL_TIERS[c.record.tier]
            if c.old is not None:
                frm = ALL_TIERS[c.old]
                counts[frm] = counts.get(frm, 0) - 1
                if frm == CHURNED:
                    cmds.append(pack(b"ZREM", keys.gone(c.partition), uid))
            counts[to] = counts.get(to, 0) + 1
            if to == CHURNED:
                cmds.append(pack(b"ZREM", keys.rank, uid))
                cmds.append(pack(b"ZREM", keys.active(c.partition), uid))
                cmds.append(pack(b"ZADD", keys.gone(c.partition), c.last_ms, uid))
        for tier, inc in counts.items():
            if inc:
                cmds.append(pack(b"HINCRBY", keys.tiers, tier, inc))
        for name, inc in counters.items():
            cmds.append(pack(b"HINCRBY", keys.stats, name, inc))
        if cmds:
            await self.hot.transaction(cmds)

    async def aggregates_at(self, user_ids: Sequence[str], now_ms: int) -> list[Aggregates | None]:
        if not user_ids:
            return []
        keys = [self.keys.user(u) for u in user_ids]
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

    async def last_events(self, user_ids: Sequence[str]) -> list[int | None]:
        pipe = self.r.pipeline(transaction=False)
        for u in user_ids:
            pipe.hget(self.keys.user(u), "m")
        out: list[int | None] = []
        for m in await pipe.execute():
            out.append(int(struct.unpack_from("<d", m, 8)[0]) if m is not None else None)
        return out

    async def clock(self) -> dict[str, int]:
        raw = await self.r.hgetall(self.keys.clock)
        return {k.decode(): int(v) for k, v in raw.items()}

    async def set_clock(self, name: str, value_ms: int) -> None:
        old = await self.r.hget(self.keys.clock, name)
        if old is None or int(old) < value_ms:
            await self.r.hset(self.keys.clock, name, value_ms)

    async def put_snapshots(self, partition: int, anchor_ms: int,
                            rows: Sequence[tuple[str, Sequence[float]]]) -> None:
        width = len(rows[0][1]) if rows else len(FEATURE_NAMES)  # REASON_NAMES order
        row = struct.Struct(f"<{width}d")
        sums = [0.0] * width
        mapping = {}
        for uid, feats in rows:
            mapping[uid] = row.pack(*feats)
            sums = [s + f for s, f in zip(sums, feats, strict=True)]
        pipe = self.r.pipeline(transaction=True)
        if mapping:
            pipe.hset(self.keys.pending(partition, anchor_ms), mapping=mapping)
        pipe.hset(self.keys.population, str(partition),
                  POP_HEAD.pack(anchor_ms, len(rows)) + row.pack(*sums))
        await pipe.execute()

    async def snapshots(self, partition: int, anchor_ms: int) -> list[tuple[str, list[float]]]:
        raw = await self.r.hgetall(self.keys.pending(partition, anchor_ms))
        return sorted((u.decode(), list(struct.unpack(f"<{len(v) // 8}d", v)))
                      for u, v in raw.items())

    async def finish_anchor(self, partition: int, anchor_ms: int, released_anchor_ms: int,
                            counters: dict[str, int]) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(self.keys.pending(partition, released_anchor_ms))
        pipe.hset(self.keys.clock, f"a:{partition}", anchor_ms)
        for name, inc in counters.items():
            pipe.hincrby(self.keys.stats, name, inc)
        await pipe.execute()

    async def population(self) -> tuple[int, dict[str, float]]:
        return self._population(await self.r.hgetall(self.keys.population))

    async def user_view(self, user_id: str) -> UserView | None:
        keys, fixed = self.keys, self._view_cmds
        # population means change at anchors only: re-read them at most once a second
        means, read_at = self._view_means
        stale = means is None or time.monotonic() - read_at > 1.0
        key, uid = keys.user(user_id).encode(), user_id.encode()
        h, rank, ranked, *pop = await self.mux.execute([
            b"*2\r\n$7\r\nHGETALL\r\n$%d\r\n%b\r\n" % (len(key), key),
            fixed[0] + b"$%d\r\n%b\r\n" % (len(uid), uid),
            fixed[1] + fixed[2] if stale else fixed[1]], replies=4 if stale else 3)
        if pop:
            means = self._population(dict(zip(pop[0][::2], pop[0][1::2], strict=True)))[1]
            self._view_means = (means, time.monotonic())
        if not h:
            return None
        fields = dict(zip(h[::2], h[1::2], strict=True))
        state = decode_state(fields)
        if state is None:
            return None
        s, t = fields.get(b"s"), fields.get(b"t")
        return UserView(state, decode_score(s) if s is not None else None,
                        decode_tier(t) if t is not None else None, rank, ranked, means or {})

    @staticmethod
    def _population(parts: dict[bytes, bytes]) -> tuple[int, dict[str, float]]:
        def rows() -> Iterator[tuple[int, tuple[float, ...]]]:
            for raw in parts.values():
                _, users = POP_HEAD.unpack_from(raw)
                k = (len(raw) - POP_HEAD.size) // 8
                yield users, struct.unpack_from(f"<{k}d", raw, POP_HEAD.size)

        return population_means(rows())

    async def tier_of(self, user_id: str) -> TierRecord | None:
        raw = await self.r.hget(self.keys.user(user_id), "t")
        return decode_tier(raw) if raw is not None else None

    async def tier_counts(self) -> dict[str, int]:
        raw = await self.r.hgetall(self.keys.tiers)
        return {k.decode(): int(v) for k, v in raw.items() if int(v)}

    async def retire(self, partition: int, silent_before_ms: int) -> int:
        gone = self.keys.gone(partition)
        users = await self.r.zrangebyscore(gone, "-inf", f"({silent_before_ms}")
        if not users:
            return 0
        keys = [self.keys.user(u.decode()) for u in users]
        read = self.r.pipeline(transaction=False)  # the sweeper holds the processor's lock
        for k in keys:
            read.hget(k, "v")
        archive: dict[str, int] = {}
        for v in await read.execute():
            field = retired_key(purchase_days_of(v)) if v is not None else None
            if field is not None:
                archive[field] = archive.get(field, 0) + 1
        pipe = self.r.pipeline(transaction=True)  # archived and deleted together
        for field, n in archive.items():
            pipe.hincrby(self.keys.retired, field, n)
        pipe.delete(*keys)
        pipe.zrem(gone, *users)
        pipe.hincrby(self.keys.tiers, CHURNED, -len(users))
        pipe.hincrby(self.keys.stats, "users_retired", len(users))
        await pipe.execute()
        return len(users)

    async def retired_customers(self) -> dict[str, int]:
        raw = await self.r.hgetall(self.keys.retired)
        return {k.decode(): int(v) for k, v in raw.items()}
