"""Who works on the worker's live state when: batches and sweep chunks take turns.

One :class:`Turns` is shared by the :class:`~stream.worker.processor.BatchProcessor`
and the :class:`~stream.worker.sweeper.Sweeper`: a batch (apply, rescore, the anchors it
crosses) and a sweep chunk never interleave, so a sweep never rescores a user from a
state a batch is half-way through, and anything else that needs the state quiet
(idle-partition anchors, the recovery timer) enters ``async with turns:`` too.

(A batch's rescore once ran on while the next batch was applied, to use both cores;
no gain was measured, and a failure of that put-off rescore was only seen when
something waited for it: README "The hot path".)

>>> async def demo():
...     turns, done = Turns(), []
...     async def batch():
...         async with turns:
...             await asyncio.sleep(0)
...             done.append("batch")
...     async def sweep():
...         async with turns:
...             done.append("sweep")
...     await asyncio.gather(batch(), sweep())
...     return done
>>> asyncio.run(demo())
['batch', 'sweep']
"""

from __future__ import annotations

import asyncio


class Turns:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()

    def locked(self) -> bool:
        return self.lock.locked()

    async def __aenter__(self) -> None:
        await self.lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.lock.release()
