"""River's generic estimator checks on every registered pipeline (they need
scikit-learn, from the ``eval`` extra)."""

from __future__ import annotations

import pytest
from river.checks import check_estimator

from core.model import REGISTRY, make_pipeline


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registered_pipelines_pass_rivers_checks(name: str) -> None:
    check_estimator(make_pipeline(name))
