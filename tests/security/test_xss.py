"""Stored XSS: hostile text typed by users (contact name, company, tags, custom fields,
note topic and comment) and hostile text from outside (the caller-ID name the PBX passes
on, which names a lead) rendered on every page that shows it, in the API's JSON, in the
CSV export, in the SSE screen pop, and in a real browser.

What a user would check: the text is shown literally (escaped), no element or attribute
comes out of it, no ``javascript:`` link is made of it, ``{{7*7}}`` stays ``{{7*7}}``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import time
from typing import Any

from aiohttp.test_utils import TestClient

from ami_bridge.facts import CallProgress
from crm.csv_io import FORMULA_STARTS, export_contacts
from crm.models import Contact
from tests.clock import MIDDAY
from tests.crm.factories import inbound
from web.runtime import Runtime

from .conftest import Clients, World

NAME = "<script>alert(1)</script>Mallory \u202eevil\u202c"
COMPANY = '"><img src=x onerror=alert(1)>'
TAGS = ["<svg onload=alert(1)>", "{{7*7}}"]
CUSTOM = {"website": "javascript:alert(1)", "<b>key</b>": "{% for x in range(9) %}x{% endfor %}"}
TOPIC = "<script>alert(2)</script>"
COMMENT = '"><img src=x onerror=alert(2)>\n{{7*7}} javascript:alert(2)'
CALLER_ID = '<img src=x onerror=alert(3)>{{7*7}}'
FORMULA_CALLER_ID = "=cmd|' /C calc'!A0"
EVIL_FRAGMENTS = ("<script>alert", "<img src=x", "<svg onload", "<b>key</b>")
JS_URL = re.compile(r"""(href|src|action|formaction)\s*=\s*["']?\s*javascript:""", re.I)
NOW = MIDDAY  # the clock the world's runtime is set to (tests.security.conftest)


def assert_inert(html: str, where: str) -> None:
    for fragment in EVIL_FRAGMENTS:
        assert fragment not in html, f"{where}: {fragment!r} reached the page unescaped"
    assert not JS_URL.search(html), f"{where}: a javascript: URL became a link"


async def hostile_world(rt: Runtime, w: World) -> tuple[Contact, Contact]:
    """Alice's hostile customer with a noted call, and a lead named by hostile caller-ID."""
    s = rt.service
    mallory = await s.create_contact(NAME, COMPANY, "", ["+14155550600"],
                                     owner_id=w.people.alice.id, tags=TAGS, custom=CUSTOM)
    call = (await rt.ingest.record(inbound("+14155550600", at=NOW - 50))).call
    assert call.id is not None
    await s.add_note(call.id, w.people.alice.id, TOPIC, "", COMMENT)
    await rt.ingest.record(inbound("+14155550601", at=NOW - 40, caller_name=CALLER_ID))
    await rt.ingest.record(inbound("+14155550602", answered_by=None, at=NOW - 30,
                                   caller_name=FORMULA_CALLER_ID))  # fmt: skip
    leads = await s.search_contacts("5550601", 5)
    assert leads and CALLER_ID in leads[0].name, "the lead is named from the caller-ID"
    return mallory, leads[0]


async def _html(c: TestClient, path: str) -> str:
    resp = await c.get(path)
    assert resp.status == 200, f"{path} -> {resp.status}"
    return await resp.text()


async def test_hostile_text_is_shown_escaped_on_every_page(clients: Clients, rt: Runtime,
                                                          world: World) -> None:  # fmt: skip
    mallory, lead = await hostile_world(rt, world)
    calls = await rt.service.list_calls(limit=50)
    alice, maria, admin = (clients.by_name[n] for n in ("alice", "maria", "admin"))
    pages = [(alice, "/"), (alice, "/calls"), (alice, "/contacts"), (alice, "/leads"),
             (alice, f"/contacts/{mallory.id}"), (alice, f"/contacts/{mallory.id}/edit"),
             (alice, f"/contacts/{mallory.id}/merge"), (alice, f"/contacts/{lead.id}"),
             (alice, f"/contacts?q={mallory.name[:8]}"), (maria, "/missed"),
             (maria, "/reports"), (admin, "/admin/audit"), (admin, "/calls")]  # fmt: skip
    pages += [(admin, f"/calls/{c.id}") for c in calls.items]
    seen = ""
    for c, path in pages:
        html = await _html(c, path)
        assert_inert(html, path)
        seen += html
    # the hostile text was really rendered (escaped), not just left out
    for shown in ("&lt;script&gt;alert(1)&lt;/script&gt;Mallory", "&lt;svg onload=alert(1)&gt;",
                  "{{7*7}}", "javascript:alert(1)", "&lt;script&gt;alert(2)&lt;/script&gt;",
                  "&lt;img src=x onerror=alert(3)&gt;", "\u202eevil"):  # fmt: skip
        assert shown in seen, f"{shown!r} is shown nowhere"
    card = await _html(alice, f"/contacts/{mallory.id}")
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in card or (
        "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in card
    )


