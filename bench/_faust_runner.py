"""Subprocess for bench/worker_throughput.py: run one faust worker until N events are done.

mode ``trivial``: an agent that only deserializes (faust's JSON codec) and counts.
mode ``trivial-gc``: the same with the worker's garbage-collector settings.
mode ``full``: the real churnstream worker (stream.worker.app.build_app).
Writes ``{"events": n, "seconds": t}`` (first event to last) to the output file.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import faust

from core.gc_tuning import tune_gc
from core.settings import Settings
from stream.lifecycle import Worker
from stream.worker.app import build_app, faust_settings


def main() -> None:
    mode, n_expected, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    sys.argv = sys.argv[:1]
    settings = Settings.load()
    state = {"n": 0, "t0": 0.0, "c0": 0.0}

    prof = None
    if os.environ.get("BENCH_PROFILE"):
        import cProfile

        prof = cProfile.Profile()

    def done() -> None:
        if prof is not None:
            prof.disable()
            prof.dump_stats(os.environ["BENCH_PROFILE"] + "." + mode)
        with open(out, "w") as fh:
            json.dump({"events": state["n"], "seconds": time.perf_counter() - state["t0"],
                       "cpu": time.process_time() - state["c0"]}, fh)
        os.kill(os.getpid(), signal.SIGTERM)

    if mode.startswith("trivial"):
        app = faust.App(settings.app_id, **faust_settings(settings))
        topic = app.topic(settings.events_topic, value_serializer="json")
        if mode == "trivial-gc":  # the worker's GC settings, for an apples-to-apples ratio

            @app.task
            async def gc_settings() -> None:
                tune_gc()


        @app.agent(topic)
        async def consume(stream: faust.StreamT) -> None:
            async for _value in stream:
                if state["n"] == 0:
                    state["t0"], state["c0"] = time.perf_counter(), time.process_time()
                    if prof is not None:
                        prof.enable()
                state["n"] += 1
                if state["n"] == n_expected:
                    done()
    else:
        app, proc, lifecycle = build_app(settings)
        inner = proc.process

        async def counting(records):  # type: ignore[no-untyped-def]
            if state["n"] == 0:
                state["t0"], state["c0"] = time.perf_counter(), time.process_time()
                if prof is not None:
                    prof.enable()
            result = await inner(records)
            state["n"] += len(records)
            if state["n"] >= n_expected:
                done()
            return result

        proc.process = counting  # type: ignore[method-assign]
    if mode.startswith("trivial"):
        worker = faust.Worker(app, loglevel="error", redirect_stdouts=False, quiet=True)
    else:  # the real worker's (stream/lifecycle.py: no spinner, bounded shutdown)
        worker = Worker(app, lifecycle, loglevel="error", redirect_stdouts=False, quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
