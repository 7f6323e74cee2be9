"""CSV import and export of contacts, the GDPR erase, and the recordings retention setting,
as a manager or admin does them in the browser's forms."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

from aiohttp import FormData
from aiohttp.test_utils import TestClient

from web.recordings_view import media_dir
from web.runtime import Runtime

from .conftest import People, login
from .test_recordings_http import ingest_capture_with_recording

GOOD = (
    "name,company,email,phones,owner\n"
    "Ada Lovelace,Engines Ltd,ada@example.com,(415) 555-0101; +44 20 7946 0958,alice\n"
    "Charles Babbage,Engines Ltd,,415.555.0101,\n"  # same number: merged into Ada
    "Grace Hopper,Navy,grace@example.com,+1 415 555 0102,bob\n"
)
BAD = GOOD + "Nobody,,not-an-email,,\nMystery,,,555,\n"


async def _upload(client: TestClient, csrf: str, text: str) -> tuple[int, str]:
    form = FormData()
    form.add_field("_csrf", csrf)
    form.add_field("file", text.encode(), filename="contacts.csv", content_type="text/csv")
    resp = await client.post("/contacts/import", data=form)
    return resp.status, await resp.text()


async def test_import_merges_by_number_and_reports(
    client: TestClient, rt: Runtime, people: People
) -> None:
    csrf = await login(client, "maria")
    status, page = await _upload(client, csrf, GOOD)
    assert status == 200
    assert "2 new contacts, 1 merged" in page
    [ada] = await rt.store.contacts_by_e164("+14155550101")
    assert ada.name == "Ada Lovelace"
    assert {p.e164 for p in ada.phones} == {"+14155550101", "+442079460958"}
    assert ada.owner_id == people.alice.id


async def test_a_bad_file_changes_nothing_and_says_which_rows(
    client: TestClient, rt: Runtime, people: People
) -> None:
    csrf = await login(client, "maria")
    status, page = await _upload(client, csrf, BAD)
    assert status == 422
    assert "Nothing was imported" in page
    assert "not-an-email" in page and "&#39;555&#39; is not a phone number" in page
    assert await rt.store.count_contacts() == 0
    status, page = await _upload(client, csrf, "\x00\x01garbage")
    assert status in (400, 422) and await rt.store.count_contacts() == 0


async def test_reps_cannot_import_export_or_erase(
    client: TestClient, rt: Runtime, people: People
) -> None:
    contact = await rt.service.create_contact("X", phones=["+14155550111"],
                                              owner_id=people.alice.id)  # fmt: skip
    csrf = await login(client, "alice")
    assert (await client.get("/contacts/import")).status == 403
    assert (await client.get("/contacts/export.csv")).status == 403
    resp = await client.post(f"/contacts/{contact.id}/erase",
                             data={"_csrf": csrf, "confirm": "erase"})  # fmt: skip
    assert resp.status == 403
    assert (await rt.service.get_contact(contact.id or 0)).name == "X"


async def test_export_neutralises_formulas_and_is_audited(
    client: TestClient, rt: Runtime, people: People
) -> None:
    await rt.service.create_contact("=cmd|' /C calc'!A0", "@SUM(1)", phones=["+14155550112"])
    await login(client, "admin")
    resp = await client.get("/contacts/export.csv")
    assert resp.status == 200
    assert resp.headers["Content-Disposition"].startswith("attachment")
    rows = list(csv.DictReader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    assert rows[0]["name"] == "'=cmd|' /C calc'!A0"
    assert rows[0]["company"] == "'@SUM(1)"
    assert [e.action for e in await rt.service.list_audit("contact.exported")] == [
        "contact.exported"
    ]


async def test_gdpr_erase_removes_the_person_and_their_recordings(
    client: TestClient, rt: Runtime, people: People
) -> None:
    recorded = await ingest_capture_with_recording(rt)
    assert recorded.call.contact_id is not None  # the capture's caller became a lead
    media = media_dir(rt) / str(recorded.rec.media_path)
    original = Path(rt.settings["recordings"]["directory"]) / recorded.rec.path
    assert media.exists() and original.exists()
    csrf = await login(client, "admin")
    url = f"/contacts/{recorded.call.contact_id}/erase"
    assert "cannot be undone" in await (await client.get(url)).text()
    refused = await client.post(url, data={"_csrf": csrf, "confirm": "yes"})
    assert refused.status == 400
    resp = await client.post(url, data={"_csrf": csrf, "confirm": "erase"},
                             allow_redirects=False)  # fmt: skip
    assert resp.status == 302
    notice = await (await client.get(resp.headers["Location"])).text()
    assert "The contact was erased" in notice and " 0 recording files" not in notice
    assert not media.exists() and not original.exists()
    contact = await rt.store.get_contact(recorded.call.contact_id)
    assert contact is None or (contact.erased and not contact.phones and contact.name == "")
    call = await rt.store.get_call(recorded.call.id or 0)
    assert call is not None and call.outcome == "answered" and call.talk_seconds > 0
    assert call.caller != "+14155550199"
    assert [e.action for e in await rt.service.list_audit("contact.erased")] == ["contact.erased"]


async def test_admin_sets_retention_and_applies_it_now(
    client: TestClient, rt: Runtime, people: People
) -> None:
    recorded = await ingest_capture_with_recording(rt)
    media = media_dir(rt) / str(recorded.rec.media_path)
    csrf = await login(client, "admin")
    bad = await client.post("/admin/recordings", data={"_csrf": csrf, "retention_days": "-3"})
    assert bad.status == 400
    ok = await client.post("/admin/recordings", data={"_csrf": csrf, "retention_days": "3650"})
    assert ok.status == 200 and "Recording settings saved" in await ok.text()
    assert rt.settings["recordings"]["retention_days"] == 3650
    assert (await rt.service.get_setting("recordings"))["retention_days"] == 3650
    kept = await client.post("/admin/recordings/purge", data={"_csrf": csrf})
    assert "0 recordings older than 3650 days deleted" in await kept.text()
    assert media.exists()
    # the capture's call ended on 2026-11-22, more than a day before any run of this test
    assert time.time() - recorded.call.ended_at > 86400
    await client.post("/admin/recordings", data={"_csrf": csrf, "retention_days": "1"})
    gone = await client.post("/admin/recordings/purge", data={"_csrf": csrf})
    assert "1 recordings older than 1 days deleted" in await gone.text()
    assert not media.exists()
    [row] = await rt.service.recordings_for_call(recorded.call.id or 0)
    assert row.status == "deleted"
    assert await rt.store.get_call(recorded.call.id or 0) is not None  # the call stays
