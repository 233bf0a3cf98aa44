"""Risk tiers with hysteresis, and the gate that bounds alerts (docs/design.md section 5).

Percentile mode ranks scored users by risk; ``top`` is a user's rank fraction
(0 = riskiest, 1 = safest). ``critical`` is the top 5 %, ``high`` the next 10 %,
``elevated`` the next 15 %, ``low`` the rest; users silent for more than H days
are ``churned`` and out of the ranking. Absolute mode uses probability cuts.

A user only changes tier when the new position is past the boundary by a
margin, so a user hovering at a threshold does not flap:

>>> p = TierPolicy()
>>> raw_tier(0.049, p), raw_tier(0.05, p), raw_tier(0.31, p)
('critical', 'high', 'low')
>>> next_tier("high", 0.045, p)  # just past the critical boundary: stay
'high'
>>> next_tier("high", 0.02, p)   # clearly inside: move
'critical'
>>> next_tier("low", 0.5, p, silent_days=31.0, horizon_days=30)
'churned'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

DAY_MS = 86_400_000

TIERS: tuple[str, ...] = ("critical", "high", "elevated", "low")
CHURNED = "churned"
ALL_TIERS: tuple[str, ...] = (*TIERS, CHURNED)


@dataclass(frozen=True, slots=True)
class TierPolicy:
    """Cumulative cuts: ``critical`` < 5 %, ``high`` < 15 %, ``elevated`` < 30 % of the ranking.

    In absolute mode ``cuts`` are risk thresholds (descending: critical >= 0.8 ...).
    ``margin`` is in the same unit as the position (rank fraction or probability).
    """

    cuts: tuple[float, float, float] = (0.05, 0.15, 0.30)
    margin: float = 0.01
    absolute: bool = False

    def __post_init__(self) -> None:
        ordered = sorted(self.cuts, reverse=self.absolute)
        if list(self.cuts) != ordered or len(set(self.cuts)) != 3:
            raise ValueError(f"tier cuts must be strictly monotone: {self.cuts}")
        if self.margin < 0:
            raise ValueError("margin must be >= 0")


def tier_bounds(n: int, cuts: tuple[float, float, float]) -> dict[str, tuple[int, int]]:
    """0-based [start, end) ranks of each tier among ``n`` ranked users:
    (r / n) < cut <=> r < ceil(cut * n).

    >>> tier_bounds(100, (0.05, 0.15, 0.30))["high"]
    (5, 15)
    """
    edges = [0, *(math.ceil(c * n) for c in cuts), n]
    return {t: (edges[i], edges[i + 1]) for i, t in enumerate(TIERS)}


def _index(position: float, policy: TierPolicy, shift: float = 0.0) -> int:
    for i, cut in enumerate(policy.cuts):
        inside = position >= cut + shift if policy.absolute else position < cut + shift
        if inside:
            return i
    return 3


def raw_tier(position: float, policy: TierPolicy) -> str:
    """Tier of a rank fraction (percentile mode) or a risk (absolute mode), no hysteresis."""
    return TIERS[_index(position, policy)]


def rank_position(rank0: int, n: int, policy: TierPolicy, risk: float) -> tuple[float, str]:
    """(percentile, tier) of the 0-based rank ``rank0`` among ``n`` with ``risk``: the
    tier by rank share, or by risk in absolute mode (``CHURN_TIER_MODE``).

    >>> rank_position(0, 100, TierPolicy(), 0.9)
    (100.0, 'critical')
    >>> rank_position(50, 100, TierPolicy(), 0.2)
    (50.0, 'low')
    """
    return 100.0 * (n - rank0) / n, raw_tier(risk if policy.absolute else rank0 / n, policy)


def next_tier(current: str | None, position: float, policy: TierPolicy,
              silent_days: float = 0.0, horizon_days: int = 30) -> str:
    """The tier after a rescore: ``churned`` past the horizon, else move only when the
    position is beyond the boundary towards the new tier by ``policy.margin``."""
    if silent_days > horizon_days:
        return CHURNED
    target = _index(position, policy)
    if current is None or current == CHURNED or current not in TIERS:
        return TIERS[target]
    cur = TIERS.index(current)
    if target == cur:
        return current
    # riskier tiers sit at smaller rank fractions (or larger probabilities)
    towards_risk = target < cur
    sign = -1.0 if towards_risk != policy.absolute else 1.0
    confirmed = _index(position, policy, shift=sign * policy.margin)
    if (towards_risk and confirmed < cur) or (not towards_risk and confirmed > cur):
        return TIERS[confirmed]
    return current


@dataclass(slots=True)
class AlertGate:
    """At most ``per_day`` tier alerts per user per UTC day, and none before ``min_dwell_ms``
    in the current tier. Returns True when an alert may be sent (and records it)."""

    per_day: int = 3
    min_dwell_ms: int = 0

    def allow(self, sent_today: int, entered_tier_ms: int, now_ms: int) -> bool:
        if sent_today >= self.per_day:
            return False
        return now_ms - entered_tier_ms >= self.min_dwell_ms


class Crossing(NamedTuple):
    """An alerted tier change (what ``risk.alerts`` announces): the stores keep the
    newest few per user and a bounded feed of all (``state.store.HISTORY``, ``FEED``)."""

    user_id: str
    frm: int  # indexes in core.tiers.ALL_TIERS
    to: int
    risk: float
    at_ms: int


class TierRecord(NamedTuple):
    """The stored (alerted) tier of a user: index in :data:`ALL_TIERS`, when it was
    entered (event time, ms), and the alerts sent on one UTC day (the per-day bound)."""

    tier: int
    entered_ms: int
    alert_day: int
    alerts_that_day: int


def decide(cur: TierRecord | None, position: float, now_ms: int, policy: TierPolicy,
           gate: AlertGate, silent_days: float = 0.0, horizon_days: int = 30,
           ) -> tuple[TierRecord, bool] | None:
    """The stored tier after a rescore at ``now_ms``: None when it stays, else the new
    record and whether the change is alerted.

    A user's first tier is recorded without an alert. Every later change is an alert,
    so alerts are exactly the stored changes; a change the gate refuses (per-day bound,
    minimum dwell) does not happen until a later rescore. Entering or leaving
    ``churned`` is never refused.

    >>> p, g = TierPolicy(), AlertGate(per_day=1)
    >>> first, alerted = decide(None, 0.5, 0, p, g)
    >>> ALL_TIERS[first.tier], alerted
    ('low', False)
    >>> rec, alerted = decide(first, 0.01, 1000, p, g)
    >>> ALL_TIERS[rec.tier], alerted, rec.alerts_that_day
    ('critical', True, 1)
    >>> decide(rec, 0.5, 2000, p, g) is None  # second alert on the same day: refused
    True
    >>> ALL_TIERS[decide(rec, 0.5, DAY_MS, p, g)[0].tier]  # next day
    'low'
    """
    current = ALL_TIERS[cur.tier] if cur is not None else None
    new = next_tier(current, position, policy, silent_days, horizon_days)
    if new == current:
        return None
    day = now_ms // DAY_MS
    code = ALL_TIERS.index(new)
    if cur is None:
        return TierRecord(code, now_ms, day, 0), False
    sent = cur.alerts_that_day if cur.alert_day == day else 0
    if CHURNED not in (new, current) and not gate.allow(sent, cur.entered_ms, now_ms):
        return None
    return TierRecord(code, now_ms, day, sent + 1), True
