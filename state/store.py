"""The feature-store interface: per-user state, scores, tiers, label snapshots, clocks.

The stream processor, the anchors and the sweeper talk to a :class:`FeatureStore`;
the Redis backend (:mod:`state.redis_store`) is the real one,
:class:`state.memory_store.MemoryFeatureStore` serves offline evaluation and unit
tests. One test suite runs over both.

A batch is applied atomically: per-event state changes, the batch's counters,
the partition's applied offset and watermark, and the score writes carried
with it either all happen or none do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple, Protocol

from core.events import Event
from core.features import Aggregates, UserState
from core.model import REASON_NAMES
from core.tiers import Crossing, TierRecord
from state.codec import Score


def population_means(parts: Iterable[tuple[int, Sequence[float]]]
                     ) -> tuple[int, dict[str, float]]:
    """(users, means) from each partition's (snapshot users, column sums). Columns are
    REASON_NAMES in order: the 17 features, then the BG/NBD inputs where the snapshots
    carried them; a column's mean is over the partitions that have it.

    >>> population_means([(2, [4.0] * 17), (2, [0.0] * 17 + [1.0, 1.5, 0.5])])[1]["n_events_7d"]
    1.0
    >>> population_means([(2, [4.0] * 17), (2, [0.0] * 17 + [1.0, 1.5, 0.5])])[1]["bg_p_alive"]
    0.75
    """
    users, sums, counts = 0, [0.0] * len(REASON_NAMES), [0] * len(REASON_NAMES)
    for n, part in parts:
        users += n
        for i, v in enumerate(part[:len(REASON_NAMES)]):
            sums[i] += v
            counts[i] += n
    return users, {name: s / c for name, s, c in zip(REASON_NAMES, sums, counts, strict=True)
                   if c}


class Item(NamedTuple):
    """One valid event to apply, where it came from, and whether to return the new state."""

    event: Event
    partition: int
    offset: int
    want_state: bool = False


class Commit(NamedTuple):
    """Counters of one batch of one partition, counted once (guarded by ``last_offset``),
    and the partition's clock: its confirmed watermark and, when they changed, its
    unconfirmed records (:meth:`core.clock.ClockGuard.dumps`)."""

    partition: int
    last_offset: int
    watermark_ms: int
    counters: dict[str, int]
    unconfirmed: str | None = None
    # the partition's applied offset the batch was computed against (-2: unchecked). A
    # larger one in the store means another worker committed meanwhile (a rebalance
    # with a batch still under way): the commit is refused and apply() raises StaleBatch
    expected: int = -2


class StaleBatch(Exception):
    """Another worker committed this partition after the batch read its state: retry
    from the stored state (the records it already counted are then re-reads)."""


class Applied(NamedTuple):
    """Status of one item and, if asked for, the user's window aggregates after it
    (at the user's newest event: the reference time of scoring at an event)."""

    status: int
    aggregates: Aggregates | None


class ScoreWrite(NamedTuple):
    user_id: str
    partition: int
    score: Score
    last_ms: int  # the user's newest event (the active index's sort key)
    churned: bool = False  # silent > H at the score's time: out of the rank/active indexes
    reindex: bool = True  # False: the active index already holds last_ms (sweeps)


class Placed(NamedTuple):
    """Result of one score write: whether it was stored, the user's 0-based rank and the
    ranked users right after it, and the stored tier it found."""

    written: bool
    rank: int
    ranked: int
    tier: TierRecord | None


HISTORY = 4  # crossings kept per user (18 bytes each in Redis)
FEED = 10_000  # crossings kept in the alerts feed


class TierChange(NamedTuple):
    user_id: str
    partition: int
    old: int | None  # index in core.tiers.ALL_TIERS; None for a user's first tier
    record: TierRecord
    last_ms: int
    crossing: Crossing | None = None  # when the change was alerted


class UserView(NamedTuple):
    """Everything ``GET /v1/users/{id}`` shows, read in one round trip."""

    state: UserState
    score: Score | None
    tier: TierRecord | None
    rank: int | None  # 0-based; None if not ranked
    ranked: int
    means: dict[str, float]  # population means (latest anchors)
    history: tuple[Crossing, ...] = ()  # the newest tier crossings, oldest first


class FeatureStore(Protocol):
    async def applied_offsets(self) -> dict[int, int]:
        """Last applied offset per partition (what a new owner of a partition skips)."""

    async def apply(self, items: Sequence[Item], commits: Sequence[Commit] = ()) -> list[Applied]:
        """Apply a batch atomically; one :class:`Applied` per item, in order."""

    async def write_scores(self, writes: Sequence[ScoreWrite]) -> list[Placed]:
        """Store scores (unless a newer one is stored), update the rank and active indexes;
        one :class:`Placed` per write, ranks as they are right after each write."""

    async def write_tiers(self, changes: Sequence[TierChange], counters: dict[str, int]) -> None:
        """Store tier changes (counts per tier; churned users leave the rank and active
        indexes for the partition's retention index), their crossings (the user's
        history, the alerts feed) and add ``counters`` to the stats, in one transaction."""

    async def alerts_feed(self, count: int, to: str | None = None) -> list[Crossing]:
        """The newest crossings, newest first (only those into tier ``to`` if given)."""

    async def aggregates_at(self, user_ids: Sequence[str], now_ms: int,
                            partition: int | None = None) -> list[Aggregates | None]:
        """Window aggregates of each user at ``now_ms`` (None: no state); ``partition``:
        theirs, when the caller knows it (on a cluster their keys live with it)."""

    async def active_users(self, partition: int, after_ms: float, until_ms: float
                           ) -> list[tuple[str, int]]:
        """(user, newest event) of the partition's non-churned users with newest event in
        ``(after_ms, until_ms]``, ordered by newest event, then user id (as bytes)."""

    async def last_events(self, user_ids: Sequence[str],
                          partition: int | None = None) -> list[int | None]:
        """Newest event time of each user (None: no state)."""

    async def clock(self) -> dict[str, int]:
        """Per-partition clocks: ``a:<p>`` last anchor done, ``s:<p>`` swept until (ms)."""

    async def set_clock(self, name: str, value_ms: int) -> None:
        """Set one clock field (only ever forwards)."""

    async def put_snapshots(self, partition: int, anchor_ms: int,
                            rows: Sequence[tuple[str, Sequence[float]]]) -> None:
        """Pending label snapshots taken at an anchor (features in REASON_NAMES order: the
        17 features, optionally followed by the BG/NBD inputs), and the partition's
        population sums of those columns at that anchor."""

    async def snapshots(self, partition: int, anchor_ms: int) -> list[tuple[str, list[float]]]:
        """Pending snapshots of one anchor, ordered by user id."""

    async def finish_anchor(self, partition: int, anchor_ms: int, released_anchor_ms: int,
                            counters: dict[str, int]) -> None:
        """Atomically: drop the released snapshots, mark the anchor done, count."""

    async def population(self) -> tuple[int, dict[str, float]]:
        """(users, feature means) over the latest anchor snapshots of all partitions."""

    async def tier_of(self, user_id: str) -> TierRecord | None:
        """Stored (alerted) tier of one user."""

    async def tier_counts(self) -> dict[str, int]:
        """Users per stored tier."""

    async def retire(self, partition: int, silent_before_ms: int) -> int:
        """Delete churned users of the partition whose newest event is before the bound;
        the BG/NBD summaries of the customers among them are archived (counted per
        "x:t_x:first purchase day") so the value fit still sees them."""

    async def retired_customers(self) -> dict[str, int]:
        """The archive of :meth:`retire`: "x:t_x:first purchase day" -> customers."""

    async def user_view(self, user_id: str) -> UserView | None:
        """State, score, stored tier, rank and population means of one user (None:
        unknown user)."""

    async def user(self, user_id: str) -> tuple[UserState | None, Score | None]:
        """Current state and latest score of one user."""

    async def stats(self) -> dict[str, int]:
        """All counters."""

    async def watermarks(self) -> dict[int, int]:
        """Each partition's clock: the largest confirmed event time (ms, core.clock)."""

    async def unconfirmed(self) -> dict[int, str]:
        """Each partition's unconfirmed records, as stored by :class:`Commit`."""

    async def months(self) -> dict[str, int]:
        """The monthly figures' counters (``core.monthly.table`` reads them)."""

    async def count_users(self) -> int:
        """Number of users with state."""

    async def top(self, offset: int, count: int) -> list[tuple[str, float]]:
        """Ranked users ``offset .. offset + count - 1`` (riskiest first; ties: larger id first)."""

    async def rank_of(self, user_id: str) -> tuple[int, int] | None:
        """(0-based rank, ranked users) of one user; None if not ranked."""

    async def top_reasons(self, user_ids: Sequence[str]) -> list[str]:
        """The feature of each user's first stored reason ('' if none)."""

    async def count_at_least(self, risk: float) -> int:
        """Ranked users with risk >= ``risk`` (absolute tier mode)."""

    async def count_ranked(self) -> int:
        """Number of ranked users."""


__all__ = ["Applied", "Commit", "FeatureStore", "Item", "Placed", "ScoreWrite",
           "TierChange", "UserView"]
