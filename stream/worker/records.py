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

from core.events import Rejected

if TYPE_CHECKING:
    from stream.anchors import AnchorStats


class Record(NamedTuple):
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None  # None: a tombstone (a Kafka record with a null value)


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

    def add_anchor(self, st: AnchorStats) -> None:
        """Count one anchor's run (stream.anchors.AnchorStats)."""
        self.snapshots += st.snapshots
        self.released[1] = self.released.get(1, 0) + st.churned_labels
        self.released[0] = self.released.get(0, 0) + st.released - st.churned_labels
