"""Process-level tuning shared by the long-running services (worker, API)."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """Freeze start-up objects (framework modules, pydantic models, clients: never
    garbage) so collections skip them, and collect the young generation less often:
    each batch or request allocates many short-lived objects. Measured in the same run
    against an untuned baseline: the worker's CPU per event drops by about a fifth
    (bench/worker_throughput.py); the API's user lookup rate rises from 0.49x to 0.55x
    of a bare route (bench/api_latency.py)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 100)


def one_blas_thread() -> None:
    """Run numpy's BLAS (OpenBLAS) on this thread only. Its worker threads spin after
    each call: the worker's matrix products are small (a batch's users by a few dozen
    inputs), and on a 2-core machine the spinning took CPU from Redis. Measured in
    alternating full runs (bench/worker_throughput.py's full worker): 49-52 us of worker
    CPU per event with one thread, 63-77 with OpenBLAS's default."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")
