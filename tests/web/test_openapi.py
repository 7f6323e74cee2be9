"""The OpenAPI document: valid OpenAPI 3.1, served where the issue says, and in step with
the routes (nothing undocumented, nothing documented that does not exist).  The request
bodies the API checks with its own small validator are judged the same by jsonschema."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from web.api import API_PREFIX, openapi_document
from web.api.schema import SCHEMAS, SchemaError, check

from .apicheck import _REGISTRY


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = openapi_document()
    assert doc["openapi"].startswith("3.1")
    validate(doc)


async def test_it_is_served_at_api_v1_openapi_json(client: TestClient) -> None:
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert await resp.json() == openapi_document()


def _routed(client: TestClient) -> set[tuple[str, str]]:
    out = set()
    for route in client.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or ""
        if path.startswith(API_PREFIX) and route.method != "HEAD":
            path = re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", path[len(API_PREFIX) :])
            out.add((route.method.lower(), path))
    return out


async def test_every_route_is_documented_and_every_documented_route_exists(
    client: TestClient,
) -> None:
    documented = {(m, p) for p, ops in openapi_document()["paths"].items() for m in ops}
    assert _routed(client) == documented


def test_every_operation_documents_its_errors_in_one_shape() -> None:
    for path, ops in openapi_document()["paths"].items():
        for method, op in ops.items():
            assert "401" in op["responses"], (method, path)
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path)


BODIES: list[tuple[str, Any]] = [
    ("ContactCreate", {"name": "Ann", "phones": ["+14155550100"], "lead_status": "new"}),
    ("ContactCreate", {"name": "Ann", "phones": "+14155550100"}),
    ("ContactCreate", {"name": "Ann", "colour": "red"}),
    ("ContactCreate", {"name": "x" * 201}),
    ("ContactCreate", {"name": None}),
    ("ContactCreate", {"owner_id": True}),
    ("ContactCreate", {"owner_id": None, "tags": ["a", "b"], "custom": {"k": 1}}),
    ("ContactPatch", {}),
    ("ContactPatch", {"email": "a@b.example"}),
    ("ClickToCallRequest", {"number": ""}),
    ("ClickToCallRequest", {"number": "+14155550100", "request_key": "k"}),
    ("ClickToCallRequest", {"extension": "101"}),
]


@pytest.mark.parametrize(("name", "body"), BODIES)
def test_the_apis_request_checks_agree_with_jsonschema(name: str, body: Any) -> None:
    schema = {"$ref": f"urn:crm-openapi#/components/schemas/{name}"}
    valid_for_jsonschema = Draft202012Validator(schema, registry=_REGISTRY).is_valid(body)
    try:
        check(body, SCHEMAS[name])
        valid_for_api = True
    except SchemaError:
        valid_for_api = False
    assert valid_for_api == valid_for_jsonschema
