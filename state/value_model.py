"""The BG/NBD fit a worker serves, per partition, as the model's optional inputs.

With ``CHURN_VALUE_FIT_EVERY_DAYS`` > 0 the fit follows event time
(core/value_schedule.py): at the anchor of a fit day a partition stores its users'
summaries (:class:`state.value_rows.ValueRows`), and at every anchor it switches to the fit
that serves on that day. If that fit is not made yet although every partition delivered
its rows and the learner is alive, the anchor waits for it (up to
``CHURN_VALUE_FIT_WAIT_SECONDS``); otherwise the previous fit keeps serving and the miss
is counted (``late``): results then depend on timing, not only on the log.

Every score and snapshot uses the fit serving on its own reference day (``as_of``), among
the fits the worker knows: a sweep that runs behind the processor, a late event and a
partition behind the others all get their day's fit, whatever the worker did since.

With the schedule off (0), :meth:`ValueModel.refresh` serves the newest version whenever
it changes (``churnstream fit-value``). ``store`` None: fixed ``params`` (tests).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import numpy as np

from core.bgnbd import BGNBD
from core.features import DAY_MS, Aggregates
from core.value import bgnbd_inputs, summary_arrays
from core.value_schedule import inputs_by_day, is_fit_day, pick, serving_fit_day
from state.value_rows import ValueRows
from state.value_store import ValueStore

log = logging.getLogger(__name__)


class ValueModel:
    def __init__(self, store: ValueStore | None, horizon_days: int,
                 params: BGNBD | None = None, every_days: int = 0, lag_days: int = 7,
                 wait_seconds: float = 60.0, frequency_days: int = 365,
                 on_late: Callable[[], None] | None = None) -> None:
        self.store, self.horizon = store, horizon_days
        self.params, self.version = params, 0  # without the schedule: the newest fit
        self.every, self.lag, self.wait = every_days, lag_days, wait_seconds
        self.frequency_days = frequency_days
        self.rows = ValueRows(store.r, keys=store.keys) if store is not None else None
        self.known: dict[int, BGNBD] = {}  # fit day -> params, of the versions still kept
        self._versions: dict[int, int] = {}  # fit day -> version loaded
        self._resolved: dict[int, int] = {}  # partition -> the serving day it resolved
        self.late = 0
        self._warned: set[int] = set()
        self._timed_out: set[int] = set()  # days whose fit a wait gave up on
        self.on_late = on_late
        # the partitions this worker owns (None: all of them) and whether a rebalance is
        # under way: a fit waits for other workers' partitions, never for its own (they
        # are behind in this worker's own batch) nor through a rebalance (which waits
        # for the batch under way)
        self.owned: set[int] | None = None
        self.rebalancing = False

    @property
    def scheduled(self) -> bool:
        return self.store is not None and self.every > 0

    async def refresh(self) -> None:
        """Without the schedule: serve the newest fit (one read when nothing changed)."""
        if self.store is None or self.scheduled:
            return
        version = await self.store.version()
        if version != self.version:
            fit = await self.store.current()
            self.params = fit.params.bgnbd if fit is not None else None
            self.version = version

    async def at_anchor(self, partition: int, anchor_ms: int) -> None:
        """Run by the partition's anchor before its snapshots: deliver the rows of a fit
        day, then make sure the fit serving on this day is known."""
        if not self.scheduled:
            await self.refresh()
            return
        assert self.rows is not None
        day = anchor_ms // DAY_MS
        if is_fit_day(day, self.every):
            await self.rows.put(partition, day, self.frequency_days,
                                drop_before=day - self.every - self.lag)
        await self.select(partition, day)

    async def restore(self) -> None:
        """After a start: learn the fits that exist (no waiting; each score then picks the
        one serving on its own day)."""
        if self.scheduled:
            assert self.rows is not None
            await self._sync(await self.rows.fit_days())

    async def select(self, partition: int, day: int) -> None:
        """Make the fit serving on ``day`` known, waiting for it while it can come."""
        assert self.rows is not None
        want = serving_fit_day(day, self.every, self.lag)
        if self._resolved.get(partition) == want:
            return
        days = await self.rows.fit_days()
        why = ""
        if want not in days and want not in self._timed_out:  # at most one timeout
            days, why = await self._wait(want)
            if why.startswith("not made within"):
                self._timed_out.add(want)
        await self._sync(days)
        if want in days:
            self._resolved[partition] = want
        elif why or want in self._timed_out:
            why = why or "timed out before"
            self.late += 1
            if want not in self._warned:
                self._warned.add(want)
                log.warning("value fit of day %d not made in time (partition %d, %s): the "
                            "previous fit serves; scores now depend on timing", want,
                            partition, why)
            if self.on_late is not None:
                self.on_late()

    async def _wait(self, want: int) -> tuple[dict[int, int], str]:
        """Wait for the fit of ``want`` while it can come. Returns the fit days and, when
        it did not come although some partition delivered its rows, why."""
        assert self.rows is not None
        deadline = time.monotonic() + self.wait
        while True:
            # rows first, then the days: the learner sets the day, then drops the rows
            rows = bool(await self.rows.r.exists(self.rows.rows_key(want)))
            days = await self.rows.fit_days()
            if want in days or not rows:  # no rows: nobody delivered, no fit can come
                return days, ""
            missing = await self.rows.missing(want)
            why = (f"not made within {self.wait:g} s" if time.monotonic() >= deadline
                   else "no learner is running" if not await self.rows.learner_alive()
                   else self._behind(missing) if missing else "")
            if why:
                days = await self.rows.fit_days()
                return days, "" if want in days else why
            await asyncio.sleep(0.05)

    def _behind(self, missing: set[int]) -> str:
        """Why not to wait for ``missing`` partitions to deliver their rows ("": wait)."""
        if self.owned is None or missing & self.owned:
            return f"partitions {sorted(missing)} have not reached that day"
        if self.rebalancing:
            return f"a rebalance is under way (partitions {sorted(missing)} are behind)"
        return ""  # other workers' partitions: they come

    async def _sync(self, days: dict[int, int]) -> None:
        """Learn the served fits not known yet (``days`` tells whether any changed)."""
        assert self.rows is not None
        if any(v > 0 and d not in self.known for d, v in days.items()):
            self.known = await self.rows.served_fits()
            self._versions = {d: v for d, v in days.items() if d in self.known}
        if self.known:
            newest = max(self.known)
            self.params, self.version = self.known[newest], self._versions.get(newest, 0)

    def serving(self, day: int) -> BGNBD | None:
        """The fit serving on ``day`` among the known ones (None before the first)."""
        if not self.scheduled:
            return self.params
        return pick(self.known, day, self.every, self.lag)

    def inputs(self, aggs: list[Aggregates]) -> np.ndarray:
        """One row of VALUE_INPUT_NAMES per user, at each aggregate's reference time, under
        the fit serving on that day."""
        if not self.scheduled:
            return bgnbd_inputs(self.params, self.horizon, *summary_arrays(aggs))
        return inputs_by_day(self.serving, self.horizon, aggs)
