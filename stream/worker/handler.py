"""The batch handler: the body of the worker's agent on topic ``events``.

Batches are applied one at a time, in order, and acknowledged once applied. While
Redis runs batch N the handler already collects batch N+1 from faust (at most one batch
in flight), so Redis time overlaps faust's per-event work. Anything the processor does
not retry ends the process (:mod:`stream.lifecycle`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from stream.lifecycle import Lifecycle
from stream.worker.processor import BatchProcessor
from stream.worker.records import Record

log = logging.getLogger("churnstream.worker")


def log_retry(exc: BaseException, delay: float) -> None:
    log.warning("batch not applied (%s: %s); retrying in %.1fs", type(exc).__name__, exc, delay)


class BatchHandler:
    """``run(stream)`` is the agent: ``stream`` is a faust stream of raw events (any
    object with ``noack_take(n, within)`` and ``ack(event)``)."""

    def __init__(self, proc: BatchProcessor, lifecycle: Lifecycle, batch_size: int,
                 within: float) -> None:
        self.proc, self.lifecycle = proc, lifecycle
        self.batch_size, self.within = batch_size, within

    async def apply_then_ack(self, stream: Any, batch: Sequence[Any]) -> None:
        records = [Record(e.message.partition, e.message.offset, e.message.key, e.value)
                   for e in batch]
        await self.proc.process_until_done(records, on_retry=log_retry)
        for event in batch:
            await stream.ack(event)

    async def run(self, stream: Any) -> None:
        inflight: asyncio.Future[None] | None = None
        try:
            async for batch in stream.noack_take(self.batch_size, within=self.within):
                if inflight is not None:
                    await inflight
                inflight = asyncio.ensure_future(self.apply_then_ack(stream, batch))
                inflight.add_done_callback(self.lifecycle.watch)
        except Exception as exc:  # anything not retried: end the process, see lifecycle
            self.lifecycle.crash(exc, "apply_events")
            raise
        finally:
            if inflight is not None:
                await inflight
