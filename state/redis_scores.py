"""Redis backend, scores and tiers: score writes with the Top-K and active indexes
(``state/lua/write_scores.lua``, one MULTI/EXEC per batch on the hot-path connection),
stored tiers and their counts, retirement of long-churned users, ranking reads and the
API's one-round-trip user view (on the multiplexed lookup connection)."""

from __future__ import annotations

import asyncio
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
        sha = (await self._sha("write_scores")).encode()
        groups: dict[int, list[int]] = {}  # one slot per partition on a cluster
        for i, w in enumerate(writes):
            groups.setdefault(w.partition if keys.cluster else 0, []).append(i)
        cmds = []
        for idx in groups.values():
            part = [writes[i] for i in idx]
            args = [b"EVALSHA", sha, b"%d" % (2 * len(part) + (not keys.cluster))]
            if not keys.cluster:
                args.append(keys.rank.encode())
            for w in part:
                args += (keys.user(w.user_id, w.partition).encode(),
                         keys.active(w.partition).encode())
            for w in part:
                args += (encode_score(w.score), repr(w.score.risk).encode(),
                         w.user_id.encode(), b"%d" % w.last_ms,
                         b"1" if w.churned else b"0" if w.reindex else b"2")
            cmds.append(b"".join([b"*%d\r\n" % len(args),
                                  *[b"$%d\r\n%b\r\n" % (len(a), a) for a in args]]))  # pack()
        results = await self.hot.transactions(
            [(keys.offsets_of(writes[idx[0]].partition), [c],
              sorted({writes[i].partition for i in idx}))
             for idx, c in zip(groups.values(), cmds, strict=True)])
        out: list[Any] = [None] * len(writes)
        for idx, (flat,) in zip(groups.values(), results, strict=True):
            for j, i in enumerate(idx):
                out[i] = flat[4 * j:4 * j + 4]
        if keys.cluster:
            await self._rank_scores(writes, out)
        return out

    async def _rank_scores(self, writes: Sequence[ScoreWrite], out: list[Any]) -> None:
        """Cluster placement: the ranking's half of the writes (state/lua/rank_scores.lua),
        in the global slot, for the scores that were stored."""
        written = [i for i, rep in enumerate(out) if rep[0]]
        if not written:
            return
        args: list[object] = []
        for i in written:
            w = writes[i]
            args += (w.user_id, repr(w.score.risk), b"1" if w.churned else b"0")
        (flat,) = await self.hot.execute_at(self.keys.rank, [
            pack(b"EVALSHA", await self._sha("rank_scores"), b"1", self.keys.rank, *args)])
        if isinstance(flat, ReplyError):
            raise flat
        for j, i in enumerate(written):
            out[i] = [out[i][0], flat[2 * j], flat[2 * j + 1], out[i][3]]

    async def write_tiers(self, changes: Sequence[TierChange], counters: dict[str, int]) -> None:
        keys = self.keys
        glob: list[bytes] = []  # the global slot's commands (ranking, alerts feed, counters)
        parts: dict[int, list[bytes]] = {}
        counts: dict[tuple[int, str], int] = {}
        hset = b"*4\r\n$4\r\nHSET\r\n"
        for c in changes:
            uid, p = c.user_id, c.partition
            cmds = parts.setdefault(p if keys.cluster else 0, [])
            k = keys.user(uid, p).encode()
            if c.crossing is not None:
                history, feed = self._crossing(k, c.crossing)
                cmds.append(history)
                glob.append(feed)
            t = encode_tier(c.record)
            cmds.append(b"%b$%d\r\n%b\r\n$1\r\nt\r\n$%d\r\n%b\r\n"
                        % (hset, len(k), k, len(t), t))
            to = ALL_TIERS[c.record.tier]
            if c.old is not None:
                frm = ALL_TIERS[c.old]
                counts[p, frm] = counts.get((p, frm), 0) - 1
                if frm == CHURNED:
                    cmds.append(pack(b"ZREM", keys.gone(p), uid))
            counts[p, to] = counts.get((p, to), 0) + 1
            if to == CHURNED:
                glob.append(pack(b"ZREM", keys.rank, uid))
                cmds.append(pack(b"ZREM", keys.active(p), uid))
                cmds.append(pack(b"ZADD", keys.gone(p), c.last_ms, uid))
        for (p, tier), inc in counts.items():
            if inc:
                parts[p if keys.cluster else 0].append(
                    pack(b"HINCRBY", keys.of("tiers", p), tier, inc))
        if counters and parts:  # with a partition's writes (the stats shards are summed)
            first = min(parts)
            parts[first] += [pack(b"HINCRBY", keys.of("stats", first if keys.cluster else 0),
                                  name, inc) for name, inc in counters.items()]
        elif counters:
            glob += [pack(b"HINCRBY", keys.stats, name, inc) for name, inc in counters.items()]
        written = sorted({c.partition for c in changes})
        groups: list[tuple[str, list[bytes], Sequence[int]]] = [
            (keys.offsets_of(p), cmds, (p,) if keys.cluster else written)
            for p, cmds in parts.items() if cmds]
        if glob:
            groups.append((keys.rank, glob, ()))
        if groups:
            await self.hot.transactions(groups)

    def _crossing(self, user_key: bytes, c: Crossing) -> tuple[bytes, bytes]:
        """The user's tier history (the newest HISTORY entries; EVAL, not EVALSHA: inside
        MULTI a flushed script cache must not fail one command of the transaction) and
        the alerts feed (a stream of the newest FEED)."""
        entry = encode_crossing(c)
        return (pack(b"EVAL", _HISTORY_LUA, b"1", user_key, entry,
                     b"%d" % (HISTORY * len(entry))),
                pack(b"XADD", self.keys.alerts, b"MAXLEN", b"%d" % FEED, b"*",
                     b"u", c.user_id, b"f", ALL_TIERS[c.frm], b"t", ALL_TIERS[c.to],
                     b"r", repr(c.risk), b"a", b"%d" % c.at_ms))

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
        return {k: v for k, v in (await self.summed("tiers")).items() if v}

    async def retire(self, partition: int, silent_before_ms: int) -> int:
        gone = self.keys.gone(partition)
        users = await self.r.zrangebyscore(gone, "-inf", f"({silent_before_ms}")
        if not users:
            return 0
        keys = [self.keys.user(u.decode(), partition) for u in users]
        read = self.r.pipeline(transaction=False)  # the sweeper holds the processor's lock
        for k in keys:
            read.hget(k, "v")
        archive: dict[str, int] = {}
        for v in await read.execute():
            field = retired_key(purchase_days_of(v)) if v is not None else None
            if field is not None:
                archive[field] = archive.get(field, 0) + 1
        ks, p = self.keys, partition
        # archived and deleted together (on a cluster the archive is in the global slot)
        await self.hot.transactions([
            (ks.offsets_of(p), [pack(b"DEL", *keys), pack(b"ZREM", gone, *users),
                               pack(b"HINCRBY", ks.of("tiers", p), CHURNED, -len(users)),
                               pack(b"HINCRBY", ks.of("stats", p), "users_retired", len(users))],
             (p,)),
            *([(ks.retired, [pack(b"HINCRBY", ks.retired, f, n) for f, n in archive.items()],
                ())] if archive else [])])
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
        hgetall = b"*2\r\n$7\r\nHGETALL\r\n$%d\r\n%b\r\n" % (len(key), key)
        ranking = fixed[0] + b"$%d\r\n%b\r\n" % (len(uid), uid)
        if keys.cluster:  # the user's slot, the ranking's, the partitions' population
            (h,), (rank, ranked) = await asyncio.gather(
                self.mux.execute_at(key, [hgetall]),
                self.mux.execute_at(keys.rank, [ranking, fixed[1]]))
            pop = [await self.merged("population")] if stale else []
        else:
            h, rank, ranked, *pop = await self.mux.execute([
                hgetall, ranking, fixed[1] + fixed[2] if stale else fixed[1]],
                replies=4 if stale else 3)
            pop = [dict(zip(pop[0][::2], pop[0][1::2], strict=True))] if pop else []
        if pop:
            means = decode_population(pop[0])[1]
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
