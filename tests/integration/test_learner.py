"""The learner on real Kafka + Redis: prequential quality, checkpoints, exact resume."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import warnings

import pytest

from core.features import FEATURE_NAMES
from state.models import ModelStore
from state.redis_store import connect
from stream.learner.state import new_state
from stream.topics import ensure_topics
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration


def examples(n: int, seed: int = 3) -> list[bytes]:
    """Snapshots whose churn depends on silence and activity (plus noise features)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        f = {name: rng.random() * 5 for name in FEATURE_NAMES}
        silent = rng.expovariate(1 / 6)
        active = rng.randint(1, 20)
        f.update(days_since_last_event=silent, active_days_30d=float(active))
        churn_p = 1 / (1 + 2.718 ** -(0.35 * silent - 0.25 * active + 0.5))
        out.append(json.dumps({"user_id": f"u{i}", "t": i, "features": f,
                               "label": int(rng.random() < churn_p), "release": i}).encode())
    return out


def test_learner_resumes_exactly_after_sigkill(namespace) -> None:  # type: ignore[no-untyped-def]
    n = 3000
    namespace.extra_env.update(CHURN_LEARNER_CHECKPOINT_EVERY="200",
                               CHURN_LEARNER_CHECKPOINT_SECONDS="0.5", CHURN_LOG_LEVEL="info")
    settings = namespace.settings()
    ensure_topics(settings)
    data = examples(n)
    data.insert(1500, b"not an example")  # skipped, counted, offset still advances
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaProducer
    prod = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    for value in data:
        prod.send(settings.training_topic, value=value, partition=0)
    prod.flush()
    prod.close()

    r = namespace.redis()
    meta_key = f"t{namespace.name}:model:meta"

    def learned() -> int:
        raw = r.hget(meta_key, "examples")
        return int(raw) if raw is not None else 0

    learner = namespace.spawn("learner")
    wait_until(lambda: learned() >= 1000, 120, "1000 examples checkpointed")
    learner.send_signal(signal.SIGKILL)
    learner.wait()
    version_at_kill = int(r.hget(meta_key, "version"))
    assert learned() < n
    learner = namespace.spawn("learner")
    wait_until(lambda: learned() == n, 120, "every example learned")
    learner.send_signal(signal.SIGTERM)
    assert learner.wait(30) == 0

    async def final():  # type: ignore[no-untyped-def]
        client = connect(namespace.env["CHURN_REDIS_URL"])
        try:
            return await ModelStore(client, f"t{namespace.name}").load()
        finally:
            await client.aclose()

    ckpt = asyncio.run(final())
    assert ckpt is not None and ckpt.version > version_at_kill
    assert ckpt.examples == n and ckpt.offset == n  # n examples + 1 invalid: offsets 0..n
    assert ckpt.state.invalid == 1

    # an uninterrupted in-process run over the same examples ends in the same model
    ref = new_state(settings)
    for offset, value in enumerate(data):
        ref.learn(value, offset)
    scaler, lr = list(ckpt.state.pipeline.steps.values())
    if ref.champion is not None:  # its linear pair learns on arrays: into River's objects
        ref.champion.sync()
    ref_scaler, ref_lr = list(ref.pipeline.steps.values())
    assert lr.weights == ref_lr.weights and lr.intercept == ref_lr.intercept
    assert scaler.means == ref_scaler.means
    assert ckpt.state.summary() == ref.summary()
    assert ckpt.metrics["rocauc"] > 0.75  # prequential, on the last 10,000 (here: all)
    assert ckpt.metrics["label_0"] + ckpt.metrics["label_1"] == n
