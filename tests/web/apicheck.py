"""Checks an API answer against the OpenAPI document, the way an integrator's generated
client would: find the documented operation and status, validate the JSON body."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from web.api import API_PREFIX, openapi_document

DOC = openapi_document()
_REGISTRY = Registry().with_resource(
    "urn:crm-openapi", Resource.from_contents(DOC, default_specification=DRAFT202012)
)


def _operation(method: str, path: str) -> tuple[str, dict[str, Any]]:
    rel = path.split("?", 1)[0][len(API_PREFIX) :]
    for template, ops in DOC["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", r"[^/]+", template) + "$"
        if re.match(pattern, rel) and method.lower() in ops:
            return template, ops[method.lower()]
    raise AssertionError(f"{method} {path} is not in the OpenAPI document")


def validate(method: str, path: str, status: int, body: Any) -> None:
    template, op = _operation(method, path)
    response = op["responses"].get(str(status))
    assert response is not None, f"{method} {template}: status {status} is not documented"
    content = response.get("content")
    if content is None:
        assert body is None, f"{method} {template} {status}: documented without a body"
        return
    schema = content["application/json"]["schema"]
    wrapped = {"$ref": "urn:crm-openapi#" + schema["$ref"][1:]} if "$ref" in schema else schema
    Draft202012Validator(wrapped, registry=_REGISTRY).validate(body)


class Api:
    """A client that validates every answer against the document."""

    def __init__(self, client: TestClient, token: str | None = None,
                 csrf: str | None = None) -> None:  # fmt: skip
        self.client = client
        self.headers: dict[str, str] = {}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        if csrf:
            self.headers["X-CSRF-Token"] = csrf

    async def call(self, method: str, path: str, json: Any = None,
                   **kw: Any) -> tuple[int, Any]:  # fmt: skip
        url = path if path.startswith(API_PREFIX) else API_PREFIX + path
        kwargs: dict[str, Any] = {"headers": {**self.headers, **kw.pop("headers", {})}}
        if json is not None:
            kwargs["json"] = json
        kwargs.update(kw)
        resp = await self.client.request(method, url, **kwargs)
        body = None if resp.status == 204 else await resp.json()
        validate(method, url, resp.status, body)
        return resp.status, body

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, json: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("POST", path, json, **kw)

    async def patch(self, path: str, json: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("PATCH", path, json, **kw)

    async def delete(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.call("DELETE", path, **kw)
