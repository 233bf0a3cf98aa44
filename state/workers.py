"""Worker heartbeats: which stream workers are alive, and which have crashed.

One small hash ``<prefix>:workers``: worker id (``host:pid``) -> JSON
``{"state", "at", "partitions", "reason"}``. Every worker beats every few seconds,
writes ``crashed`` (with the reason) when its agent dies, and removes itself on a
clean stop; entries older than a day are pruned by the beats, so the hash stays as
small as the fleet. The API's ``/readyz`` and ``/v1/status`` read it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any, NamedTuple

PRUNE_SECONDS = 86_400.0


class Beat(NamedTuple):
    worker: str
    state: str  # running | crashed
    at: float  # epoch seconds
    partitions: list[int]
    reason: str | None


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def parse_beats(raw: dict[Any, Any]) -> list[Beat]:
    """Beats from HGETALL; unreadable entries are skipped.

    >>> parse_beats({b"h:1": b'{"state":"running","at":5,"partitions":[0]}', b"x": b"?"})
    [Beat(worker='h:1', state='running', at=5.0, partitions=[0], reason=None)]
    """
    out = []
    for k, v in raw.items():
        try:
            d = json.loads(v)
            out.append(Beat(k.decode() if isinstance(k, bytes) else str(k), str(d["state"]),
                            float(d["at"]), [int(p) for p in d.get("partitions", [])],
                            d.get("reason")))
        except (ValueError, KeyError, TypeError):
            continue
    return sorted(out)


class WorkerRegistry:
    def __init__(self, client: Any, prefix: str = "churn", worker: str | None = None) -> None:
        self.r = client
        self.key = f"{prefix}:workers"
        self.worker = worker or worker_id()

    async def beat(self, state: str, partitions: list[int], reason: str | None = None) -> None:
        now = time.time()
        body = {"state": state, "at": now, "partitions": partitions}
        if reason is not None:
            body["reason"] = reason[:500]
        await self.r.hset(self.key, self.worker, json.dumps(body))
        stale = [b.worker for b in parse_beats(await self.r.hgetall(self.key))
                 if b.at < now - PRUNE_SECONDS]
        if stale:
            await self.r.hdel(self.key, *stale)

    async def leave(self) -> None:
        await self.r.hdel(self.key, self.worker)

    async def beats(self) -> list[Beat]:
        return parse_beats(await self.r.hgetall(self.key))
