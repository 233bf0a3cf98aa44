"""schemathesis against the live API (uvicorn, real Tansu + Redis + a worker), with and
without API keys: every check, every operation, zero 5xx and zero spec violations.

Phases: examples, coverage (boundaries, missing and wrong-typed parameters) and fuzzing
(EXAMPLES generated cases per operation, positive and negative). Every built-in check
runs (``call_and_validate`` with no ``checks=`` runs all of them). Not applicable
here, and said so rather than skipped silently: the stateful phase and the checks
that need it (``use_after_free``, ``ensure_resource_availability``) need OpenAPI links
between operations that create and read resources; this API has none (events are
written to Kafka, users appear asynchronously), so those checks pass vacuously;
``max_response_time`` is off unless given a limit (latency is bench/'s business).
"""

from __future__ import annotations

import collections
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from api.main import create_app
from core.settings import Settings
from tests.integration.conftest import Namespace, http_json, wait_until

pytestmark = pytest.mark.integration
EXAMPLES = 200  # fuzzing examples per operation and key setting
KEY = "st-key"
CALLS: collections.Counter[str] = collections.Counter()


def _deployment(services: Any, tmp: Any, keys: bool) -> Iterator[Namespace]:
    ns = Namespace(services, tmp)
    if keys:
        ns.extra_env.update(CHURN_API_KEYS=f"other,{KEY}", CHURN_API_READ_AUTH="true")
    ns.start_worker()
    api = ns.start_api()
    # the user of the documented example exists (its newest event in 2019-11)
    req = urllib.request.Request(api + "/v1/events", method="POST", data=json.dumps(
        {"event_id": "st-1", "user_id": "u42", "event_type": "purchase",
         "event_time": "2019-11-01T00:00:08Z", "price": 19.99}).encode(),
        headers={"Content-Type": "application/json", "X-API-Key": KEY})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 202
    headers = {"X-API-Key": KEY} if keys else {}

    def scored() -> bool:
        req = urllib.request.Request(api + "/v1/users/u42", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    wait_until(scored, 60, "u42 scored")
    try:
        yield ns
    finally:
        ns.stop()
        for name in sorted(CALLS):  # shown with -rP / -s: examples run per operation
            print(f"schemathesis {name}: {CALLS[name]} requests")
        CALLS.clear()


@pytest.fixture(scope="module")
def open_api(services: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Namespace]:
    yield from _deployment(services, tmp_path_factory.mktemp("st-open"), keys=False)


@pytest.fixture(scope="module")
def keyed_api(services: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Namespace]:
    yield from _deployment(services, tmp_path_factory.mktemp("st-keys"), keys=True)


def _schema(settings: Settings) -> Any:
    """The document the live API serves (a test checks that it is), loaded at import:
    schemathesis 4.32's lazy ``from_fixture`` does not run on pytest 9.2. With keys,
    schemathesis sends the right one through its OpenAPI-aware auth (so it knows when
    a negative case left it out), and ``ignored_auth`` also tries each secured
    operation without a key and with a wrong one, wanting 401/403."""
    config: dict[str, Any] = {"generation": {"max-examples": EXAMPLES}}
    if settings.api_keys:
        config["auth"] = {"openapi": {"APIKeyHeader": {"api_key": KEY}}}
    return schemathesis.openapi.from_dict(create_app(settings).openapi(),
                                          config=SchemathesisConfig.from_dict(config))


OPEN = Settings(_env_file=None, api_keys=[], api_read_auth=False)
KEYED = Settings(_env_file=None, api_keys=["other", KEY], api_read_auth=True)
open_schema, keyed_schema = _schema(OPEN), _schema(KEYED)


def test_the_documents_are_the_served_ones(open_api: Namespace, keyed_api: Namespace) -> None:
    for ns, conf in ((open_api, OPEN), (keyed_api, KEYED)):
        assert http_json(f"{ns.api_url}/openapi.json")[1] == create_app(conf).openapi()
    spec = create_app(KEYED).openapi()
    secured = {f"{m.upper()} {p}" for p, ops in spec["paths"].items()
               for m, op in ops.items() if op.get("security")}
    assert secured == {f"GET {p}" for p in ("/v1/users/{user_id}", "/v1/top", "/v1/tiers",
                                             "/v1/model", "/v1/segments", "/v1/status",
                                             "/v1/overview", "/v1/alerts")} | {
        "POST /v1/events"}
    assert not any(op.get("security") for ops in create_app(OPEN).openapi()["paths"].values()
                   for op in ops.values())


RELAXED = settings(deadline=None, suppress_health_check=list(HealthCheck))


@open_schema.parametrize()
@RELAXED
def test_api_without_keys(case: Any, open_api: Namespace) -> None:
    CALLS[f"open {case.operation.label}"] += 1
    case.call_and_validate(base_url=open_api.api_url, timeout=30)


@keyed_schema.parametrize()
@RELAXED
def test_api_with_keys(case: Any, keyed_api: Namespace) -> None:
    CALLS[f"keys {case.operation.label}"] += 1
    case.call_and_validate(base_url=keyed_api.api_url, timeout=30)
