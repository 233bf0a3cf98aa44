"""The API's write path, keys, limits, CSV export and CORS, on real Tansu + Redis."""

from __future__ import annotations

import csv
import io
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from offline.replay import replay
from services.redis_server import free_port
from tests.datagen import generate, write_csv
from tests.integration.conftest import Namespace, http_json, read_topic, wait_until

pytestmark = pytest.mark.integration
T = 1_700_000_000_000


def call(url: str, method: str = "GET", body: object = None, key: str | None = None,
         raw: bytes | None = None, headers: dict[str, str] | None = None,
         ) -> tuple[int, bytes, dict[str, str]]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    if key is not None:
        req.add_header("X-API-Key", key)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def ev(i: int, user: str = "p1", **kw: object) -> dict[str, object]:
    return {"event_id": f"post-{i}", "user_id": user, "event_type": "view",
            "event_time": T + i, **kw}


def test_post_events_keys_and_limits(namespace: Namespace) -> None:
    ns = namespace
    ns.extra_env.update(CHURN_API_KEYS="k-one,k-two", CHURN_API_MAX_EVENTS="5",
                        CHURN_API_MAX_BODY_BYTES="2048")
    ns.start_worker()
    api = ns.start_api()
    url = api + "/v1/events"
    # keys: none -> 401, wrong -> 403, right -> 202 once Kafka acknowledged
    assert call(url, "POST", ev(0))[0] == 401
    assert call(url, "POST", ev(0), key="nope")[0] == 403
    code, body, _ = call(url, "POST", ev(0), key="k-two")
    assert (code, json.loads(body)) == (202, {"accepted": 1})
    no_id = {k: v for k, v in ev(3).items() if k != "event_id"}  # id derived from content
    code, body, _ = call(url, "POST", [ev(1), ev(2, "p2"), no_id], key="k-one")
    assert (code, json.loads(body)) == (202, {"accepted": 3})
    # all or nothing: one bad event -> 422 with each reason, nothing sent
    code, body, _ = call(url, "POST", [ev(4), {**ev(5), "price": -1}, {"user_id": "x"}],
                         key="k-one")
    detail = json.loads(body)["detail"]
    assert code == 422 and detail["error"] == "invalid_events"
    assert [(i["index"], i["reason"].split(":")[0]) for i in detail["items"]] == [
        (1, "price"), (2, "event_type")]
    assert call(url, "POST", [ev(i) for i in range(6)], key="k-one")[0] == 422  # > 5 events
    assert call(url, "POST", [], key="k-one")[0] == 422
    assert call(url, "POST", raw=b"{not json", key="k-one")[0] == 422
    big = [ev(i, user="u" * 500) for i in range(5)]
    assert call(url, "POST", big, key="k-one")[0] == 413
    # exactly the 4 acknowledged events reached Kafka and the worker
    ns.wait_consumed(4)
    sent = read_topic(ns.env["CHURN_KAFKA_BOOTSTRAP"], ns.env["CHURN_EVENTS_TOPIC"], 4, 5)
    assert len(sent) == 4
    wait_until(lambda: http_json(api + "/v1/users/p2")[0] == 200, 30, "p2 scored")
    # reads stay open unless CHURN_API_READ_AUTH; probes and metrics always are
    assert http_json(api + "/v1/top?k=1")[0] == 200
    assert http_json(api + "/healthz")[0] == 200
    assert call(api + "/metrics")[0] == 200


def test_read_auth_cors_and_kafka_down(namespace: Namespace) -> None:
    ns = namespace
    ns.extra_env.update(CHURN_API_KEYS="secret", CHURN_API_READ_AUTH="true",
                        CHURN_CORS_ORIGINS="https://dash.example",
                        CHURN_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}",  # nobody listens
                        CHURN_API_PRODUCE_TIMEOUT="2")
    api = ns.start_api()
    assert call(api + "/v1/top?k=1")[0] == 401
    assert call(api + "/v1/status", key="wrong")[0] == 403
    assert call(api + "/v1/top?k=1", key="secret")[0] == 200
    assert call(api + "/v1/model", key="secret")[0] == 200
    code, body, _ = call(api + "/v1/events", "POST", ev(0), key="secret")
    detail = json.loads(body)["detail"]
    assert code == 503 and detail["error"] == "kafka_unavailable" and detail["accepted"] == 0
    _, _, headers = call(api + "/healthz", headers={"Origin": "https://dash.example"})
    assert headers.get("access-control-allow-origin") == "https://dash.example"
    _, _, headers = call(api + "/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in headers


def test_csv_export_equals_the_json_ranking(namespace: Namespace, tmp_path: Path) -> None:
    ns = namespace
    rows = generate(users=300, days=40, seed=9)
    path = tmp_path / "events.csv"
    write_csv(rows, str(path))
    ns.start_worker()
    api = ns.start_api()
    _, _, headers = call(api + "/healthz", headers={"Origin": "https://dash.example"})
    assert "access-control-allow-origin" not in headers  # CORS is off by default
    report = replay(path, ns.settings(), progress=False)
    ns.wait_consumed(report.sent)
    ns.wait_scored()
    _, page = http_json(f"{api}/v1/top?k=10000")
    code, body, headers = call(f"{api}/v1/top?format=csv")
    assert code == 200 and headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(body.decode())))
    assert len(table) == page["ranked"] == len(page["items"]) > 200
    for row, item in zip(table, page["items"], strict=True):
        assert (row["user_id"], int(row["rank"]), row["tier"]) == (
            item["user_id"], item["rank"], item["tier"])
        assert float(row["risk"]) == item["risk"] and float(row["percentile"]) == pytest.approx(
            item["percentile"])
    for row in table[:15]:  # the top reason is the user's first reason
        _, user = http_json(f"{api}/v1/users/{row['user_id']}")
        assert row["top_reason"] == (user["reasons"][0]["feature"] if user["reasons"] else "")
    _, high = http_json(f"{api}/v1/top?tier=high&offset=2")
    code, body, _ = call(f"{api}/v1/top?tier=high&offset=2&format=csv")
    assert [r["user_id"] for r in csv.DictReader(io.StringIO(body.decode()))] == [
        i["user_id"] for i in high["items"]]
