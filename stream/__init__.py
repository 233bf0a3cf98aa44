"""The live Kafka processes, one room each, and what they share.

- ``stream/worker/``: ``churnstream worker``, the faust app on topic ``events``
  (features, scores, tiers, alerts, label snapshots, sweeps);
- ``stream/learner/``: ``churnstream learner``, the single consumer of
  ``training.examples`` (candidates, champion, checkpoints);
- ``stream/jobs/``: scheduled jobs beside the learner (the customer-value fit);
- here: what the processes share, the topics (:mod:`stream.topics`) and how a
  process stops (:mod:`stream.lifecycle`).

Imports: ``core`` and ``state``; a process room may import this package's shared
modules and ``stream.jobs``, never another process room (``tests/unit/test_layout.py``).
"""
