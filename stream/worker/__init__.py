"""``churnstream worker``: the faust app that turns events into state, scores and labels.

- :mod:`~stream.worker.app`: the composition root (faust app, tasks, timers);
- :mod:`~stream.worker.consumer`: the batch loop on topic ``events`` (aiokafka);
- :mod:`~stream.worker.processor`: one batch of records -> Redis, atomically;
- :mod:`~stream.worker.live`: scores, reasons, tiers and alerts of a batch;
- :mod:`stream.anchors` (shared with ``evaluate``): daily label snapshots and releases;
- :mod:`~stream.worker.sweeper`: rescoring silent users as event time passes;
- :mod:`~stream.worker.recovery`: rebuilding state after Redis lost it;
- :mod:`~stream.worker.records`, :mod:`~stream.worker.metrics`: the record type and
  every Prometheus metric of the worker.

Imports: ``core``, ``state``, ``stream.topics``/``stream.lifecycle``.
"""
