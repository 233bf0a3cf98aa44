"""docker-compose.yml and the Dockerfile, checked without a Docker engine."""

from __future__ import annotations

from pathlib import Path

import yaml

from cli.main import build_parser
from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_and_dependencies() -> None:
    services = compose()["services"]
    assert {"kafka", "redis", "worker", "learner", "api"} <= set(services)
    for name, svc in services.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, (name, dep)
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], (name, dep)


def test_app_services_use_real_commands_and_settings() -> None:
    services = compose()["services"]
    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    fields = {f"CHURN_{name.upper()}" for name in Settings.model_fields}
    for name in ("worker", "learner", "api", "simulator"):
        svc = services[name]
        assert svc["build"] == "."
        assert svc["command"][0] in commands, name
        env = svc["environment"]
        assert set(env) <= fields, set(env) - fields
        assert env["CHURN_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert env["CHURN_REDIS_URL"].startswith("redis://redis:6379")
    api = services["api"]
    port = api["command"][api["command"].index("--port") + 1]
    assert f"{port}:{port}" in api["ports"]


def test_redis_is_durable_and_compact() -> None:
    cmd = compose()["services"]["redis"]["command"]
    assert cmd[cmd.index("--appendonly") + 1] == "yes"
    assert cmd[cmd.index("--appendfsync") + 1] == "always"  # acked batches survive a crash
    assert int(cmd[cmd.index("--hash-max-listpack-value") + 1]) >= 4096


def test_dockerfile_copies_every_package_and_runs_as_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for pkg in ("core", "state", "stream", "api", "offline", "services", "cli"):
        assert f"COPY {pkg} ./{pkg}" in text
        assert (ROOT / pkg / "__init__.py").exists()
    assert "USER churn" in text and text.count("FROM ") == 2


def test_prometheus_service_mounts_the_rules_and_scrapes_the_app_ports() -> None:
    services = compose()["services"]
    prom = services["prometheus"]
    for volume in prom["volumes"]:
        src = volume.split(":")[0]
        if src.startswith("./"):
            assert (ROOT / src).exists(), src
    cfg = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert cfg["rule_files"] == ["rules.yml"]
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    s = Settings()
    assert jobs["churnstream-worker"]["dns_sd_configs"][0]["port"] == s.worker_metrics_port
    assert jobs["churnstream-learner"]["static_configs"][0]["targets"] == [
        f"learner:{s.learner_metrics_port}"]
    api_port = services["api"]["command"][services["api"]["command"].index("--port") + 1]
    assert jobs["churnstream-api"]["static_configs"][0]["targets"] == [f"api:{api_port}"]
    env = services["worker"]["environment"]
    assert env["CHURN_METRICS_HOST"] == "0.0.0.0"  # reachable from the prometheus container


def test_grafana_is_provisioned_and_private() -> None:
    graf = compose()["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in graf["volumes"])
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert mounts["./deploy/grafana/dashboards"] == "/var/lib/grafana/dashboards"
    for src in mounts:
        assert (ROOT / src).is_dir(), src
    assert graf["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert graf["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_the_cluster_profile_is_a_second_deployment_on_three_primaries() -> None:
    """``--profile cluster``: three Redis Cluster primaries joined once, two workers, a
    learner and an API on 32 partitions, with topics and a group of their own."""
    services = compose()["services"]
    nodes = [n for n, s in services.items() if "--cluster-enabled yes" in str(s.get("command"))]
    assert len(nodes) == 3
    init = services["redis-cluster-init"]
    assert "--cluster create" in init["command"][2]
    assert all(f"getent hosts {n} " in init["command"][2] for n in nodes)
    assert set(init["depends_on"]) == set(nodes)
    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    fields = {f"CHURN_{name.upper()}" for name in Settings.model_fields}
    default_env = services["worker"]["environment"]
    for name, cmd in (("worker-cluster", "worker"), ("learner-cluster", "learner"),
                      ("api-cluster", "api")):
        svc = services[name]
        assert svc["profiles"] == ["cluster"] and svc["command"][0] == cmd in commands
        env = svc["environment"]
        assert set(env) <= fields, set(env) - fields
        host = env["CHURN_REDIS_URL"].removeprefix("redis+cluster://").split(":")[0]
        assert host in nodes and env["CHURN_PARTITIONS"] == "32"
        Settings(redis_url=env["CHURN_REDIS_URL"], partitions=int(env["CHURN_PARTITIONS"]))
        assert svc["depends_on"]["redis-cluster-init"]["condition"] == \
            "service_completed_successfully"
        for own in ("CHURN_APP_ID", "CHURN_EVENTS_TOPIC", "CHURN_TRAINING_TOPIC",
                    "CHURN_ALERTS_TOPIC", "CHURN_DLQ_TOPIC"):
            assert env[own] != default_env.get(own, getattr(Settings(), own[6:].lower()))
    assert services["worker-cluster"]["deploy"]["replicas"] == 2
    for n in (*nodes, "redis-cluster-init"):
        assert services[n]["profiles"] == ["cluster"]
    assert services["api-cluster"]["ports"] == ["8001:8001"]
