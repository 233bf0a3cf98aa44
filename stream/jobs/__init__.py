"""Scheduled jobs on the event-time clock (run beside the learner, or once from the CLI).

- :mod:`~stream.jobs.value_fit`: the BG/NBD / Gamma-Gamma fit of every partition's
  customer summaries at its anchor, and its schedule.

Imports: ``core``, ``state``.
"""
