"""Redis backend, per-user state and partition progress: one Lua script per event and
the batch's commit (counters, watermark, applied offset) in one MULTI/EXEC on the
hot-path connection (``state/lua/apply_event.lua``, ``commit_batch.lua``)."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

from core.events import fingerprint
from core.features import UserState
from state.clients.resp import ReplyError, pack
from state.codec import Score, decode_aggregates, decode_score, decode_state
from state.redis_base import RedisBase
from state.store import Applied, Commit, Item, StaleBatch

_TYPE_CODES = {"cart": 1, "purchase": 2}
_ARGS = struct.Struct("<8sdddBBd")  # see state/lua/apply_event.lua


class EventOps(RedisBase):
    async def applied_offsets(self) -> dict[int, int]:
        raw = await self.merged("offsets")
        return {int(k): int(v) for k, v in raw.items()}

    async def apply(self, items: Sequence[Item], commits: Sequence[Commit] = ()) -> list[Applied]:
        if not self._shas:
            await self.load_scripts()
        try:
            replies, stale = await self._run(items, commits)
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            await self.load_scripts()  # server restarted or script cache flushed
            replies, stale = await self._run(items, commits)
        if stale:
            raise StaleBatch("another worker committed a partition of this batch meanwhile")
        out = []
        for status, agg in replies:
            out.append(Applied(status, decode_aggregates(agg) if agg else None))
        return out

    async def _run(self, items: Sequence[Item], commits: Sequence[Commit]
                   ) -> tuple[list[Any], bool]:
        """One group per partition: one apply_event.lua call for all its events, then
        its commit (one slot on a cluster); on a single Redis one group for the batch,
        one transaction (state/clients/cluster.py)."""
        keys = self.keys
        apply_sha, commit_sha = self._shas["apply_event"].encode(), self._shas["commit_batch"]
        user, packer, nan, codes = keys.user, _ARGS.pack, math.nan, _TYPE_CODES
        single = not keys.cluster  # one group: the records in their order, then the commits
        # per group: user keys, per-event arguments (RESP bulk strings), item indexes
        groups: dict[int, tuple[list[bytes], list[bytes], list[int]]] = {}
        for i, (ev, part, off, want) in enumerate(items):
            g = 0 if single else part
            group = groups.get(g)
            if group is None:
                group = groups[g] = ([], [], [])
            ukeys, args, index = group
            price = ev.price
            k = user(ev.user_id, part).encode()
            ukeys.append(b"$%d\r\n%b\r\n" % (len(k), k))
            brand = ev.brand.encode() if ev.brand else b""
            tname = ev.event_type.encode()
            args.append(b"$%d\r\n%b\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n" % (
                _ARGS.size, packer(fingerprint(ev.event_id), ev.time_ms, part, off,
                                   codes.get(ev.event_type, 0), want,
                                   nan if price is None else price),
                len(brand), brand, len(tname), tname))
            index.append(i)
        cmds: dict[int, list[bytes]] = {}
        for g, (ukeys, args, _) in groups.items():
            head = pack(b"EVALSHA", apply_sha, b"%d" % (2 + len(ukeys)), keys.of("stats", g),
                        keys.of("months", g))
            cmds[g] = [b"*%d\r\n" % (6 + 4 * len(ukeys)) + head[4:] + b"".join(ukeys)
                       + pack(self.horizon)[4:] + b"".join(args)]
        for c in commits:
            p = c.partition
            cargs: list[object] = [p, c.last_offset, c.watermark_ms,
                                   "-" if c.unconfirmed is None else c.unconfirmed, c.expected]
            for name, inc in c.counters.items():
                cargs += [name, inc]
            cmds.setdefault(0 if single else p, []).append(pack(
                b"EVALSHA", commit_sha, b"4", keys.offsets_of(p), keys.of("stats", p),
                keys.of("watermark", p), keys.of("unconfirmed", p), *cargs))
        order = list(cmds)
        parts = {p for _, p, _, _ in items} | {c.partition for c in commits}
        results = await self.hot.transactions([
            (keys.offsets_of(g), cmds[g], sorted(parts) if single else (g,)) for g in order])
        replies: list[Any] = [None] * len(items)
        stale = False
        for g, res in zip(order, results, strict=True):
            applied = g in groups
            if applied:  # statuses (a byte each), then the wanted events' aggregates
                statuses, *aggs = res[0]
                wanted = iter(aggs)
                for i, status in zip(groups[g][2], statuses, strict=True):
                    replies[i] = (status, next(wanted) if items[i].want_state else None)
            stale = stale or any(r == -1 for r in res[int(applied):])
        return replies, stale

    async def user(self, user_id: str) -> tuple[UserState | None, Score | None]:
        h = await self.r.hgetall(self.keys.user(user_id))  # (cluster: its default partition)
        if not h:
            return None, None
        raw = h.get(b"s")
        return decode_state(h), (decode_score(raw) if raw is not None else None)

    async def stats(self) -> dict[str, int]:
        return await self.summed("stats")

    async def months(self) -> dict[str, int]:
        """The monthly figures' counters (core/monthly.py), zero ones left out."""
        return {k: v for k, v in (await self.summed("months")).items() if v}

    async def unconfirmed(self) -> dict[int, str]:
        raw = await self.merged("unconfirmed")
        return {int(k): v.decode() for k, v in raw.items()}

    async def watermarks(self) -> dict[int, int]:
        raw = await self.merged("watermark")
        return {int(k): int(v) for k, v in raw.items()}

    async def count_users(self) -> int:
        n = 0
        async for _ in self.r.scan_iter(match=self.keys.user_scan_pattern(), count=1000):
            n += 1
        return n
