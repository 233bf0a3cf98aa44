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


ALIVE_SECONDS = 15.0  # a running worker beats every 5 s


class Beat(NamedTuple):
    worker: str
    state: str  # running | crashed
    at: float  # epoch seconds
    partitions: list[int]
    reason: str | None
    since: float  # when the worker started


def unresolved_crashes(beats: list[Beat], now: float | None = None) -> list[Beat]:
    """Crashes that no worker started since then has taken over from (a supervisor that
    restarted the crashed worker resolves its crash).

    >>> b = [Beat("h:1", "crashed", 10.0, [0], "boom", 1.0)]
    >>> [x.worker for x in unresolved_crashes(b, now=20.0)]
    ['h:1']
    >>> unresolved_crashes([*b, Beat("h:2", "running", 19.0, [0], None, 11.0)], now=20.0)
    []
    """
    now = time.time() if now is None else now
    alive = [b.since for b in beats if b.state == "running" and b.at >= now - ALIVE_SECONDS]
    return [b for b in beats if b.state == "crashed" and not any(s > b.at for s in alive)]


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def parse_beats(raw: dict[Any, Any]) -> list[Beat]:
    """Beats from HGETALL; unreadable entries are skipped.

    >>> parse_beats({b"h:1": b'{"state":"running","at":5,"since":1}', b"x": b"?"})
    [Beat(worker='h:1', state='running', at=5.0, partitions=[], reason=None, since=1.0)]
    """
    out = []
    for k, v in raw.items():
        try:
            d = json.loads(v)
            out.append(Beat(k.decode() if isinstance(k, bytes) else str(k), str(d["state"]),
                            float(d["at"]), [int(p) for p in d.get("partitions", [])],
                            d.get("reason"), float(d.get("since", d["at"]))))
        except (ValueError, KeyError, TypeError):
            continue
    return sorted(out)


class WorkerRegistry:
    def __init__(self, client: Any, prefix: str = "churn", worker: str | None = None) -> None:
        self.r = client
        self.key = f"{prefix}:workers"
        self.worker = worker or worker_id()
        self.since = time.time()

    async def beat(self, state: str, partitions: list[int], reason: str | None = None) -> None:
        now = time.time()
        body: dict[str, object] = {"state": state, "at": now, "since": self.since,
                                   "partitions": partitions}
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
