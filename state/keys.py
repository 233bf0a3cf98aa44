"""Redis key layout.

Per-user keys carry the hash tag ``{u:<id>}`` so a Redis Cluster can shard users;
the few global keys stay small per entry (one field per partition or counter).

>>> k = Keys("churn")
>>> k.user("42"), k.offsets, k.stats, k.watermark
('churn:{u:42}', 'churn:offsets', 'churn:stats', 'churn:watermark')
>>> k.active(3), k.pending(3, 86_400_000)
('churn:active:3', 'churn:pending:3:86400000')
"""

from __future__ import annotations


class Keys:
    """All key names, under one configurable prefix."""

    __slots__ = ("_user_prefix", "alerts", "clock", "epoch", "months", "offsets", "population",
                 "prefix", "rank", "retired", "stats", "tiers", "unconfirmed", "watermark")

    def __init__(self, prefix: str = "churn") -> None:
        self.prefix = prefix
        self.offsets = f"{prefix}:offsets"  # partition -> last applied offset
        self.epoch = f"{prefix}:epoch"  # id, created_ms, reason: when this state began
        self.stats = f"{prefix}:stats"  # counter name -> count
        # the monthly figures (core/monthly.py): a:<m>, r:<m>, c:<m>:<k> -> customers
        self.months = f"{prefix}:months"
        self.alerts = f"{prefix}:alerts"  # stream: the newest tier crossings (state.store.FEED)
        self.watermark = f"{prefix}:watermark"  # partition -> its clock (confirmed, ms)
        # partition -> records too far ahead of its clock, not yet confirmed (core.clock)
        self.unconfirmed = f"{prefix}:unconfirmed"
        self.rank = f"{prefix}:rank"  # sorted set: user id -> current risk (the Top-K index)
        self.tiers = f"{prefix}:tiers"  # stored tier -> users in it
        self.clock = f"{prefix}:clock"  # a:<p> last anchor done, s:<p> swept until (ms)
        self.population = f"{prefix}:population"  # partition -> feature sums at its anchor
        # retired customers' BG/NBD summaries, "x:t_x:first purchase day" -> customers (the
        # value fit's population keeps them; one field per distinct summary)
        self.retired = f"{prefix}:value:retired"
        self._user_prefix = f"{prefix}:{{u:"

    def user(self, user_id: str) -> str:
        """The user's hash: lifetime scalars, day buckets, dedupe records, score."""
        return f"{self._user_prefix}{user_id}}}"

    def active(self, partition: int) -> str:
        """Sorted set: the partition's users not churned -> their newest event (ms)."""
        return f"{self.prefix}:active:{partition}"

    def gone(self, partition: int) -> str:
        """Sorted set: the partition's churned users -> newest event (for retention)."""
        return f"{self.prefix}:gone:{partition}"

    def pending(self, partition: int, anchor_ms: int) -> str:
        """Hash: label snapshots taken at ``anchor_ms``, user -> packed features."""
        return f"{self.prefix}:pending:{partition}:{anchor_ms}"

    def user_scan_pattern(self) -> str:
        return f"{self._user_prefix}*"

    def user_id_of(self, key: str) -> str:
        return key[len(self._user_prefix):-1]
