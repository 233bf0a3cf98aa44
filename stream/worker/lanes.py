"""Lanes and chunks: one batch applied and scored in parts that overlap in time.

A worker's partitions are independent in state (each user lives in one partition, and
every per-partition structure is the partition's own), exactly as when two workers
share the partitions of a topic. Inside one batch the processor therefore runs the
partitions in ``CHURN_BATCH_LANES`` groups at once: while Redis applies one lane's
events, the worker scores the users of another, instead of each waiting for the other
(bench/worker_throughput.py). Each lane keeps its own order (segments, anchors); the
batch ends when every lane has. Inside a lane, a segment's users are split in
``CHURN_BATCH_CHUNKS`` chunks whose transactions go to Redis at once, each on its own
connection (the last, with the partitions' commits, once the others have landed), and
chunk j is scored as soon as it is applied, while Redis applies the others.

>>> lanes_of([3, 0, 2, 1], 2)
{0: 0, 1: 1, 2: 0, 3: 1}
>>> lanes_of([5], 2)
{5: 0}
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from typing import Any

from state.store import Item


def user_chunks(items: list[Item], users: dict[str, int], k: int) -> list[list[Item]]:
    """``items`` in up to ``k`` chunks of whole users (``users``: each user's last item,
    in order of first appearance), the users dealt in contiguous runs, each user's items in
    their order."""
    if k <= 1 or len(users) < 2 * k:
        return [items]
    n = len(users)
    chunk_of = {u: i * k // n for i, u in enumerate(users)}
    out: list[list[Item]] = [[] for _ in range(k)]
    for it in items:
        out[chunk_of[it.event.user_id]].append(it)
    return out


def lanes_of(partitions: Iterable[int], lanes: int) -> dict[int, int]:
    """Partition -> lane: the batch's partitions in order, dealt round-robin."""
    return {p: i % max(1, lanes) for i, p in enumerate(sorted(set(partitions)))}


async def run_lanes(work: list[Coroutine[Any, Any, None]]) -> None:
    """Run the lanes together; every lane has finished (or failed) before this returns or
    raises the first failure: a retried batch never overlaps what is left of itself."""
    if len(work) == 1:
        await work[0]
        return
    tasks = [asyncio.ensure_future(w) for w in work]
    try:
        done = await asyncio.gather(*tasks, return_exceptions=True)
    except BaseException:  # cancelled: the lanes too, and wait for them to stop
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    for res in done:
        if isinstance(res, BaseException):
            raise res