async def test_the_api_returns_the_text_as_data(clients: Clients, rt: Runtime,
                                                world: World) -> None:  # fmt: skip
    """JSON keeps the text exactly (it is data, the client escapes), as application/json."""
    mallory, lead = await hostile_world(rt, world)
    c = clients.by_name["alice"]
    resp = await c.get(f"/api/v1/contacts/{mallory.id}")
    assert resp.status == 200 and resp.content_type == "application/json"
    body = await resp.json()
    assert body["name"] == NAME and body["company"] == COMPANY
    assert sorted(body["tags"]) == sorted(TAGS) and body["custom"] == CUSTOM
    body = await (await c.get(f"/api/v1/contacts/{lead.id}")).json()
    assert CALLER_ID in body["name"]
    resp = await c.get("/api/v1/calls")
    assert resp.content_type == "application/json"


async def test_csv_exports_neutralise_formulas(clients: Clients, rt: Runtime,
                                               world: World) -> None:  # fmt: skip
    """The contacts export and the missed-calls CSV: no cell starts like a formula."""
    await hostile_world(rt, world)
    out = io.StringIO()
    await export_contacts(rt.service, out, "admin")
    resp = await clients.by_name["admin"].get("/missed.csv")  # every missed call
    assert resp.status == 200
    for name, text in (("contacts export", out.getvalue()), ("missed.csv", await resp.text())):
        rows = list(csv.reader(io.StringIO(text)))
        assert len(rows) > 1, name
        for row in rows[1:]:
            for cell in row:
                assert not cell.startswith(FORMULA_STARTS), f"{name}: formula cell {cell!r}"
        assert any(FORMULA_CALLER_ID in cell for row in rows for cell in row) or name != (
            "missed.csv"
        ), "the caller-ID named lead is in the missed-calls export (guarded)"


async def test_the_screen_pop_is_json_and_cannot_break_the_stream(
    clients: Clients, rt: Runtime, world: World
) -> None:
    """A caller-ID name with HTML and with SSE framing (newlines, ``data:``) reaches alice's
    browser as one JSON message whose text is the name, nothing more."""
    c = clients.by_name["alice"]
    resp = await c.get("/events")
    assert resp.status == 200
    await resp.content.readuntil(b"\n\n")  # "retry / connected"
    evil = CALLER_ID + "\n\nevent: pwned\ndata: {\"x\": 1}\n\n"
    await rt.ingest.handle(CallProgress("xss.1", "ringing", "inbound", "+14155550603", evil,
                                        "5551000", "5551000", ("101",), None, time.time()))
    frames: list[str] = []
    try:
        while True:
            frame = (await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 3)).decode()
            if frame.startswith(":"):
                continue
            frames.append(frame)
            if "xss.1" in frame or "5550603" in frame:
                break
    except TimeoutError:
        pass
    finally:
        resp.close()
    assert frames, "no screen pop reached alice"
    for frame in frames:
        lines = frame.strip("\n").split("\n")
        assert all(line.startswith("data: ") for line in lines), frame
        assert not any(line.startswith("event:") for line in lines), frame
        payload: Any = json.loads("".join(line[6:] for line in lines))
        assert isinstance(payload, dict)
    strings = [t for f in frames for t in _strings(json.loads(f.strip()[6:]))]
    assert evil in strings, "the name travels verbatim inside the JSON"
    for text in strings:
        if "<" in text and text != evil:  # a server-rendered row the script inserts as HTML
            assert_inert(text, "SSE row HTML")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_live_script_builds_nodes_from_text() -> None:
    """The screen pop script puts names in with textContent / text nodes, never innerHTML
    (only server-rendered, autoescaped rows go through ``rowFromHTML``)."""
    from pathlib import Path

    static = Path(__file__).resolve().parents[2] / "web" / "static"
    for js in static.glob("*.js"):
        text = js.read_text(encoding="utf-8")
        for m in re.finditer(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write",
                             text):  # fmt: skip
            line = text[: m.start()].count("\n") + 1
            context = text[max(0, m.start() - 200): m.start()]
            assert "rowFromHTML" in context, f"{js.name}:{line} writes HTML from a string"
