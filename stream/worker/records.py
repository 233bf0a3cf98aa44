"""What the worker reads from Kafka, what it sends to the DLQ for a record that is
not an event, and what one batch (or an advance of the clock) did.

>>> DeadLetter(Record(0, 7, None, None), "payload:tombstone").to_json("events")[:44]
b'{"reason": "payload:tombstone", "topic": "ev'
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from core.apply import DUPLICATE
from core.events import Event, Rejected
from core.features import Aggregates
from state.store import Applied, Commit, Item

if TYPE_CHECKING:
    from stream.anchors import AnchorStats


class Record(NamedTuple):
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None  # None: a tombstone (a Kafka record with a null value)
    # the value parsed ahead (BatchProcessor.parser, while the batch before is applied)
    event: Event | Rejected | None = None


class DeadLetter(NamedTuple):
    record: Record
    reason: str

    def to_json(self, topic: str) -> bytes:
        """DLQ payload: reason, source position and the raw payload (text or base64)."""
        body: dict[str, object] = {"reason": self.reason, "topic": topic,
                                   "partition": self.record.partition,
                                   "offset": self.record.offset, "at": time.time()}
        for name, raw in (("raw", self.record.value), ("key", self.record.key)):
            if raw is None:
                body[name] = None
                continue
            try:
                body[name] = raw.decode("utf-8")
            except UnicodeDecodeError:
                body[name + "_b64"] = base64.b64encode(raw).decode()
        return json.dumps(body, ensure_ascii=False).encode()


TOMBSTONE = Rejected("payload:tombstone")
# a record whose user Kafka's default partitioner puts in another partition: on a Redis
# Cluster its state would live where lookups by id do not look (state/keys.py)
FOREIGN = Rejected("partition:foreign")
DeadLetterSink = Callable[[Sequence[DeadLetter]], Awaitable[None]]


@dataclass
class BatchStats:
    records: int = 0
    skipped: int = 0
    rejected: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    users_scored: int = 0
    alerts: int = 0
    types: dict[str, int] = field(default_factory=dict)  # newly applied, by event type
    reasons: dict[str, int] = field(default_factory=dict)  # rejected, by reason
    newest: dict[int, int] = field(default_factory=dict)  # newest event time per partition
    redis_seconds: dict[str, float] = field(default_factory=dict)
    snapshots: int = 0
    released: dict[int, int] = field(default_factory=dict)  # by label
    seconds: float = 0.0

    def count_applied(self, items: Sequence[Item], results: Sequence[Applied]
                      ) -> list[tuple[str, int, Aggregates]]:
        """Count applied items by status and event type; the users to rescore (those whose
        new state came back: (user, partition, aggregates))."""
        statuses, types = self.statuses, self.types
        todo = []
        for it, res in zip(items, results, strict=True):
            st = res.status
            statuses[st] = statuses.get(st, 0) + 1
            if st < DUPLICATE:  # applied, late, late outside the window: newly consumed
                tname = it.event.event_type
                types[tname] = types.get(tname, 0) + 1
            if res.aggregates is not None:
                todo.append((it.event.user_id, it.partition, res.aggregates))
        return todo

    def add_anchor(self, st: AnchorStats) -> None:
        """Count one anchor's run (stream.anchors.AnchorStats)."""
        self.snapshots += st.snapshots
        self.released[1] = self.released.get(1, 0) + st.churned_labels
        self.released[0] = self.released.get(0, 0) + st.released - st.churned_labels


class Segment:
    """A batch's records up to an anchor crossing: applied (and committed) together
    (:class:`~stream.worker.processor.BatchProcessor`)."""

    __slots__ = ("items", "last_of_user", "last_off", "rejected", "unconfirmed", "wm")

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.last_off: dict[int, int] = {}
        self.wm: dict[int, int] = {}
        self.rejected: dict[int, dict[str, int]] = {}  # counters, by partition
        self.last_of_user: dict[str, int] = {}
        self.unconfirmed: dict[int, str] = {}  # partitions whose unconfirmed records changed

    def count(self, p: int, name: str) -> None:
        cnt = self.rejected.setdefault(p, {})
        cnt[name] = cnt.get(name, 0) + 1

    def reject(self, p: int, offset: int, reason: str) -> None:
        """A new record of partition ``p`` that is a dead letter."""
        self.last_off[p] = offset
        self.count(p, "rejected")
        self.count(p, "rejected:" + reason)

    def add(self, item: Item, t: int, fresh: bool) -> None:
        """A valid event, at the partition's clock ``t`` (fresh: not applied before)."""
        p = item.partition
        if fresh:
            self.last_off[p] = item.offset
        if t > self.wm.get(p, -1):
            self.wm[p] = t
        self.last_of_user[item.event.user_id] = len(self.items)
        self.items.append(item)

    def commits(self, applied: dict[int, int]) -> list[Commit]:
        """Each partition's commit, checked against the offset the batch started from."""
        return [Commit(p, off, self.wm.get(p, -1), self.rejected.get(p, {}),
                       self.unconfirmed.get(p), applied.get(p, -1))
                for p, off in self.last_off.items()]
