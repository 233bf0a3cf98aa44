"""``/docs`` without the internet: FastAPI's default page loads Swagger UI from a CDN, a
blank page on a host offline. The bundle comes from the PyPI wheel ``fastapi-offline``
(installed with churnstream, never copied here) and is served by the API itself under
``/docs-assets``, as FastAPI's guide to self-hosting it shows. ``/redoc`` is not served:
ReDoc's standalone bundle loads its logo from cdn.redoc.ly, with no option to stop it."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
PREFIX = "/docs-assets"


def install(app: FastAPI) -> None:
    """Serve the docs page and its assets; create the app with ``docs_url=None`` and
    ``redoc_url=None``."""
    app.mount(PREFIX, StaticFiles(directory=ASSETS), name="docs-assets")
    redirect = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=redirect, swagger_js_url=f"{PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{PREFIX}/favicon.png")

    @app.get(redirect, include_in_schema=False)
    async def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
