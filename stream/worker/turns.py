"""Who works on the worker's live state when: batches and sweep chunks take turns (one
lock), and a batch's last rescore may still run while the next batch is applied.

:class:`~stream.worker.processor.BatchProcessor` (``defer=True``, the worker) hands the
rescore of a batch's last segment (features, scores, tiers, alerts) to
:meth:`Turns.defer` and returns: the next batch is then parsed and its Redis apply runs
while that rescore computes (Redis and the worker use both cores at once). The next
batch waits for it before its own rescore; anything else that needs the state quiet
(sweep chunks, idle-partition anchors) enters ``async with turns:``, which waits for it
too. A deferred rescore that fails on a retryable error leaves its batch's records in
:attr:`Turns.redo`: they are processed again before anything else (their state comes
back as redelivered and is rescored), so a batch counts as done, and its offsets are
committed, only once its rescore has landed.

>>> async def demo():
...     turns, done = Turns(), []
...     async def rescore():
...         await asyncio.sleep(0)
...         done.append("rescored")
...     turns.defer(rescore(), ["record"])
...     async with turns:
...         done.append("sweep")
...     return done
>>> asyncio.run(demo())
['rescored', 'sweep']
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import Any


class Redo(Exception):
    """A deferred rescore failed on a retryable error: its batch is processed again."""


class Turns:
    def __init__(self, retryable: tuple[type[BaseException], ...] = ()) -> None:
        self.lock = asyncio.Lock()
        self.retryable = retryable
        self.tail: asyncio.Future[Any] | None = None
        self.tail_records: Sequence[Any] = ()
        self.redo: list[Any] = []  # records of batches whose rescore failed
        self.failure: BaseException | None = None  # why

    def defer(self, rescore: Coroutine[Any, Any, Any], records: Sequence[Any]) -> None:
        """Run ``rescore`` (of the batch of ``records``) while the caller goes on."""
        assert self.tail is None, "drain() the deferred rescore before deferring another"
        self.tail, self.tail_records = asyncio.ensure_future(rescore), records

    async def drain(self) -> None:
        """Wait for the deferred rescore (shielded: a cancelled waiter leaves it running).
        A retryable failure puts its batch in :attr:`redo`; any other one is raised."""
        tail, self.tail = self.tail, None
        if tail is None:
            return
        try:
            await asyncio.shield(tail)
        except self.retryable as exc:
            self.redo = [*self.redo, *self.tail_records]
            self.failure = exc

    async def finished(self) -> None:
        """:meth:`drain`, then :class:`Redo` if the rescore failed (its batch is redone)."""
        await self.drain()
        if self.redo:
            raise Redo() from self.failure

    def take_redo(self) -> list[Any]:
        redo, self.redo = self.redo, []
        return redo

    async def __aenter__(self) -> None:
        await self.lock.acquire()
        try:
            await self.drain()
        except BaseException:
            self.lock.release()
            raise

    async def __aexit__(self, *exc: object) -> None:
        self.lock.release()
