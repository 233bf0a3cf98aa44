"""The alternative online pipelines tried for README "What moved the number": learning
rates and optimizers for ``StandardScaler | LogisticRegression``, as ``module:factory``
names for ``churnstream evaluate --pipelines`` (run with ``PYTHONPATH=bench``):

    PYTHONPATH=bench churnstream evaluate sim20k.jsonl --no-hgb --pipelines \\
        logreg,pipelines:lr001,pipelines:lr02,pipelines:lr05,pipelines:adam,pipelines:adagrad
"""

from __future__ import annotations

from typing import Any

from river import linear_model, optim, preprocessing

from core.model import make_pipeline


def lr001() -> Any:
    return make_pipeline("logreg", lr=0.001)


def lr02() -> Any:
    return make_pipeline("logreg", lr=0.02)


def lr05() -> Any:
    return make_pipeline("logreg", lr=0.05)


def adam() -> Any:
    return preprocessing.StandardScaler() | linear_model.LogisticRegression(
        optimizer=optim.Adam(0.005))


def adagrad() -> Any:
    return preprocessing.StandardScaler() | linear_model.LogisticRegression(
        optimizer=optim.AdaGrad(0.05))
