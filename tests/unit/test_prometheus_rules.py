"""Prometheus config and alert rules: promtool checks and unit tests, and every metric
the rules use is one the processes export."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from prometheus_client import CollectorRegistry

from api.metrics import ApiMetrics
from stream.learner.metrics import LearnerMetrics
from stream.worker.metrics import WorkerMetrics

PROM = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def promtool(*args: str) -> str:
    exe = shutil.which("promtool")
    assert exe, "promtool missing: `make test` installs the Debian package prometheus"
    proc = subprocess.run([exe, *args], cwd=PROM, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_rules_and_config_are_valid() -> None:
    assert "SUCCESS: 8 rules found" in promtool("check", "rules", "rules.yml")
    promtool("check", "config", "--syntax-only", "prometheus.yml")


def test_every_alert_has_firing_and_silent_cases() -> None:
    assert "SUCCESS" in promtool("test", "rules", "rules.test.yml")
    tests = (PROM / "rules.test.yml").read_text()
    for alert in re.findall(r"- alert: (\w+)", (PROM / "rules.yml").read_text()):
        cases = re.findall(rf"alertname: {alert}\n\s+exp_alerts:( \[\])?", tests)
        assert any(c == "" for c in cases), f"{alert} never expected to fire"
        assert any(c == " []" for c in cases), f"{alert} never expected to stay silent"


def exported() -> set[str]:
    names = set()
    for kind in (WorkerMetrics, LearnerMetrics, ApiMetrics):
        registry = CollectorRegistry()
        kind(registry)  # type: ignore[operator]
        for family in registry.collect():
            names.add(family.name)
            names.update(s.name for s in family.samples)
            if family.type == "counter":
                names.add(family.name + "_total")
            if family.type == "histogram":
                names.update(family.name + s for s in ("_bucket", "_count", "_sum"))
    return names


def test_rules_use_only_exported_metrics() -> None:
    used = set(re.findall(r"\b(churn_[a-z0-9_]+)", (PROM / "rules.yml").read_text()))
    assert used and used <= exported(), used - exported()
