"""``churnstream learner``: every candidate scorer learns from the released labels.

- :mod:`~stream.learner.state`: what a checkpoint holds (the candidates, the champion,
  prequential metrics, the offset learned);
- :mod:`~stream.learner.app`: the consumer loop, checkpoints, the value-fit schedule;
- :mod:`~stream.learner.metrics`: every Prometheus metric of the learner.

Imports: ``core``, ``state``, ``stream.topics``, ``stream.jobs``.
"""
