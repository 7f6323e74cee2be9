"""The JSON API fuzzed from its own OpenAPI document with schemathesis: valid requests
(positive) and requests that break the schema (negative), for every operation, as the
admin's bearer token.  A user of the API would check: never a 5xx, every error a JSON
``{"error": {"status", "message"}}`` with the status repeated inside, and every answer
as documented (status code and body schema).

aiohttp has no in-process ASGI/WSGI entry, so the app runs on a loopback port in a
background thread with its own event loop and store; schemathesis calls it with requests.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from tests.crm.factories import inbound
from tests.web.conftest import PASSWORD, web_settings
from web.api import API_PREFIX, openapi_document
from web.app import create_app
from web.runtime import open_runtime

SCHEMA = schemathesis.openapi.from_dict(openapi_document())
OPERATIONS = [r.ok() for r in SCHEMA.get_all_operations()]
EXAMPLES = 40
"""Per operation and mode: 13 operations x 2 modes x 40: about 40 s."""


@dataclass
class LiveApi:
    base_url: str
    token: str


def _serve(tmp: Path, ready: threading.Event, out: dict[str, Any], stop: threading.Event) -> None:
    async def main() -> None:
        rt = await open_runtime(web_settings(tmp), with_link=False)
        s = rt.service
        admin = await s.create_user("admin", "Ada Admin", PASSWORD, "admin")
        alice = await s.create_user("alice", "Alice Rep", PASSWORD, "rep", ["101"])
        assert admin.id is not None
        await s.create_contact("Grace", "Navy", "g@example.com", ["+14155550199"],
                               owner_id=alice.id, tags=["vip"], custom={"k": "v"})
        for i in range(5):
            await rt.ingest.record(inbound(f"+1415555{i:04d}", answered_by=None if i % 2 else "101",
                                           at=1_795_341_294.0 + i))  # fmt: skip
        out["token"] = await s.create_api_token(admin.id, "fuzz", "test")
        runner = web.AppRunner(create_app(rt))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        out["port"] = runner.addresses[0][1]
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await runner.cleanup()
        await rt.close()

    try:
        asyncio.run(main())
    except BaseException as exc:  # the test thread reports it
        out["error"] = exc
        ready.set()


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    ready, stop, out = threading.Event(), threading.Event(), {}
    thread = threading.Thread(target=_serve, daemon=True,
                              args=(tmp_path_factory.mktemp("fuzz"), ready, out, stop))
    thread.start()
    assert ready.wait(30), "the server did not start"
    if "error" in out:
        raise out["error"]
    yield LiveApi(f"http://127.0.0.1:{out['port']}{API_PREFIX}", out["token"])
    stop.set()
    thread.join(10)


def check_error_shape(case: Any, response: Any) -> None:
    """No 5xx; a 4xx is JSON ``{"error": {"status": <same>, "message": <words>}}``."""
    where = f"{case.as_curl_command()} -> {response.status_code} {response.text[:300]}"
    assert response.status_code < 500, where
    if response.status_code >= 400:
        ctype = {k.lower(): v for k, v in response.headers.items()}.get("content-type", [""])
        ctype = ctype[0] if isinstance(ctype, list) else ctype
        assert ctype.startswith("application/json"), where
        body = response.json()
        assert isinstance(body, dict) and set(body) == {"error"}, where
        err = body["error"]
        assert err["status"] == response.status_code, where
        assert isinstance(err["message"], str) and err["message"].strip(), where


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["valid", "invalid"])  # fmt: skip
@pytest.mark.parametrize("operation", OPERATIONS, ids=[o.label for o in OPERATIONS])
def test_fuzz_operation(operation: Any, mode: GenerationMode, live_api: LiveApi) -> None:
    session = requests.Session()
    headers = {"Authorization": f"Bearer {live_api.token}"}

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(generation_mode=mode))
        response = case.call(base_url=live_api.base_url, session=session, headers=headers,
                             timeout=10)  # fmt: skip
        check_error_shape(case, response)
        if mode is GenerationMode.POSITIVE or response.status_code < 400:
            case.validate_response(response, checks=[status_code_conformance,
                                                     response_schema_conformance])  # fmt: skip

    run()


@dataclass
class _Shape:
    status_code: int
    headers: dict[str, Any]
    text: str

    def json(self) -> Any:
        import json

        return json.loads(self.text)


class _Req:
    def __init__(self, method: str, url: str) -> None:
        self.line = f"{method} {url}"

    def as_curl_command(self) -> str:
        return self.line


@pytest.mark.parametrize(("method", "path", "kwargs"), [
    ("POST", "/contacts", {"data": b"{not json", "headers": {"Content-Type": "application/json"}}),
    ("POST", "/contacts", {"data": b"\xff\xfe\x00garbage", "headers": {"Content-Type":
                                                                        "application/json"}}),
    ("POST", "/contacts", {"data": b"name=x", "headers": {"Content-Type": "text/plain"}}),
    ("POST", "/contacts", {"json": [1, 2, 3]}),
    ("POST", "/contacts", {"json": {"name": "x" * 100_000, "phones": ["+1" * 5000]}}),
    ("PATCH", "/contacts/1", {"json": {"phones": None, "owner_id": 2**70}}),
    ("GET", "/contacts/99999999999999999999999", {}),
    ("GET", "/calls?since=not-a-date&limit=-1", {}),
    ("GET", "/calls?cursor=%00%ff", {}),
    ("GET", "/contacts?q=%00", {}),
    ("DELETE", "/contacts/0", {}),
    ("POST", "/calls", {"json": {"number": "=cmd|' /C calc'!A0"}}),
    ("GET", "/nope", {}),
    ("PUT", "/contacts/1", {"json": {}}),
])  # fmt: skip
def test_hand_made_hostile_requests_get_json_errors(method: str, path: str, kwargs: Any,
                                                    live_api: LiveApi) -> None:  # fmt: skip
    """What generated cases rarely hit: bodies that are not JSON or are nested absurdly
    deep, numbers past 64 bits, NUL bytes, unknown paths and methods."""
    headers = {"Authorization": f"Bearer {live_api.token}", **kwargs.pop("headers", {})}
    r = requests.request(method, live_api.base_url + path, headers=headers, timeout=10,
                         **kwargs)  # fmt: skip
    shape = _Shape(r.status_code, dict(r.headers), r.text)
    check_error_shape(_Req(method, path), shape)
    assert r.status_code >= 400 or method == "GET", r.text[:300]


def test_a_bad_token_is_a_json_401(live_api: LiveApi) -> None:
    for auth in ("Bearer nope", "Bearer " + live_api.token + "x", "Basic YWRtaW46eA=="):
        r = requests.get(live_api.base_url + "/me", headers={"Authorization": auth}, timeout=10)
        assert r.status_code == 401, auth
        assert r.json()["error"]["status"] == 401


@pytest.mark.parametrize("body", [b"[" * 100_000, b"[" * 5_000 + b"]" * 5_000,
                                  b'{"name": "n", "custom": {"a": ' + b"[" * 3000 + b"]" * 3000
                                  + b"}}"], ids=["unclosed", "valid-deep", "deep-custom"])
def test_deeply_nested_json_is_a_400_not_a_500(body: bytes, live_api: LiveApi) -> None:
    """Regression (web/api/common.py, ``json_body``): ``json.loads`` raises RecursionError
    (not ValueError) for JSON nested deeper than the interpreter's recursion limit, so a
    20-byte-per-level body like ``[[[[...`` makes POST/PATCH answer 500 "internal error"
    and log a traceback, instead of 400 "the body is not valid JSON"."""
    for method, path in (("POST", "/contacts"), ("PATCH", "/contacts/1")):
        r = requests.request(method, live_api.base_url + path, data=body, timeout=10,
                             headers={"Authorization": f"Bearer {live_api.token}",
                                      "Content-Type": "application/json"})  # fmt: skip
        check_error_shape(_Req(method, path), _Shape(r.status_code, dict(r.headers), r.text))
        assert 400 <= r.status_code < 500
