"""A partition's event-time clock that no single record can throw ahead.

Event time is input, and input lies: a device with a wrong clock, a typo'd year, a
hostile producer. The clock of a partition (its confirmed watermark) drives anchors,
label releases, sweeps, churn and retention, so one record dated 2199 would churn and
then delete every user of its partition. :class:`ClockGuard` keeps that from
happening:

- a record at most ``step`` ahead of the clock moves it (ordinary traffic: records of
  one partition arrive seconds apart);
- a record further ahead is *unconfirmed*: it is applied to its own user (their
  features, score and tier follow it) but the partition's clock stays where it is;
- the jump is confirmed once ``users`` distinct users have unconfirmed records within
  ``step`` of each other (a genuine resumption after a gap: traffic goes on at the new
  level); the clock then moves to the earliest of them. Unconfirmed records that the
  clock has come within ``step`` of are forgotten (they are ordinary again).

So a wrong-clock device, whatever it sends, never moves the clock; only traffic from
several users does. At most ``keep`` unconfirmed users are remembered per partition
(the nearest ones: the farthest are the likeliest to be wrong).

>>> g = ClockGuard(step_ms=10, users=2)
>>> g.observe(100, "a"), g.observe(105, "b")  # the first record starts the clock
(100, 105)
>>> g.observe(10_000, "liar"), g.observe(10_001, "liar")  # one user: unconfirmed
(105, 105)
>>> g.observe(112, "c")  # ordinary traffic goes on
112
>>> g.observe(500, "d"), g.observe(503, "e")  # two users after a gap: confirmed at 500
(112, 500)
>>> g.pending
{'liar': 10000}
"""

from __future__ import annotations

import json


class ClockGuard:
    __slots__ = ("_low", "changes", "clock", "keep", "pending", "step", "users")

    def __init__(self, step_ms: int, users: int = 2, clock: int | None = None,
                 pending: dict[str, int] | None = None, keep: int = 64) -> None:
        self.step = step_ms
        self.users = max(1, users)
        self.keep = keep
        self.clock = clock  # None: no record yet
        self.pending: dict[str, int] = dict(pending or {})  # user -> earliest unconfirmed
        self.changes = 0  # bumped whenever ``pending`` changes (then it needs storing)
        self._low = min(self.pending.values(), default=None)  # the earliest held time

    def observe(self, t: int, user: str) -> int:
        """Record one valid event; the partition's clock after it."""
        c = self.clock
        if c is None:
            self.clock = t
            return t
        if t <= c:
            return c
        if t <= c + self.step or self.users == 1:  # ordinary traffic: _move, inlined
            self.clock = t
            low = self._low
            if low is not None and low <= t + self.step:
                self._move(t)
            return t
        if t < self.pending.get(user, t + 1):
            self.pending[user] = t
            self.changes += 1
            if len(self.pending) > self.keep:
                del self.pending[max(self.pending, key=self.pending.__getitem__)]
            self._low = min(self.pending.values())
        confirmed = self._confirmed()
        if confirmed is not None:
            self._move(confirmed)
        return self.clock  # type: ignore[return-value]

    def _confirmed(self) -> int | None:
        """The earliest unconfirmed time T with ``users`` distinct users in [T, T + step]."""
        times = sorted(self.pending.values())
        need = self.users
        for i in range(len(times) - need + 1):
            if times[i + need - 1] - times[i] <= self.step:
                return times[i]
        return None

    def _move(self, t: int) -> None:
        self.clock = t
        bound = t + self.step
        if self._low is not None and self._low <= bound:  # some held record is ordinary now
            self.pending = {u: x for u, x in self.pending.items() if x > bound}
            self._low = min(self.pending.values(), default=None)
            self.changes += 1

    # --- storage form (one small JSON value per partition) -----------------------------
    def dumps(self) -> str:
        """The unconfirmed records (the clock itself is the stored watermark).

        >>> ClockGuard(1, pending={"u": 7}).dumps()
        '{"u":7}'
        """
        return json.dumps(self.pending, separators=(",", ":"))

    @staticmethod
    def loads(raw: str | bytes | None) -> dict[str, int]:
        """Inverse of :meth:`dumps`; anything unreadable counts as nothing pending."""
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(u): int(t) for u, t in data.items() if isinstance(t, int)}
