"""OpenAPI: every /v1 endpoint documents its success body with an example."""

from __future__ import annotations

from api.main import create_app
from core.settings import Settings


def test_every_endpoint_has_a_documented_example() -> None:
    spec = create_app(Settings()).openapi()
    schemas = spec["components"]["schemas"]
    missing = []
    for path, ops in spec["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, op in ops.items():
            ok = next(c for code, c in op["responses"].items() if code.startswith("2"))
            content = ok.get("content", {})
            json_body = content.get("application/json", {})
            ref = json_body.get("schema", {}).get("$ref", "")
            example = json_body.get("example") or json_body.get("examples")
            if ref:
                example = example or schemas[ref.rsplit("/", 1)[-1]].get("examples")
            if method == "post":  # the request body too
                body = op["requestBody"]["content"]["application/json"]
                example = example and body.get("examples")
            if not example:
                missing.append((method, path))
    assert not missing, missing
    assert "X-API-Key" in str(spec["paths"]["/v1/events"]["post"].get("security", "")) or \
        "APIKeyHeader" in spec["components"].get("securitySchemes", {})
