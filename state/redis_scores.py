"""Redis backend, scores and tiers: score writes with the Top-K and active indexes
(``state/lua/write_scores.lua``, one MULTI/EXEC per batch on the hot-path connection),
stored tiers and their counts, retirement of long-churned users, ranking reads and the
API's one-round-trip user view (on the multiplexed lookup connection)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from core.model import REASON_NAMES
from core.tiers import ALL_TIERS, CHURNED, Crossing, TierRecord
from state.clients.resp import ReplyError, pack
from state.codec import (
    decode_history,
    decode_score,
    decode_state,
    decode_tier,
    encode_crossing,
    encode_score,
    encode_tier,
    purchase_days_of,
    retired_key,
)
from state.redis_base import RedisBase
from state.redis_labels import decode_population
from state.store import FEED, HISTORY, Placed, ScoreWrite, TierChange, UserView

# append one entry to the user's tier history (field th), keeping the newest ARGV[2] bytes
_HISTORY_LUA = (b"local h = (redis.call('HGET', KEYS[1], 'th') or '') .. ARGV[1] "
                b"local keep = tonumber(ARGV[2]) "
                b"if #h > keep then h = string.sub(h, #h - keep + 1) end "
                b"redis.call('HSET', KEYS[1], 'th', h)")


class ScoreOps(RedisBase):
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
            if c.crossing is not None:
                cmds += self._crossing(k, c.crossing)
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

    def _crossing(self, user_key: bytes, c: Crossing) -> list[bytes]:
        """The user's tier history (the newest HISTORY entries; EVAL, not EVALSHA: inside
        MULTI a flushed script cache must not fail one command of the transaction) and
        the alerts feed (a stream of the newest FEED)."""
        entry = encode_crossing(c)
        return [pack(b"EVAL", _HISTORY_LUA, b"1", user_key, entry,
                     b"%d" % (HISTORY * len(entry))),
                pack(b"XADD", self.keys.alerts, b"MAXLEN", b"%d" % FEED, b"*",
                     b"u", c.user_id, b"f", ALL_TIERS[c.frm], b"t", ALL_TIERS[c.to],
                     b"r", repr(c.risk), b"a", b"%d" % c.at_ms)]

    async def alerts_feed(self, count: int, to: str | None = None) -> list[Crossing]:
        out: list[Crossing] = []
        last = b"+"
        while len(out) < count:
            page = await self.r.xrevrange(self.keys.alerts, last, b"-", count=500)
            for entry_id, f in page:
                if entry_id == last:
                    continue
                if to is None or f[b"t"].decode() == to:
                    out.append(Crossing(f[b"u"].decode(), ALL_TIERS.index(f[b"f"].decode()),
                                        ALL_TIERS.index(f[b"t"].decode()), float(f[b"r"]),
                                        int(f[b"a"])))
            if len(page) < 500:
                break
            last = page[-1][0]
        return out[:count]

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
            means = decode_population(dict(zip(pop[0][::2], pop[0][1::2], strict=True)))[1]
            self._view_means = (means, time.monotonic())
        if not h:
            return None
        fields = dict(zip(h[::2], h[1::2], strict=True))
        state = decode_state(fields)
        if state is None:
            return None
        s, t, th = fields.get(b"s"), fields.get(b"t"), fields.get(b"th")
        return UserView(state, decode_score(s) if s is not None else None,
                        decode_tier(t) if t is not None else None, rank, ranked, means or {},
                        decode_history(user_id, th) if th else ())

    async def top(self, offset: int, count: int) -> list[tuple[str, float]]:
        """Ranked users ``offset .. offset + count - 1`` (riskiest first; ties: larger id first)."""
        if count <= 0:
            return []
        rows = await self.r.zrevrange(self.keys.rank, offset, offset + count - 1,
                                      withscores=True)
        return [(uid.decode(), float(risk)) for uid, risk in rows]

    async def rank_of(self, user_id: str) -> tuple[int, int] | None:
        """(0-based rank, ranked users) of one user; None if not ranked."""
        pipe = self.r.pipeline(transaction=False)
        pipe.zrevrank(self.keys.rank, user_id)
        pipe.zcard(self.keys.rank)
        rank, n = await pipe.execute()
        return None if rank is None else (int(rank), int(n))

    async def top_reasons(self, user_ids: Sequence[str]) -> list[str]:
        """The first reason's feature of each user's stored score ('' if none)."""
        pipe = self.r.pipeline(transaction=False)
        for u in user_ids:
            pipe.hget(self.keys.user(u), "s")
        out = []
        for raw in await pipe.execute():
            why = decode_score(raw).reasons if raw is not None else ()
            out.append(REASON_NAMES[why[0][0]] if why else "")
        return out

    async def count_at_least(self, risk: float) -> int:
        """Ranked users with risk >= ``risk``."""
        return int(await self.r.zcount(self.keys.rank, risk, "+inf"))

    async def count_ranked(self) -> int:
        return int(await self.r.zcard(self.keys.rank))
