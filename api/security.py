"""API keys: ``X-API-Key`` checked in constant time against ``CHURN_API_KEYS``.

No keys configured: everything is open. Keys configured: writes need one; reads
too with ``CHURN_API_READ_AUTH=true``. A missing key is 401, a wrong one 403. A browser
signed in to the console (``api/console/auth.py``) may read with its cookie instead: a
token derived from a key (HMAC-SHA256), never the key itself.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader

from api.deps import settings_of
from core.settings import Settings

_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                       description="One of CHURN_API_KEYS (when configured)")


COOKIE = "churn_console"
_MESSAGE = b"churnstream console"


def token(key: str) -> str:
    """The console cookie of a key."""
    return hmac.new(key.encode(), _MESSAGE, hashlib.sha256).hexdigest()


def _any_equal(given: str, candidates: list[str]) -> bool:
    """Compared with every candidate, always: the time does not depend on which matched."""
    ok = False
    for c in candidates:
        ok |= hmac.compare_digest(given.encode(), c.encode())
    return ok


def key_matches(settings: Settings, key: str) -> bool:
    return _any_equal(key, settings.api_keys)


def signed_in(settings: Settings, cookie: str | None) -> bool:
    """Whether a console cookie carries the token of a configured key (open: no keys)."""
    if not settings.api_keys:
        return True
    return bool(cookie) and _any_equal(cookie or "", [token(k) for k in settings.api_keys])


def check_key(settings: Settings, key: str | None) -> None:
    if not settings.api_keys:
        return
    if not key:
        raise HTTPException(401, detail={"error": "api_key_missing",
                                         "hint": "send the key in the X-API-Key header"},
                            headers={"WWW-Authenticate": "X-API-Key"})
    if not key_matches(settings, key):
        raise HTTPException(403, detail={"error": "api_key_invalid"})


async def require_write(request: Request,
                        key: Annotated[str | None, Depends(_header)] = None) -> None:
    check_key(settings_of(request), key)


async def require_read(request: Request,
                       key: Annotated[str | None, Depends(_header)] = None) -> None:
    settings: Settings = settings_of(request)
    if settings.api_read_auth and not (key is None and signed_in(
            settings, request.cookies.get(COOKIE))):
        check_key(settings, key)


WriteAccess = Depends(require_write)
ReadAccess = Depends(require_read)
