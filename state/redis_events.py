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
        raw = await self.r.hgetall(self.keys.offsets)
        return {int(k): int(v) for k, v in raw.items()}

    async def apply(self, items: Sequence[Item], commits: Sequence[Commit] = ()) -> list[Applied]:
        if not self._shas:
            await self.load_scripts()
        try:
            replies = await self._run(items, commits)
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            await self.load_scripts()  # server restarted or script cache flushed
            replies = await self._run(items, commits)
        if any(r == -1 for r in replies[len(items):]):
            raise StaleBatch("another worker committed a partition of this batch meanwhile")
        out = []
        for rep in replies[:len(items)]:
            if len(rep) > 1:
                out.append(Applied(rep[0], decode_aggregates(rep[1])))
            else:
                out.append(Applied(rep[0], None))
        return out

    async def _run(self, items: Sequence[Item], commits: Sequence[Commit]) -> list[Any]:
        keys = self.keys
        apply_sha, commit_sha = self._shas["apply_event"], self._shas["commit_batch"]
        # EVALSHA sha 3 <stats> <user> <months> <horizon> <packed args> <brand> <type>,
        # with the constant parts packed once per batch (the same bytes pack() would give)
        fmt = b"*10\r\n" + pack(b"EVALSHA", apply_sha, b"3", keys.stats)[4:] \
            + b"$%d\r\n%b\r\n" + pack(keys.months, self.horizon)[4:] \
            + b"$%d\r\n" % _ARGS.size + b"%b\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n"
        user, packer, nan, codes = keys.user, _ARGS.pack, math.nan, _TYPE_CODES
        cmds: list[bytes] = []
        add = cmds.append
        for ev, part, off, want in items:
            price = ev.price
            k = user(ev.user_id).encode()
            brand = ev.brand.encode() if ev.brand else b""
            tname = ev.event_type.encode()
            args = packer(fingerprint(ev.event_id), ev.time_ms, part, off,
                          codes.get(ev.event_type, 0), want, nan if price is None else price)
            add(fmt % (len(k), k, args, len(brand), brand, len(tname), tname))
        for c in commits:
            cargs: list[object] = [c.partition, c.last_offset, c.watermark_ms,
                                   "-" if c.unconfirmed is None else c.unconfirmed, c.expected]
            for name, inc in c.counters.items():
                cargs += [name, inc]
            add(pack(b"EVALSHA", commit_sha, b"4", keys.offsets, keys.stats,
                     keys.watermark, keys.unconfirmed, *cargs))
        return await self.hot.transaction(cmds)

    async def user(self, user_id: str) -> tuple[UserState | None, Score | None]:
        h = await self.r.hgetall(self.keys.user(user_id))
        if not h:
            return None, None
        raw = h.get(b"s")
        return decode_state(h), (decode_score(raw) if raw is not None else None)

    async def stats(self) -> dict[str, int]:
        raw = await self.r.hgetall(self.keys.stats)
        return {k.decode(): int(v) for k, v in raw.items()}

    async def months(self) -> dict[str, int]:
        """The monthly figures' counters (core/monthly.py), zero ones left out."""
        raw = await self.r.hgetall(self.keys.months)
        return {k.decode(): int(v) for k, v in raw.items() if int(v)}

    async def unconfirmed(self) -> dict[int, str]:
        raw = await self.r.hgetall(self.keys.unconfirmed)
        return {int(k): v.decode() for k, v in raw.items()}

    async def watermarks(self) -> dict[int, int]:
        raw = await self.r.hgetall(self.keys.watermark)
        return {int(k): int(v) for k, v in raw.items()}

    async def count_users(self) -> int:
        n = 0
        async for _ in self.r.scan_iter(match=self.keys.user_scan_pattern(), count=1000):
            n += 1
        return n
