"""``POST /v1/events``: validate like the worker, produce to Kafka, answer once acked."""

from __future__ import annotations

import contextlib
import json
import warnings
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from api.deps import metrics_of, producer_of, settings_of
from api.errors import responses
from core.events import Event, Rejected, latest_allowed_ms, parse_event
from core.settings import Settings

router = APIRouter(prefix="/v1", tags=["events"])

EXAMPLE = {"event_id": "e-1", "user_id": "u42", "event_type": "purchase",
           "event_time": "2019-11-01T00:00:08Z", "price": 19.99, "brand": "acme"}


class Accepted(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"accepted": 2}]})

    accepted: int = Field(description="Events acknowledged by Kafka (all of them)")


class Producer:
    """A kafka-python producer created on first use; sends wait for the broker's ack."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: Any = None

    def _get(self) -> Any:
        if self._producer is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                from kafka import KafkaProducer
            timeout_ms = int(self.settings.api_produce_timeout * 1000)
            # api_version pinned: probing it blocks for long when the broker is down
            self._producer = KafkaProducer(
                bootstrap_servers=self.settings.kafka_bootstrap, acks="all", retries=3,
                linger_ms=2, max_block_ms=timeout_ms, request_timeout_ms=timeout_ms,
                api_version=(2, 5, 0))
        return self._producer

    def send(self, events: list[Event]) -> None:
        """Blocking: every event acknowledged, or an exception (nothing is retried here)."""
        prod = self._get()
        topic = self.settings.events_topic
        try:
            futures = [prod.send(topic, key=e.user_id.encode(), value=e.to_json())
                       for e in events]
            prod.flush(timeout=self.settings.api_produce_timeout)
            for f in futures:
                f.get(timeout=self.settings.api_produce_timeout)
        except Exception:
            self._discard(prod)
            raise

    def _discard(self, prod: Any) -> None:
        """After a failed send the client is told to retry, so nothing of that body may go
        out later from the producer's buffer: drop the producer without flushing (its
        unsent batches are aborted); the next request opens a new one. Bytes already on
        the wire may still land: a retried body then is deduped by its event ids."""
        if self._producer is prod:
            self._producer = None
        with contextlib.suppress(Exception):
            prod.close(timeout=0)
        sender = getattr(prod, "_sender", None)  # close() stops early when flush(0) raises
        if sender is not None and sender.is_alive():
            sender.force_close()

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=2)
            self._producer = None


TEXT_FIELDS = ("event_id", "user_id", "brand", "category", "product_id", "session_id")


def _numeric_text(item: Any) -> Rejected | None:
    """Here the text fields must be JSON strings (docs/design.md section 3). The parser would
    take a number as its decimal text, whose length (``1e-300`` has 300 digits) no
    schema can state; a Kafka producer or a replayed file still may."""
    if isinstance(item, dict):
        for name in TEXT_FIELDS:
            value = item.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return Rejected(f"{name}:invalid_type")
    return None


# the body's schema (api/event_schema.py) depends on the settings: api/openapi.py sets it
@router.post("/events", status_code=202, response_model=Accepted,
             responses=responses(413, 422, 503),
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "examples": {"one": {"value": EXAMPLE},
                              "many": {"value": [EXAMPLE, {**EXAMPLE, "event_id": "e-2",
                                                           "event_type": "view"}]}}}}}})
async def post_events(request: Request) -> Accepted:
    """One event (an object) or a list of them, validated with the worker's schema.

    All or nothing: any invalid event -> 422 with the reason of each, nothing sent.
    202 only after Kafka acknowledged every event; 503 if Kafka cannot be reached
    (nothing is acknowledged, so the client retries). A missing ``event_id`` is
    derived from the event's content, so a retried body is deduped by the worker.
    """
    settings: Settings = settings_of(request)
    raw = await request.body()
    if len(raw) > settings.api_max_body_bytes:
        raise HTTPException(413, detail={"error": "body_too_large",
                                         "max_bytes": settings.api_max_body_bytes})
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(422, detail={"error": "invalid_json"}) from None
    items = body if isinstance(body, list) else [body]
    if not items or len(items) > settings.api_max_events:
        raise HTTPException(422, detail={"error": "event_count",
                                         "min": 1, "max": settings.api_max_events})
    allowed = settings.allowed_types()
    latest = latest_allowed_ms(settings.max_future_seconds)
    events: list[Event] = []
    errors = []
    for i, item in enumerate(items):
        ev = _numeric_text(item) or parse_event(json.dumps(item, sort_keys=True).encode(),
                                                allowed, derive_id=True, latest_ms=latest)
        if isinstance(ev, Rejected):
            errors.append({"index": i, "reason": ev.reason})
        else:
            events.append(ev)
    metrics = metrics_of(request)
    if errors:
        metrics.events_rejected.inc(len(errors))
        raise HTTPException(422, detail={"error": "invalid_events", "items": errors})
    producer: Producer = producer_of(request)
    try:
        await run_in_threadpool(producer.send, events)
    except Exception as exc:  # kafka-python raises several kinds; none is an ack
        raise HTTPException(503, detail={
            "error": "kafka_unavailable", "accepted": 0,
            "message": f"{type(exc).__name__}: {exc}; nothing was acknowledged, retry"},
            headers={"Retry-After": "5"}) from None
    metrics.events.inc(len(events))
    return Accepted(accepted=len(events))
