"""32 partitions and workers that join and leave mid-replay (Tansu + Redis + workers):
every user hash and every released training example equal those of one worker that
consumed the same log alone, and so does every timing-free counter. Rebalances move
partitions between workers without losing or doubling state or labels."""

from __future__ import annotations

import re
import signal
import threading
from pathlib import Path

import pytest

from offline.replay import replay
from tests.datagen import generate, write_csv
from tests.integration.conftest import Namespace, read_examples, wait_until
from tests.integration.test_feature_path import _assert_same_hashes, _stable

pytestmark = pytest.mark.integration
PARTITIONS = "32"


def _owned(ns: Namespace) -> list[set[int]]:
    """Each worker's latest assignment, from its log."""
    out = []
    for path in ns.logs:
        found = re.findall(rf"partitions assigned: events-{ns.name}\[([0-9, ]*)\]",
                           path.read_text(errors="replace"))
        out.append({int(p) for p in found[-1].split(",") if p.strip()} if found else set())
    return out


def test_workers_joining_and_leaving_change_nothing(services, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The log goes out in four parts; each membership change (a worker joins, joins,
    the first leaves) is made while a part is being sent, and the next part waits until
    the group has settled on it, so every change lands mid-replay whatever the speed of
    the machine."""
    rows = generate(users=600, days=50, seed=11)
    parts = []
    for i in range(4):
        parts.append(tmp_path / f"part{i}.csv")
        write_csv(rows[i * len(rows) // 4:(i + 1) * len(rows) // 4], str(parts[i]))
    # the idle-partition rule off: the sender pauses between parts (while the group
    # settles), and a partition quiet for CHURN_IDLE_PARTITION_SECONDS during a pause
    # would follow the others (README "Known gaps"), which one uninterrupted run does not
    env = {"CHURN_PARTITIONS": PARTITIONS, "CHURN_LABEL_SAMPLE_RATE": "0.5",
           "CHURN_LABEL_WARMUP_DAYS": "3", "CHURN_LOG_LEVEL": "info",
           "CHURN_IDLE_PARTITION_SECONDS": "0"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    alone, moving = Namespace(services, tmp_path / "a"), Namespace(services, tmp_path / "b")
    try:
        alone.extra_env.update(env)
        alone.start_worker()
        sent = sum(replay(p, alone.settings(), progress=False).sent for p in parts)
        alone.wait_consumed(sent)
        alone.wait_scored()

        moving.extra_env.update(env)
        first = moving.start_worker()
        wait_until(lambda: len(_owned(moving)[0]) == int(PARTITIONS), 60, "the first worker")
        replay(parts[0], moving.settings(), progress=False)

        def sending(part: Path) -> threading.Thread:
            t = threading.Thread(target=replay, args=(part, moving.settings()),
                                 kwargs={"progress": False, "rate": 2500})
            t.start()
            return t

        sender = sending(parts[1])
        moving.start_worker()  # joins while part 2 is sent
        wait_until(lambda: all(_owned(moving)), 60, "two workers own partitions")
        sender.join()
        sender = sending(parts[2])
        moving.start_worker()  # joins while part 3 is sent
        wait_until(lambda: all(_owned(moving)), 60, "three workers own partitions")
        sender.join()
        sender = sending(parts[3])
        first.send_signal(signal.SIGTERM)  # leaves while part 4 is sent
        assert first.wait(30) == 0
        sender.join()
        moving.wait_consumed(sent)
        moving.wait_scored()
        owned = _owned(moving)[1:]
        assert owned[0] | owned[1] == set(range(int(PARTITIONS))) and not owned[0] & owned[1]

        _assert_same_hashes(moving.user_hashes(), alone.user_hashes())
        released = alone.stats()["released"]
        assert released > 500
        late = [line for path in (*moving.logs, *alone.logs)
                for line in path.read_text(errors="replace").splitlines()
                if "not made in time" in line]
        assert read_examples(moving, released) == read_examples(alone, released), late
        # every timing-free counter too (clock:unconfirmed and snapshots used to end a few
        # off: a confirmed clock jump was committed with the segment before its record,
        # tests/unit/test_processor.py)
        a, b = (_stable(ns.stats()) for ns in (moving, alone))
        assert a == b, {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}
        assert len(a) >= 10
    finally:
        moving.stop()
        alone.stop()
