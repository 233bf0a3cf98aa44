"""OpenAPI: every /v1 endpoint documents its success body with an example."""

from __future__ import annotations

from api.main import create_app
from core.settings import Settings


def test_every_endpoint_has_a_documented_example() -> None:
    spec = create_app(Settings(api_keys=["k"])).openapi()
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


def _secured(settings: Settings) -> set[str]:
    spec = create_app(settings).openapi()
    return {f"{m.upper()} {p}" for p, ops in spec["paths"].items() for m, op in ops.items()
            if op.get("security")}


def test_the_key_is_declared_exactly_where_the_settings_require_it() -> None:
    reads = {f"GET /v1/{p}" for p in ("users/{user_id}", "top", "tiers", "model", "segments",
                                      "status", "overview", "alerts")}
    assert _secured(Settings(api_keys=[])) == set()
    assert _secured(Settings(api_keys=[], api_read_auth=True)) == set()
    assert _secured(Settings(api_keys=["k"])) == {"POST /v1/events"}
    assert _secured(Settings(api_keys=["k"], api_read_auth=True)) == reads | {"POST /v1/events"}


def test_error_bodies_are_documented() -> None:
    spec = create_app(Settings(api_keys=["k"], api_max_events=7)).openapi()
    paths = spec["paths"]
    for path, ops in paths.items():
        for op in ops.values():
            for code, resp in op["responses"].items():
                if code[0] in "45" and path != "/readyz":
                    ref = resp["content"]["application/json"]["schema"]["$ref"]
                    assert ref.rsplit("/", 1)[-1] in ("Error", "Unprocessable"), (path, code)
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    body = paths["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    many = body["oneOf"][1]
    assert (many["minItems"], many["maxItems"]) == (1, 7)
    top = {p["name"]: p["schema"] for p in paths["/v1/top"]["get"]["parameters"]}
    assert top["offset"]["maximum"] == 1_000_000_000 and "'maximum': 10000" in str(top["k"])
