"""Responses: the hot routes' JSON (orjson renders a user's 40-odd fields about 8x
faster than the standard library, bench/api_latency.py) and guarded CSV streams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Send

from api.errors import OUTAGES, log


class FastJSON(JSONResponse):
    """Like ``JSONResponse`` but rendered by orjson (NaN and infinities become null)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class GuardedStream(StreamingResponse):
    """A stream whose source may lose Redis half-way: the outage is logged in one line
    and the body is left unfinished (the server closes the connection, so the client
    sees a cut-off transfer, never a short body that looks complete), not a traceback.
    Build it with :func:`guarded`, which reads the first chunks before answering, so
    that an outage at the start is still a 503."""

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        try:
            async for chunk in self.body_iterator:
                if not isinstance(chunk, bytes | memoryview):
                    chunk = chunk.encode(self.charset)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except OUTAGES as exc:
            log.warning("stream cut off: redis unavailable (%s: %s)", type(exc).__name__, exc)
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def guarded(body: AsyncIterator[bytes], first: int = 2, **kwargs: Any) -> GuardedStream:
    """A :class:`GuardedStream` of ``body`` whose ``first`` chunks are read now."""
    head: list[bytes] = []
    try:
        for _ in range(first):
            head.append(await anext(body))
    except StopAsyncIteration:
        return GuardedStream(iter(head), **kwargs)

    async def rest() -> AsyncIterator[bytes]:
        for chunk in head:
            yield chunk
        async for chunk in body:
            yield chunk

    return GuardedStream(rest(), **kwargs)
