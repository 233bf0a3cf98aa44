"""The JSON response of the hot routes: orjson renders a user's 40-odd fields about
8x faster than the standard library (bench/api_latency.py)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse


class FastJSON(JSONResponse):
    """Like ``JSONResponse`` but rendered by orjson (NaN and infinities become null)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
