"""The batch challenger's fit process: one spawned worker process per learner process,
started with the first candidate, which imports scikit-learn at once (so the first fit
does not pay for it) and exits when the process that started it is gone.

Spawned, not forked: the learner runs threads, and a fork would copy their locks.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor

_POOL: Executor | None = None
_POOL_LOCK = threading.Lock()


def _warm() -> None:
    import sklearn.ensemble  # noqa: F401  (the first fit does not pay for the import)


def _exit_with(parent: int) -> None:
    """In the worker process: exit once the process that started it is gone (a learner
    killed with SIGKILL cannot shut its pool down)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def pool() -> Executor:
    """The one worker process of every batch candidate in this process."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_exit_with, initargs=(os.getpid(),))
            _POOL.submit(_warm)
        return _POOL


def warm_up() -> None:
    """Wait until the worker process is up and has imported scikit-learn."""
    pool().submit(_warm).result()


def reset_pool() -> None:
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None:
            _POOL.shutdown(wait=False, cancel_futures=True)
        _POOL = None
