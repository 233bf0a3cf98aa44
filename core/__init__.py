"""Pure domain logic, no I/O: events, features and long-range inputs, labels, tiers,
reasons, the candidate scorers and the champion, customer value, evaluation metrics,
settings.

Imports: nothing of this repository outside ``core``.
"""
