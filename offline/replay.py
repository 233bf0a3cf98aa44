"""``churnstream replay FILE``: stream a CSV (public e-commerce layout) or JSON Lines to Kafka.

Rows are read one at a time (never the whole file), mapped to the event
contract, validated with the same function as the worker, and sent to
``events`` (key = user_id). Rows that fail validation go to ``events.dlq`` with
the reason and the raw row, are counted by reason, and never stop the replay.
A missing ``event_id`` is derived from the raw row, so identical rows dedupe.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from core.events import Event, Rejected, derive_event_id, latest_allowed_ms, parse_event
from core.settings import Settings

CSV_COLUMNS = ("event_time", "event_type", "product_id", "category_id", "category_code",
               "brand", "price", "user_id", "user_session")


@dataclass
class ReplayReport:
    rows: int = 0
    sent: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"rows read {self.rows}, sent {self.sent}, rejected "
                 f"{sum(self.rejected.values())} in {self.seconds:.1f}s"]
        for reason, n in self.rejected.most_common():
            lines.append(f"  rejected {n:>8}  {reason}")
        return "\n".join(lines)


def _csv_rows(fh: IO[bytes]) -> Iterator[tuple[bytes, bytes | None, str | None]]:
    """(raw line, event JSON or None, reason if unmappable) per data row of a CSV file."""
    header: list[str] | None = None
    for raw in fh:
        line = raw.rstrip(b"\r\n")
        if not line:
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            yield line, None, "payload:invalid_utf8"
            continue
        try:
            cells = next(csv.reader(io.StringIO(text)))
        except (csv.Error, StopIteration):
            yield line, None, "payload:invalid_csv"
            continue
        if header is None:
            header = cells
            missing = [c for c in ("event_time", "event_type", "user_id") if c not in header]
            if missing:
                raise ValueError(f"CSV header lacks {missing}: {header}")
            continue
        if len(cells) != len(header):
            yield line, None, "payload:wrong_column_count"
            continue
        row = dict(zip(header, cells, strict=True))
        body: dict[str, object] = {"event_id": row.get("event_id") or derive_event_id(line)}
        for name in ("user_id", "event_type", "event_time"):
            if row.get(name):  # an empty cell is a missing value
                body[name] = row[name]
        for src, dst in (("price", "price"), ("brand", "brand"), ("product_id", "product_id"),
                         ("category_code", "category"), ("user_session", "session_id"),
                         ("category", "category"), ("session_id", "session_id")):
            if row.get(src):
                body[dst] = row[src]
        if "category" not in body and row.get("category_id"):
            body["category"] = row["category_id"]
        yield line, json.dumps(body, ensure_ascii=False).encode(), None


def _jsonl_rows(fh: IO[bytes]) -> Iterator[tuple[bytes, bytes | None, str | None]]:
    for raw in fh:
        line = raw.rstrip(b"\r\n")
        if line.strip():
            yield line, line, None


def read_rows(path: Path) -> Iterator[tuple[bytes, bytes | None, str | None]]:
    """Rows of a .csv or .jsonl/.json file (gzip not needed: stream from stdin with '-')."""
    fh: IO[bytes] = sys.stdin.buffer if str(path) == "-" else open(path, "rb")  # noqa: SIM115
    try:
        first = fh.peek(64)[:64] if hasattr(fh, "peek") else b""
        is_csv = path.suffix.lower() == ".csv" or (
            path.suffix.lower() not in (".jsonl", ".json", ".ndjson")
            and not first.lstrip().startswith(b"{"))
        yield from (_csv_rows(fh) if is_csv else _jsonl_rows(fh))
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()


def validate_row(payload: bytes, allowed: frozenset[str],
                 latest_ms: int | None = None) -> Event | Rejected:
    return parse_event(payload, allowed, derive_id=True, latest_ms=latest_ms)


def replay(path: Path, settings: Settings, rate: float | None = None,
           progress: bool = True, producer: Any = None) -> ReplayReport:
    """Send every row of ``path``; returns counts. ``rate`` = events/s (None: full speed)."""
    return replay_rows(read_rows(path), settings, rate, progress, producer, source=str(path))


def replay_rows(rows: Iterator[tuple[bytes, bytes | None, str | None]], settings: Settings,
                rate: float | None = None, progress: bool = True,
                producer: Any = None, source: str = "-") -> ReplayReport:
    """Validate and send rows ``(raw line, event JSON or None, reason or None)``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaProducer
    from stream.topics import ensure_topics

    ensure_topics(settings)
    prod = producer or KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                     linger_ms=20, batch_size=256 * 1024,
                                     max_in_flight_requests_per_connection=1, retries=5)
    allowed = settings.allowed_types()
    report = ReplayReport()
    start = last_print = time.monotonic()
    try:
        for line, payload, reason in rows:
            report.rows += 1
            if payload is not None:
                ev = validate_row(payload, allowed,
                                  latest_allowed_ms(settings.max_future_seconds))
                if isinstance(ev, Rejected):
                    reason = ev.reason
                else:
                    prod.send(settings.events_topic, key=ev.user_id.encode(),
                              value=ev.to_json())
                    report.sent += 1
            if reason is not None:
                report.rejected[reason] += 1
                dead = {"reason": reason, "source": source, "row": report.rows,
                        "raw": line.decode("utf-8", "replace")}
                prod.send(settings.dlq_topic, value=json.dumps(dead).encode())
            if rate:
                ahead = report.rows / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
            now = time.monotonic()
            if progress and now - last_print >= 1.0:
                last_print = now
                sys.stderr.write(f"\r{report.rows} rows, {report.sent} sent, "
                                 f"{report.rows / (now - start):.0f} rows/s ")
                sys.stderr.flush()
        prod.flush()
    finally:
        if producer is None:
            prod.close()
    report.seconds = time.monotonic() - start
    if progress:
        sys.stderr.write("\n")
    return report
