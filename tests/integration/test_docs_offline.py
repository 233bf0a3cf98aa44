"""``/docs`` renders in a real browser with no internet: Swagger UI's bundle is served by
the API (api/docs.py), and every other host is unreachable to the browser."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from tests.integration.browser import chromium, errors, shot, wait_for
from tests.integration.conftest import Namespace, http_json

pytestmark = pytest.mark.integration


def test_docs_render_offline(namespace: Namespace) -> None:
    api = namespace.start_api()
    with chromium() as b:
        b.get(api + "/docs")
        ops = wait_for(b, ".opblock-summary-path")  # Swagger UI drew the operations
        paths = {o.get_attribute("data-path") for o in ops}
        assert {"/v1/users/{user_id}", "/v1/top", "/v1/overview", "/v1/events"} <= paths
        assert b.title == "churnstream - Swagger UI"
        assert not errors(b)
        shot(b, "docs")
        assert b.find_elements(By.CSS_SELECTOR, ".opblock-tag")  # grouped by tag
    assert http_json(api + "/redoc")[0] == 404  # not served: it needs a CDN (api/docs.py)
