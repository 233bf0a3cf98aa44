"""``churnstream replay`` on JSON Lines: derived ids, rejects with reasons, rate, progress."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.integration.conftest import ROOT, read_topic

pytestmark = pytest.mark.integration


def test_jsonl_replay_reports_and_sends(namespace, tmp_path) -> None:  # type: ignore[no-untyped-def]
    good = [{"user_id": f"u{i % 7}", "event_type": "view", "event_time": 1572566400000 + i}
            for i in range(300)]
    lines = [json.dumps(g).encode() for g in good]
    lines.insert(10, lines[3])  # an identical row: same derived id
    lines.insert(20, b'{"event_id": "x", "user_id": "u", "event_type": "view"}')
    lines.insert(30, b"not json at all")
    lines.insert(40, b'{"user_id": "u\xff", "event_type": "view", "event_time": 1}')
    lines.insert(50, b"")
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "cli.main", "replay", str(path), "--rate",
                          "200"], cwd=ROOT, env=namespace.env, capture_output=True, timeout=120)
    elapsed = time.monotonic() - t0
    assert out.returncode == 0, out.stderr.decode()
    report = out.stdout.decode()
    assert "rows read 304, sent 301, rejected 3" in report
    for reason in ("event_time:missing", "payload:invalid_json", "payload:invalid_utf8"):
        assert reason in report
    assert b"rows/s" in out.stderr  # progress while it runs
    assert elapsed >= 304 / 200 * 0.9  # --rate held it back
    sent = [json.loads(v) for v in read_topic(namespace.svc.broker.bootstrap,
                                              f"events-{namespace.name}", 301)]
    assert len(sent) == 301
    ids = [s["event_id"] for s in sent]
    assert len(set(ids)) == 300  # the repeated row kept its id; all others differ
    dlq = [json.loads(v) for v in read_topic(namespace.svc.broker.bootstrap,
                                             f"dlq-{namespace.name}", 3)]
    assert sorted(d["reason"] for d in dlq) == ["event_time:missing", "payload:invalid_json",
                                               "payload:invalid_utf8"]
