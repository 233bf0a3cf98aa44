"""Redis backend of the feature store: one Lua script per event, one MULTI/EXEC per batch."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from core.events import fingerprint
from core.features import HORIZON_DAYS, UserState
from core.model import REASON_NAMES
from state.clients.mux import MuxConnection
from state.clients.resp import ReplyError, RespConnection, pack
from state.codec import Score, decode_aggregates, decode_score, decode_state
from state.keys import Keys
from state.redis_live import RedisLiveOps
from state.scripts import SCRIPTS
from state.store import Applied, Commit, Item

_TYPE_CODES = {"cart": 1, "purchase": 2}
_ARGS = struct.Struct("<8sdddBBd")  # see state/lua/apply_event.lua
RECOMMENDED_LISTPACK_VALUE = 4096
# the scripts of the feature store (the value scripts are value_rows/value_store's)
FEATURE_SCRIPTS = ("apply_event", "commit_batch", "aggregates_at", "write_scores")


def _url_of(kw: dict[str, Any]) -> str:
    """redis:// URL of a redis-py pool's connection settings (for the hot-path connection)."""
    auth = ""
    if kw.get("password"):
        user = quote(kw.get("username") or "", safe="")
        auth = f"{user}:{quote(kw['password'], safe='')}@"
    return f"redis://{auth}{kw.get('host', '127.0.0.1')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


def connect(url: str, **options: Any) -> aioredis.Redis:
    """Async client; RESP2 so that replies look the same on Redis 6 and 7. ``options``
    go to redis-py (e.g. ``socket_timeout``)."""
    return aioredis.Redis.from_url(url, protocol=2, decode_responses=False, **options)


class RedisFeatureStore(RedisLiveOps):
    """Feature store over one Redis (or a Redis-protocol server such as Valkey)."""

    def __init__(self, client: Any, prefix: str = "churn",
                 horizon_days: int = HORIZON_DAYS) -> None:
        self.r = client
        pool = client.connection_pool
        kw = pool.connection_kwargs
        if "path" in kw or "SSL" in pool.connection_class.__name__:
            raise ValueError("the worker's hot path speaks plain TCP to Redis: use a redis:// "
                             "URL (no rediss:// or unix socket yet)")
        self.hot = RespConnection(_url_of(kw))
        self.mux = MuxConnection(_url_of(kw))  # the API's concurrent lookups
        self.keys = keys = Keys(prefix)
        self._view_cmds = (b"*3\r\n$8\r\nZREVRANK\r\n" + pack(keys.rank)[4:],
                           pack(b"ZCARD", keys.rank), pack(b"HGETALL", keys.population))
        self._view_means = (None, 0.0)
        self.horizon = str(horizon_days).encode()
        self._shas: dict[str, str] = {}

    async def close(self) -> None:
        """Close the hot-path and lookup connections (the redis-py client is the caller's)."""
        await self.hot.close()
        await self.mux.close()

    async def load_scripts(self) -> None:
        for name in FEATURE_SCRIPTS:
            sha = await self.r.script_load(SCRIPTS[name])
            self._shas[name] = sha.decode() if isinstance(sha, bytes) else sha

    async def _sha(self, name: str) -> str:
        if name not in self._shas:
            await self.load_scripts()
        return self._shas[name]

    async def check_config(self) -> list[str]:
        """Warnings about server settings that cost memory (not errors)."""
        warnings: list[str] = []
        try:
            cfg = await self.r.config_get("hash-max-*-value")
        except ResponseError:
            return warnings
        for name, value in dict(cfg).items():
            if int(value) < RECOMMENDED_LISTPACK_VALUE:
                nm = name.decode() if isinstance(name, bytes) else name
                warnings.append(f"{nm}={int(value)}: user hashes with dedupe records above that "
                                f"size lose the compact encoding; recommended "
                                f">= {RECOMMENDED_LISTPACK_VALUE}")
        return warnings

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
        # EVALSHA sha 2 <stats> <user> <horizon> <packed args> <brand> <type>, with the
        # constant parts packed once per batch (the same bytes pack() would give)
        fmt = b"*9\r\n" + pack(b"EVALSHA", apply_sha, b"2", keys.stats)[4:] \
            + b"$%d\r\n%b\r\n" + pack(self.horizon)[4:] \
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
                                   "-" if c.unconfirmed is None else c.unconfirmed]
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

    async def unconfirmed(self) -> dict[int, str]:
        raw = await self.r.hgetall(self.keys.unconfirmed)
        return {int(k): v.decode() for k, v in raw.items()}

    async def watermarks(self) -> dict[int, int]:
        raw = await self.r.hgetall(self.keys.watermark)
        return {int(k): int(v) for k, v in raw.items()}

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

    async def count_users(self) -> int:
        n = 0
        async for _ in self.r.scan_iter(match=self.keys.user_scan_pattern(), count=1000):
            n += 1
        return n
