"""API keys: ``X-API-Key`` checked in constant time against ``CHURN_API_KEYS``.

No keys configured: everything is open. Keys configured: writes need one; reads
too with ``CHURN_API_READ_AUTH=true``. A missing key is 401, a wrong one 403.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader

from api.deps import settings_of
from core.settings import Settings

_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                       description="One of CHURN_API_KEYS (when configured)")


def check_key(settings: Settings, key: str | None) -> None:
    if not settings.api_keys:
        return
    if not key:
        raise HTTPException(401, detail={"error": "api_key_missing",
                                         "hint": "send the key in the X-API-Key header"},
                            headers={"WWW-Authenticate": "X-API-Key"})
    given = key.encode()
    # compare with every key, always: the time does not depend on which one matched
    ok = False
    for k in settings.api_keys:
        ok |= hmac.compare_digest(given, k.encode())
    if not ok:
        raise HTTPException(403, detail={"error": "api_key_invalid"})


async def require_write(request: Request,
                        key: Annotated[str | None, Depends(_header)] = None) -> None:
    check_key(settings_of(request), key)


async def require_read(request: Request,
                       key: Annotated[str | None, Depends(_header)] = None) -> None:
    settings: Settings = settings_of(request)
    if settings.api_read_auth:
        check_key(settings, key)


WriteAccess = Depends(require_write)
ReadAccess = Depends(require_read)
