"""Redis backend of the feature store: one Lua script per event, one MULTI/EXEC per batch."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError

from core.events import fingerprint
from core.features import DAY_MS, HORIZON_DAYS, UserState
from state.codec import Score, decode_score, decode_state, encode_score, pairs_to_dict
from state.keys import Keys
from state.store import Applied, Commit, Item

_TYPE_CODES = {"cart": b"1", "purchase": b"2"}
RECOMMENDED_LISTPACK_VALUE = 4096


def _script(name: str) -> str:
    return resources.files("state").joinpath("lua", name).read_text()


APPLY_LUA = _script("apply_event.lua")
COMMIT_LUA = _script("commit_batch.lua")


def connect(url: str) -> aioredis.Redis:
    """Async client; RESP2 so that replies look the same on Redis 6 and 7."""
    return aioredis.Redis.from_url(url, protocol=2, decode_responses=False)


class RedisFeatureStore:
    """Feature store over one Redis (or a Redis-protocol server such as Valkey)."""

    def __init__(self, client: Any, prefix: str = "churn",
                 horizon_days: int = HORIZON_DAYS) -> None:
        self.r = client
        self.keys = Keys(prefix)
        self.horizon = str(horizon_days).encode()
        self._apply_sha: str | None = None
        self._commit_sha: str | None = None

    async def load_scripts(self) -> None:
        self._apply_sha = await self.r.script_load(APPLY_LUA)
        self._commit_sha = await self.r.script_load(COMMIT_LUA)

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

    async def apply(self, items: Sequence[Item], commits: Sequence[Commit] = (),
                    scores: Sequence[tuple[str, Score]] = ()) -> list[Applied]:
        if self._apply_sha is None:
            await self.load_scripts()
        try:
            replies = await self._run(items, commits, scores)
        except NoScriptError:
            await self.load_scripts()  # server restarted or script cache flushed
            replies = await self._run(items, commits, scores)
        out = []
        for rep in replies[:len(items)]:
            if len(rep) > 1:
                out.append(Applied(int(rep[0]), decode_state(pairs_to_dict(rep[1:]))))
            else:
                out.append(Applied(int(rep[0]), None))
        return out

    async def _run(self, items: Sequence[Item], commits: Sequence[Commit],
                   scores: Sequence[tuple[str, Score]]) -> list:
        keys = self.keys
        pipe = self.r.pipeline(transaction=True)
        cmd = pipe.execute_command
        sha, horizon, stats = self._apply_sha, self.horizon, keys.stats
        for ev, part, off, want in items:
            price = ev.price
            cmd("EVALSHA", sha, 2, keys.user(ev.user_id), stats, fingerprint(ev.event_id),
                ev.time_ms, ev.time_ms // DAY_MS, _TYPE_CODES.get(ev.event_type, b"0"),
                b"" if price is None else repr(price), ev.brand or b"", part, off, horizon,
                b"1" if want else b"0", ev.event_type)
        for c in commits:
            args: list[object] = [c.partition, c.last_offset, c.watermark_ms]
            for name, inc in c.counters.items():
                args += [name, inc]
            cmd("EVALSHA", self._commit_sha, 3, keys.offsets, keys.stats, keys.watermark, *args)
        for uid, score in scores:
            cmd("HSET", keys.user(uid), "s", encode_score(score))
        replies = await pipe.execute(raise_on_error=True)
        return list(replies)

    async def user(self, user_id: str) -> tuple[UserState | None, Score | None]:
        h = await self.r.hgetall(self.keys.user(user_id))
        if not h:
            return None, None
        raw = h.get(b"s")
        return decode_state(h), (decode_score(raw) if raw is not None else None)

    async def stats(self) -> dict[str, int]:
        raw = await self.r.hgetall(self.keys.stats)
        return {k.decode(): int(v) for k, v in raw.items()}

    async def watermarks(self) -> dict[int, int]:
        raw = await self.r.hgetall(self.keys.watermark)
        return {int(k): int(v) for k, v in raw.items()}

    async def count_users(self) -> int:
        n = 0
        async for _ in self.r.scan_iter(match=self.keys.user_scan_pattern(), count=1000):
            n += 1
        return n
