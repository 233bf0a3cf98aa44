"""The state epoch: a marker written once when churnstream state is created in Redis.

``<prefix>:epoch`` is a hash ``{id, created_ms, reason}``. A worker remembers the id it
works under and guards every hot-path transaction with it (:func:`guard_commands`):
``WATCH`` the epoch, then a script that compares it and, on a mismatch, touches a
watched key, so this client's own ``EXEC`` aborts and nothing of the batch lands. A
Redis that restarted empty, a ``FLUSHALL``, or another worker's rebuild all end
there (:class:`state.clients.resp.StateLost`), never in a batch applied to half a state.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from state.clients.resp import pack
from state.keys import Keys

# on a mismatch, change a watched key (this client's own, so that no other client's EXEC
# aborts with it): this client's EXEC then aborts
GUARD = ("if redis.call('HGET', KEYS[1], 'id') == ARGV[1] then return 1 end "
         "redis.call('INCR', KEYS[2]) redis.call('PEXPIRE', KEYS[2], 60000) return 0")
_CREATE = ("if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HGET', KEYS[1], 'id') "
           "end redis.call('HSET', KEYS[1], 'id', ARGV[1], 'created_ms', ARGV[2], 'reason', "
           "ARGV[3]) return ARGV[1]")


def new_id() -> bytes:
    return os.urandom(8).hex().encode()


def guard_commands(keys: Keys, epoch: bytes, token: bytes) -> list[bytes]:
    """Commands to send before MULTI so that EXEC applies only under ``epoch``; ``token``
    names this client's own touch key."""
    lost = f"{keys.epoch}:lost:{token.decode()}"
    return [pack(b"WATCH", keys.epoch, lost), pack(b"EVAL", GUARD, b"2", keys.epoch, lost, epoch)]


class Epochs:
    """Reads, creates and replaces the epoch; clears what a lost state left behind."""

    def __init__(self, client: Any, keys: Keys) -> None:
        self.r = client
        self.keys = keys

    async def current(self) -> bytes | None:
        raw = await self.r.hget(self.keys.epoch, "id")
        return bytes(raw) if raw is not None else None

    async def info(self) -> dict[str, str]:
        raw = await self.r.hgetall(self.keys.epoch)
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def ensure(self, reason: str = "created") -> bytes:
        """The current epoch, created if there is none (fresh state, or state from before
        epochs existed: adopted as it is)."""
        got = await self.r.eval(_CREATE, 1, self.keys.epoch, new_id(), int(time.time() * 1000),
                                reason)
        return bytes(got)

    async def replace(self, wait: float = 60.0) -> tuple[bytes, bool]:
        """After the epoch was found missing or changed: (the epoch to work under, whether
        this call created it). The first worker to find it missing clears every key of
        the prefix (what the lost state's last writes left, e.g. clocks of a batch that
        ran into the loss) before it publishes a new epoch; the others wait for it."""
        lock = self.keys.epoch + ":lock"
        deadline = time.monotonic() + wait
        while True:
            cur = await self.current()
            if cur is not None:
                return cur, False  # rebuilt by another worker (or not lost): adopt
            if await self.r.set(lock, b"1", nx=True, px=int(wait * 1000)):
                try:
                    if await self.current() is not None:
                        continue
                    await self._clear_all(keep=lock)
                    epoch = new_id()
                    await self.r.hset(self.keys.epoch, mapping={
                        "id": epoch, "created_ms": int(time.time() * 1000),
                        "reason": "rebuilt after state loss"})
                    return epoch, True
                finally:
                    await self.r.delete(lock)
            if time.monotonic() > deadline:
                raise TimeoutError("another worker holds the state rebuild lock")
            await asyncio.sleep(0.2)

    async def _clear_all(self, keep: str) -> int:
        n, batch = 0, []
        async for key in self.r.scan_iter(match=_glob(self.keys.prefix) + ":*", count=1000):
            if key.decode() != keep:
                batch.append(key)
            if len(batch) >= 1000:
                n += await self.r.unlink(*batch)
                batch = []
        if batch:
            n += await self.r.unlink(*batch)
        return n

    async def clear_partition(self, partition: int) -> None:
        """Drop a partition's clocks, indexes and pending snapshots before rebuilding it
        from its first record (its users' hashes are rebuilt record by record)."""
        k, p = self.keys, partition
        pipe = self.r.pipeline(transaction=True)
        pipe.hdel(k.clock, f"a:{p}", f"s:{p}", f"f:{p}")
        for name in (k.population, k.watermark, k.offsets):
            pipe.hdel(name, str(p))
        pipe.delete(k.active(p), k.gone(p))
        await pipe.execute()
        pending = [key async for key in self.r.scan_iter(
            match=_glob(k.pending(p, 0)[:-1]) + "*", count=1000)]
        if pending:
            await self.r.unlink(*pending)


def _glob(text: str) -> str:
    """``text`` with glob metacharacters escaped (for SCAN MATCH)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
