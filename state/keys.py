"""Redis key layout, and where each key is placed (docs/architecture.md, "Redis layout").

One layout, two placements. On a single Redis every key lives on one primary; the
per-partition structures are hashes with one field per partition, users are tagged by
their id. On a Redis Cluster (``redis+cluster://``) the unit of atomicity decides the
hash tag: everything one Kafka partition's batch touches (its users' hashes, its
applied offset, clock, counters, monthly figures, tier counts, indexes and pending
snapshots) carries the tag ``{<prefix>:p<partition>}``, so a batch is one transaction
on one node and the partitions spread over the primaries; the few global structures
(the Top-K ranking, the alerts feed, the retired customers, model checkpoints, value
fits) carry the tag ``{<prefix>}`` and live together on one node. Readers of a
per-partition structure read every partition's key (:meth:`Keys.shards`) and merge.

>>> k = Keys("churn")
>>> k.user("42"), k.offsets_of(3), k.stats, k.watermark, k.rank
('churn:{u:42}', 'churn:offsets', 'churn:stats', 'churn:watermark', 'churn:rank')
>>> k.active(3), k.pending(3, 86_400_000), k.shards("stats")
('churn:active:3', 'churn:pending:3:86400000', ['churn:stats'])
>>> c = Keys("churn", partitions=2)
>>> c.user("42", 1), c.offsets_of(1), c.rank, c.active(1), c.pending(1, 5)
('churn:{churn:p1}:u:42', 'churn:{churn:p1}:offsets', '{churn}:rank', \
'churn:{churn:p1}:active', 'churn:{churn:p1}:pending:5')
>>> c.shards("stats")
['{churn}:stats', 'churn:{churn:p0}:stats', 'churn:{churn:p1}:stats']
>>> c.user("42") == c.user("42", c.partition_of("42"))  # Kafka's default partitioner
True
"""

from __future__ import annotations

# structures kept per partition (one field per partition on a single Redis, one key per
# partition on a cluster); stats also keeps a global key for counters of no partition
PER_PARTITION = ("offsets", "stats", "months", "watermark", "unconfirmed", "tiers", "clock",
                 "population", "owners")


def murmur2(data: bytes) -> int:
    """Kafka's murmur2, unsigned (the default partitioner of keyed records in Java,
    kafka-python and aiokafka: ``(murmur2(key) & 0x7fffffff) % partitions``).

    >>> murmur2(b"21"), murmur2(b"foobar")
    (3321034988, 3504634814)
    """
    length, seed, m = len(data), 0x9747B28C, 0x5BD1E995
    h = (seed ^ length) & 0xFFFFFFFF
    n4 = length // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    rest = length & 3
    if rest == 3:
        h ^= data[4 * n4 + 2] << 16
    if rest >= 2:
        h ^= data[4 * n4 + 1] << 8
    if rest >= 1:
        h ^= data[4 * n4]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


