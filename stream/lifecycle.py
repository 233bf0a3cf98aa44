"""How a worker stops: a crashed agent ends the process, and every stop is bounded.

The worker's state is in Redis and moves one transaction per batch, Kafka offsets are
committed only for acknowledged batches, and every DLQ, alert and training message is
acknowledged by the broker before its batch is. So a worker may stop at any instant
without losing anything: what was not acknowledged is read again by the next owner of
the partition and skipped or applied exactly once by the offsets stored with the state.

That makes two rules safe:

- **A crashed agent ends the process** (exit status 70, ``EX_SOFTWARE``) instead of
  leaving a worker that looks alive and consumes nothing: a supervisor (systemd,
  Kubernetes, docker-compose ``restart:``) starts a fresh one, and the crash is one
  CRITICAL log line with its reason.
- **Every stop is bounded**: SIGTERM/SIGINT (or a crash) starts faust's graceful
  shutdown, and if that has not finished within ``CHURN_SHUTDOWN_TIMEOUT`` seconds (a
  batch retrying against an unreachable Redis, a stream waiting for acknowledgements
  that a crashed agent will never give) the process exits anyway.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import faust

log = logging.getLogger("churnstream.worker")

EX_OK = 0
EX_SOFTWARE = 70  # sysexits.h: an internal error; the supervisor should restart us


class Lifecycle:
    """Crash and shutdown policy of one worker process (see the module docstring)."""

    def __init__(self, app: faust.App, shutdown_timeout: float = 8.0) -> None:
        self.app = app
        self.shutdown_timeout = shutdown_timeout
        self.crashed: BaseException | None = None
        self.worker: faust.Worker | None = None
        self._watchdog: threading.Timer | None = None
        # told of a crash before the stop (the worker's heartbeat says "crashed")
        self.on_crash: Callable[[BaseException], Awaitable[None]] | None = None

    @property
    def exit_code(self) -> int:
        return EX_SOFTWARE if self.crashed is not None else EX_OK

    def watch(self, fut: asyncio.Future[Any]) -> None:
        """Done-callback for a background batch: a failure crashes the worker at once
        (not only when the agent next awaits it)."""
        if not fut.cancelled() and fut.exception() is not None:
            self.crash(fut.exception(), "apply_events")  # type: ignore[arg-type]

    def crash(self, exc: BaseException, where: str) -> None:
        if self.crashed is not None:
            return
        self.crashed = exc
        log.critical("%s crashed (%s: %s); the worker stops and exits %d so that a "
                     "supervisor restarts it (unacknowledged events are read again)",
                     where, type(exc).__name__, exc, EX_SOFTWARE)
        # the crashed batch is never acknowledged: don't wait for it on the way out
        self.app.conf.stream_wait_empty = False
        self.arm()
        if self.on_crash is not None:
            report = asyncio.ensure_future(asyncio.wait_for(self.on_crash(exc), 2.0))
            report.add_done_callback(lambda f: f.cancelled() or f.exception() or None)
            report.add_done_callback(lambda _: self.stop())
        else:
            self.stop()

    def stop(self) -> None:
        """Start the graceful shutdown, bounded by the watchdog."""
        self.arm()
        if self.worker is not None:
            self.worker._schedule_shutdown(signal.SIGTERM)

    def arm(self) -> None:
        """Exit the process ``shutdown_timeout`` seconds from now, whatever is pending."""
        if self._watchdog is not None:
            return
        timer = threading.Timer(self.shutdown_timeout, self._expire)
        timer.daemon = True
        timer.start()
        self._watchdog = timer

    def _expire(self) -> None:
        log.error("shutdown did not finish within %.1fs; exiting %d",
                  self.shutdown_timeout, self.exit_code)
        logging.shutdown()
        sys.stderr.flush()
        os._exit(self.exit_code)


class Worker(faust.Worker):
    """faust's worker with :class:`Lifecycle`'s bounded shutdown on every signal."""

    def __init__(self, app: faust.App, lifecycle: Lifecycle, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.lifecycle = lifecycle
        lifecycle.worker = self

    def _schedule_shutdown(self, signal: signal.Signals) -> None:
        self.lifecycle.arm()
        super()._schedule_shutdown(signal)

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        # no start-up spinner: it sets the root logger to DEBUG (its handler filters), and
        # then every debug call of aiokafka and faust (one per message produced) builds a
        # log record that nobody prints: 3.5 % of the worker's busy time in bench/
        self.spinner = None
        super().on_setup_root_logger(logger, level)


def run(worker: Worker) -> int:
    """Run until stopped; the process exit status (0, or 70 after a crash)."""
    try:
        worker.execute_from_commandline()
    except SystemExit:
        pass
    except Exception as exc:  # raised from faust's start-up
        worker.lifecycle.crashed = worker.lifecycle.crashed or exc
    return worker.lifecycle.exit_code
