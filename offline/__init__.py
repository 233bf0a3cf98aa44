"""Offline work on log files: no broker, no Redis.

- :mod:`~offline.simulate`, :mod:`~offline.simulate_sparse`: the ground-truth
  simulators (e-commerce and sparse buy-till-you-die profiles);
- :mod:`~offline.replay`: a log file -> topic ``events`` (the one module here that
  talks to Kafka, as a producer);
- :mod:`~offline.evaluate`: the live stack's logic replayed in memory against the
  truth, with baselines; :mod:`~offline.value_fits`: its value-fit schedule;
  :mod:`~offline.report`: its report and plots.

Imports: ``core``, ``stream.topics``, and the learner's state
(:mod:`stream.learner.state`), which ``evaluate`` trains as the live learner does.
"""
