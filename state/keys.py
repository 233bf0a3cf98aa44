"""Redis key layout.

Per-user keys carry the hash tag ``{u:<id>}`` so a Redis Cluster can shard users;
the few global keys stay small per entry (one field per partition or counter).

>>> k = Keys("churn")
>>> k.user("42"), k.offsets, k.stats, k.watermark
('churn:{u:42}', 'churn:offsets', 'churn:stats', 'churn:watermark')
"""

from __future__ import annotations


class Keys:
    """All key names, under one configurable prefix."""

    __slots__ = ("_user_prefix", "offsets", "prefix", "rank", "stats", "watermark")

    def __init__(self, prefix: str = "churn") -> None:
        self.prefix = prefix
        self.offsets = f"{prefix}:offsets"  # partition -> last applied offset
        self.stats = f"{prefix}:stats"  # counter name -> count
        self.watermark = f"{prefix}:watermark"  # partition -> largest event time (ms)
        self.rank = f"{prefix}:rank"  # sorted set: user id -> current risk (the Top-K index)
        self._user_prefix = f"{prefix}:{{u:"

    def user(self, user_id: str) -> str:
        """The user's hash: lifetime scalars, day buckets, dedupe records, score."""
        return f"{self._user_prefix}{user_id}}}"

    def user_scan_pattern(self) -> str:
        return f"{self._user_prefix}*"

    def user_id_of(self, key: str) -> str:
        return key[len(self._user_prefix):-1]
