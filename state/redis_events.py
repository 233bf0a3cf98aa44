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
        for rep in replies:
            if len(rep) > 1:
                out.append(Applied(rep[0], decode_aggregates(rep[1])))
            else:
                out.append(Applied(rep[0], None))
        return out

    def _apply_format(self, partition: int) -> bytes:
        """EVALSHA sha 3 <stats> <user> <months> <horizon> <packed args> <brand> <type>,
        with the partition's constant parts packed once (the bytes pack() would give)."""
        keys = self.keys
        return b"*10\r\n" + pack(b"EVALSHA", self._shas["apply_event"], b"3",
                                 keys.of("stats", partition))[4:] \
            + b"$%d\r\n%b\r\n" + pack(keys.of("months", partition), self.horizon)[4:] \
            + b"$%d\r\n" % _ARGS.size + b"%b\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n"

    async def _run(self, items: Sequence[Item], commits: Sequence[Commit]
                   ) -> tuple[list[Any], bool]:
        """One group of commands per partition (its events, then its commit: one slot on a
        cluster), all groups one transaction on a single Redis (state/clients/cluster.py)."""
        keys = self.keys
        commit_sha = self._shas["commit_batch"]
        user, packer, nan, codes = keys.user, _ARGS.pack, math.nan, _TYPE_CODES
        groups: dict[int, tuple[bytes, list[bytes], list[int]]] = {}  # by slot
        single = not keys.cluster  # one group: the records in their order, then the commits
        fmts: dict[int, bytes] = {}
        for i, (ev, part, off, want) in enumerate(items):
            fmt = fmts.get(part) or fmts.setdefault(part, self._apply_format(part))
            group = groups.get(0 if single else part)
            if group is None:
                group = groups[0 if single else part] = (b"", [], [])
            _, cmds, index = group
            price = ev.price
            k = user(ev.user_id, part).encode()
            brand = ev.brand.encode() if ev.brand else b""
            tname = ev.event_type.encode()
            args = packer(fingerprint(ev.event_id), ev.time_ms, part, off,
                          codes.get(ev.event_type, 0), want, nan if price is None else price)
            cmds.append(fmt % (len(k), k, args, len(brand), brand, len(tname), tname))
            index.append(i)
        for c in commits:
            p = c.partition
            cmds = groups.setdefault(0 if single else p, (b"", [], []))[1]
            cargs: list[object] = [p, c.last_offset, c.watermark_ms,
                                   "-" if c.unconfirmed is None else c.unconfirmed, c.expected]
            for name, inc in c.counters.items():
                cargs += [name, inc]
            cmds.append(pack(b"EVALSHA", commit_sha, b"4", keys.offsets_of(p),
                             keys.of("stats", p), keys.of("watermark", p),
                             keys.of("unconfirmed", p), *cargs))
        order = list(groups)
        parts = {p for _, p, _, _ in items} | {c.partition for c in commits}
        results = await self.hot.transactions([
            (keys.offsets_of(g), groups[g][1], sorted(parts) if single else (g,))
            for g in order])
        replies: list[Any] = [None] * len(items)
        stale = False
        for p, res in zip(order, results, strict=True):
            index = groups[p][2]
            for i, rep in zip(index, res, strict=False):
                replies[i] = rep
            stale = stale or any(r == -1 for r in res[len(index):])
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
