"""The live Kafka processes, one room each, and what they share.

- ``stream/worker/``: ``churnstream worker``, the faust app on topic ``events``
  (features, scores, tiers, alerts, label snapshots, sweeps);
- ``stream/learner/``: ``churnstream learner``, the single consumer of
  ``training.examples`` (candidates, champion, checkpoints);
- ``stream/jobs/``: scheduled jobs beside the learner (the customer-value fit);
- here: what the processes share, the topics (:mod:`stream.topics`), how a
  process stops (:mod:`stream.lifecycle`), and the daily anchors of labels
  (:mod:`stream.anchors`), which the worker runs over Redis and ``evaluate``
  (``offline/``) over memory.

Imports: ``core`` (the shared modules here); a process room may also import ``state``,
this package's shared modules and ``stream.jobs``, never another process room
(``tests/unit/test_layout.py``).
"""