class Keys:
    """All key names, under one configurable prefix; ``partitions`` set = cluster placement
    (the number of partitions of the events topic)."""

    __slots__ = ("_user_prefix", "alerts", "clock", "cluster", "epoch", "global_prefix",
                 "months", "offsets", "owners", "partitions", "population", "prefix", "rank",
                 "retired", "stats", "tiers", "unconfirmed", "watermark")

    def __init__(self, prefix: str = "churn", partitions: int | None = None) -> None:
        self.prefix = prefix
        self.partitions = partitions or 0
        self.cluster = partitions is not None
        g = self.global_prefix = f"{{{prefix}}}" if self.cluster else prefix
        self.offsets = f"{g}:offsets"  # partition -> last applied offset
        self.epoch = f"{g}:epoch"  # id, created_ms, reason: when this state began
        self.stats = f"{g}:stats"  # counter name -> count
        # the monthly figures (core/monthly.py): a:<m>, r:<m>, c:<m>:<k> -> customers
        self.months = f"{g}:months"
        self.alerts = f"{g}:alerts"  # stream: the newest tier crossings (state.store.FEED)
        self.watermark = f"{g}:watermark"  # partition -> its clock (confirmed, ms)
        # partition -> records too far ahead of its clock, not yet confirmed (core.clock)
        self.unconfirmed = f"{g}:unconfirmed"
        self.rank = f"{g}:rank"  # sorted set: user id -> current risk (the Top-K index)
        self.tiers = f"{g}:tiers"  # stored tier -> users in it
        self.clock = f"{g}:clock"  # a:<p> last anchor done, s:<p> swept until (ms)
        self.population = f"{g}:population"  # partition -> feature sums at its anchor
        # partition -> the token of the worker that claimed it last (state/epoch.py fences
        # the writes of a worker that lost it in a rebalance)
        self.owners = f"{g}:owners"
        # retired customers' BG/NBD summaries, "x:t_x:first purchase day" -> customers (the
        # value fit's population keeps them; one field per distinct summary)
        self.retired = f"{g}:value:retired"
        self._user_prefix = f"{prefix}:{{u:"

    def tag(self, partition: int) -> str:
        """The prefix of partition ``partition``'s keys (its hash slot on a cluster)."""
        return f"{self.prefix}:{{{self.prefix}:p{partition}}}" if self.cluster else self.prefix

    def partition_of(self, user_id: str) -> int:
        """The partition Kafka's default partitioner gives ``user_id`` (cluster placement)."""
        return (murmur2(user_id.encode()) & 0x7FFFFFFF) % max(1, self.partitions)

    def foreign(self, user_id: str, partition: int) -> bool:
        """On a cluster: a record of ``user_id`` in another partition than Kafka's default
        partitioner gives (its state would live where lookups by id do not look)."""
        return self.cluster and self.partition_of(user_id) != partition

    def user(self, user_id: str, partition: int | None = None) -> str:
        """The user's hash: lifetime scalars, day buckets, dedupe records, score. On a
        cluster it lives with its partition (by default the one Kafka's partitioner gives)."""
        if not self.cluster:
            return f"{self._user_prefix}{user_id}}}"
        p = self.partition_of(user_id) if partition is None else partition
        return f"{self.tag(p)}:u:{user_id}"

    def of(self, name: str, partition: int) -> str:
        """The key holding partition ``partition``'s field of the structure ``name``."""
        return f"{self.tag(partition)}:{name}" if self.cluster else getattr(self, name)

    def epochs(self) -> list[str]:
        """Every copy of the state epoch (state/epoch.py): one on a single Redis; on a
        cluster one in the global slot and one in each partition's slot, so that each
        slot's transactions are guarded by a key of their own slot."""
        return [self.epoch, *(f"{self.tag(p)}:epoch" for p in range(self.partitions))]

    def epoch_for(self, key: str) -> str:
        """The epoch copy in ``key``'s slot."""
        if not self.cluster:
            return self.epoch
        return key[:key.index("}") + 1] + ":epoch"

    def offsets_of(self, partition: int) -> str:
        return self.of("offsets", partition)

    def shards(self, name: str) -> list[str]:
        """Every key of the per-partition structure ``name``, to be read and merged."""
        if not self.cluster:
            return [getattr(self, name)]
        glob = [self.stats] if name == "stats" else []
        return glob + [f"{self.tag(p)}:{name}" for p in range(self.partitions)]

    def active(self, partition: int) -> str:
        """Sorted set: the partition's users not churned -> their newest event (ms)."""
        return f"{self.tag(partition)}:active" if self.cluster else \
            f"{self.prefix}:active:{partition}"

    def gone(self, partition: int) -> str:
        """Sorted set: the partition's churned users -> newest event (for retention)."""
        return f"{self.tag(partition)}:gone" if self.cluster else f"{self.prefix}:gone:{partition}"

    def pending(self, partition: int, anchor_ms: int) -> str:
        """Hash: label snapshots taken at ``anchor_ms``, user -> packed features."""
        return f"{self.tag(partition)}:pending:{anchor_ms}" if self.cluster else \
            f"{self.prefix}:pending:{partition}:{anchor_ms}"

    def user_scan_pattern(self) -> str:
        return f"{self.prefix}:{{{self.prefix}:p*}}:u:*" if self.cluster else \
            f"{self._user_prefix}*"

    def user_id_of(self, key: str) -> str:
        if self.cluster:
            return key.split("}:u:", 1)[1]
        return key[len(self._user_prefix):-1]
