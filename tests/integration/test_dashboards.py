"""Every Grafana panel's PromQL parses and returns data from a real Prometheus that
scrapes a running worker, learner and API during a replay."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

import pytest
import yaml

from offline.replay import replay
from services.redis_server import free_port, stop_process, wait_port
from tests.datagen import generate, write_csv
from tests.integration.conftest import Namespace, http_json, wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))


def panel_queries() -> list[tuple[str, str, str]]:
    out = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for p in board["panels"]:
            for t in p["targets"]:
                out.append((board["title"], p["title"], t["expr"]))
    return out


def test_dashboards_are_provisioned() -> None:
    titles = {json.loads(p.read_text())["title"] for p in DASHBOARDS}
    assert titles == {"churnstream — pipeline", "churnstream — risk & model"}
    prov = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/churnstream.yml").read_text())
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    ds = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = ds["datasources"][0]["uid"]
    for path in DASHBOARDS:
        for p in json.loads(path.read_text())["panels"]:
            assert p["datasource"]["uid"] == uid and p["targets"], p["title"]


def query(prom: str, expr: str) -> dict:  # type: ignore[type-arg]
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:  # a PromQL error is a 400 with a body
        return json.loads(exc.read())  # type: ignore[no-any-return]


def test_every_panel_returns_data(namespace: Namespace, tmp_path: Path) -> None:
    exe = shutil.which("prometheus")
    assert exe, "prometheus missing: `make test` installs the Debian package prometheus"
    ns = namespace
    ports = {"worker": free_port(), "learner": free_port()}
    ns.extra_env.update(CHURN_WORKER_METRICS_PORT=str(ports["worker"]),
                        CHURN_LEARNER_METRICS_PORT=str(ports["learner"]),
                        CHURN_LABEL_SAMPLE_RATE="0.3", CHURN_MIN_LABELS="100",
                        CHURN_VALUE_MIN_CUSTOMERS="10",  # fits every 7 event-time days
                        CHURN_LABEL_WARMUP_DAYS="0")  # a short log: snapshots from day 1
    ns.start_worker()
    ns.spawn("learner")
    api = ns.start_api()
    prom_port = free_port()
    cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
           "scrape_configs": [
               {"job_name": "churnstream-worker",
                "static_configs": [{"targets": [f"127.0.0.1:{ports['worker']}"]}]},
               {"job_name": "churnstream-learner",
                "static_configs": [{"targets": [f"127.0.0.1:{ports['learner']}"]}]},
               {"job_name": "churnstream-api",
                "static_configs": [{"targets": [api.removeprefix("http://")]}]}]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115
    prom_proc = subprocess.Popen(
        [exe, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=log, stderr=subprocess.STDOUT)
    prom = f"http://127.0.0.1:{prom_port}"
    try:
        wait_port(prom_port, 30)
        rows = generate(users=300, days=45, seed=6)
        path = tmp_path / "events.csv"
        write_csv(rows, str(path))
        report = replay(path, ns.settings(), progress=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from kafka import KafkaProducer
        prod = KafkaProducer(bootstrap_servers=ns.env["CHURN_KAFKA_BOOTSTRAP"], acks="all")
        prod.send(ns.env["CHURN_EVENTS_TOPIC"], value=b"not json")  # for the DLQ panel
        prod.flush()
        prod.close()
        body = json.dumps({"user_id": "web-1", "event_type": "view",
                           "event_time": 1_600_000_000_000}).encode()
        for data in (body, b'{"user_id": ""}'):  # one accepted, one refused
            req = urllib.request.Request(api + "/v1/events", data=data, method="POST",
                                         headers={"Content-Type": "application/json"})
            with contextlib.suppress(urllib.error.HTTPError):
                urllib.request.urlopen(req, timeout=30).read()
        ns.wait_consumed(report.sent + 2)
        ns.wait_scored()
        for uid in list(ns.user_hashes())[:10]:
            http_json(f"{api}/v1/users/{uid.decode()}")
        r = ns.redis()
        wait_until(lambda: int(r.hget(f"t{ns.name}:model:meta", "examples") or 0)
                   == ns.stats()["released"], 60, "released examples learned")
        time.sleep(6)  # a few more scrapes after the last changes
        empty = []
        for board, title, expr in panel_queries():
            res = query(prom, expr.replace("$__rate_interval", "1m"))
            assert res["status"] == "success", (board, title, expr, res)
            if not res["data"]["result"]:
                empty.append((board, title, expr))
        assert not empty, empty
    finally:
        stop_process(prom_proc)
        log.close()
