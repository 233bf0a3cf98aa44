"""Console sign-in: with ``CHURN_API_KEYS`` set, every console page asks for a key once
and keeps the token of that key (``api.security.token``: the key itself never sits in the
browser) in an HttpOnly, SameSite=Strict cookie; without it only the login page is
served. Without keys the console is open."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import HTTPException, Request

from api.deps import settings_of
from api.security import COOKIE, signed_in


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path only (no open redirect)."""
    if target and target.startswith("/console") and "//" not in target and "\\" not in target:
        return target
    return "/console"


async def require_console(request: Request) -> None:
    """Dependency of every console page: a visitor without the cookie is sent to log in."""
    if not signed_in(settings_of(request), request.cookies.get(COOKIE)):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(303, detail={"error": "sign_in"},
                            headers={"Location": f"/console/login?next={quote(target)}"})
