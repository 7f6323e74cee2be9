"""Free-form input is bounded: a contact's ``custom`` field once took 15 MB (the database
grew to 32 MB).  Every way in is checked (API bodies and fields, the services behind the
forms, CSV import cells) with a clear 413/422/400 naming the field, and an API token's
writes are rate-limited."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from crm.csv_io import import_contacts
from crm.limits import CELL_MAX, CUSTOM_MAX_BYTES, TooLarge
from tests.crm.factories import inbound
from tests.web.conftest import People
from web.runtime import Runtime

from .conftest import db_path


async def _token(rt: Runtime, people: People) -> dict[str, str]:
    assert people.alice.id is not None
    token = await rt.service.create_api_token(people.alice.id, "sync", "admin")
    return {"Authorization": f"Bearer {token}"}


async def _count(rt: Runtime) -> int:
    return len(await rt.service.list_contacts(limit=1000))


async def test_a_15_mb_custom_field_is_refused_and_the_database_stays_small(
    client: TestClient, rt: Runtime, people: People
) -> None:
    headers = await _token(rt, people)
    huge = {"name": "Bloat", "custom": {"blob": "x" * (15 * 1024 * 1024)}}
    resp = await client.post("/api/v1/contacts", data=json.dumps(huge),
                             headers={**headers, "Content-Type": "application/json"})  # fmt: skip
    assert resp.status == 413
    assert "larger than" in (await resp.json())["error"]["message"]
    assert await _count(rt) == 0
    assert os.path.getsize(db_path(rt)) < 2 * 1024 * 1024


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"name": "A", "custom": {"blob": "x" * (CUSTOM_MAX_BYTES + 10)}}, 413, "custom"),
        ({"name": "A", "custom": {"a": {"b": {"c": {"d": {"e": 1}}}}}}, 413, "custom"),
        ({"name": "A", "custom": {f"k{i}": i for i in range(500)}}, 413, "custom"),
        ({"name": "A", "custom": {"k" * 100: 1}}, 413, "custom"),
        ({"name": "N" * 201}, 422, "name"),
        ({"name": "A", "company": "C" * 201}, 422, "company"),
        ({"name": "A", "tags": ["t" * 51]}, 422, "tags[0]"),
    ],
)
async def test_oversized_fields_are_refused_by_name(
    client: TestClient, rt: Runtime, people: People, body: dict[str, Any], status: int,
    field: str,
) -> None:  # fmt: skip
    headers = await _token(rt, people)
    resp = await client.post("/api/v1/contacts", json=body, headers=headers)
    err = (await resp.json())["error"]
    assert resp.status == status, err
    assert err["field"] == field
    assert await _count(rt) == 0
    # and the same through PATCH on an existing contact
    made = await rt.service.create_contact("Fine", owner_id=people.alice.id)
    resp = await client.patch(f"/api/v1/contacts/{made.id}", json=body, headers=headers)
    assert resp.status == status
    assert (await rt.service.get_contact(made.id or 0)).custom == {}


async def test_a_reasonable_custom_field_is_kept(
    client: TestClient, rt: Runtime, people: People
) -> None:
    headers = await _token(rt, people)
    custom = {"crm_id": "A-17", "plan": {"name": "gold", "seats": 12}, "notes": "n" * 2000}
    resp = await client.post("/api/v1/contacts", json={"name": "Kept", "custom": custom},
                             headers=headers)  # fmt: skip
    assert resp.status == 201 and (await resp.json())["custom"] == custom


async def test_the_services_behind_the_forms_check_the_same_limits(
    rt: Runtime, people: People
) -> None:
    s = rt.service
    with pytest.raises(TooLarge, match="custom"):
        await s.create_contact("A", custom={"x": "y" * (CUSTOM_MAX_BYTES + 1)})
    with pytest.raises(TooLarge, match="name"):
        await s.create_contact("N" * 5000)
    made = await s.create_contact("A")
    with pytest.raises(TooLarge, match="company"):
        await s.update_contact(made.id or 0, company="C" * 5000)
    call = (await rt.ingest.record(inbound("+14155550199"))).call
    with pytest.raises(TooLarge, match="comment"):
        await s.add_note(call.id or 0, people.alice.id, comment="c" * 100_000)
    assert await s.notes(call.id or 0) == []


async def test_csv_import_refuses_oversized_cells(rt: Runtime, people: People) -> None:
    big_cell = "z" * (CELL_MAX + 1)
    big_custom = json.dumps({"blob": "q" * (CUSTOM_MAX_BYTES + 1)}).replace('"', '""')
    data = ("name,phone,favourite,custom\n"
            f"Ok Person,+14155550111,blue,\n"
            f"Bloated Cell,+14155550112,{big_cell},\n"
            f'Bloated Custom,+14155550113,,"{big_custom}"\n'
            f"{'N' * 300},+14155550114,,\n").encode()  # fmt: skip
    report = await import_contacts(rt.service, data, "admin", strict=False)
    reasons = {p.line: p.reason for p in report.rejected}
    assert set(reasons) == {3, 4, 5}, reasons
    assert "favourite" in reasons[3] and "custom" in reasons[4] and "name" in reasons[5]
    assert report.created == 1
    strict = await import_contacts(rt.service, data, "admin")
    assert strict.applied is False  # all or nothing: one bad row, nothing written


async def test_writes_per_api_token_are_rate_limited(
    client: TestClient, rt: Runtime, people: People
) -> None:
    rt.settings.setdefault("api", {})["writes_per_minute"] = 5
    headers = await _token(rt, people)
    statuses = []
    for i in range(7):
        resp = await client.post("/api/v1/contacts", json={"name": f"C{i}"}, headers=headers)
        statuses.append(resp.status)
        if resp.status == 429:
            assert 0 < int(resp.headers["Retry-After"]) <= 61
            assert "too many writes" in (await resp.json())["error"]["message"]
    assert statuses == [201] * 5 + [429] * 2
    assert await _count(rt) == 5
    assert (await client.get("/api/v1/contacts", headers=headers)).status == 200  # reads pass
    other = await _token(rt, people)  # another integration has its own budget
    assert (await client.post("/api/v1/contacts", json={"name": "X"},
                              headers=other)).status == 201  # fmt: skip
