"""CSV import (normalised numbers, duplicates merged, per-row report, all or nothing) and
export (formula injection neutralised, audited), on both engines."""

from __future__ import annotations

import csv
import io

import pytest

from crm.csv_io import ImportFileError, export_contacts, import_contacts
from crm.models import Contact, PhoneNumber
from crm.services import CrmService
from crm.store import Store


async def test_import_normalises_and_merges_duplicates(store: Store, service: CrmService) -> None:
    existing = await service.create_contact("Maria Garcia", phones=["+14155550102"])
    data = (
        b"name,company,phone,mobile,email,tags\n"
        b"John Smith,Acme,(415) 555-0199,,john@acme.test,vip;west\n"
        b"J. Smith,,+1 415 555 0199,415.555.0177,,east\n"  # same number: merged into John
        b"Maria G.,Globex,001 415 555 0102,,maria@globex.test,\n"  # merges into Maria
    )
    report = await import_contacts(service, data, actor="root")
    assert report.applied and report.rejected == []
    assert (report.rows, report.created, report.merged) == (3, 1, 2)
    [john] = await store.contacts_by_e164("+14155550199")
    assert john.name == "John Smith" and john.company == "Acme"
    assert {p.e164 for p in john.phones} == {"+14155550199", "+14155550177"}
    assert john.tags == ["east", "vip", "west"]
    maria = await store.get_contact(existing.id)
    assert maria.name == "Maria Garcia"  # what someone typed is never overwritten
    assert maria.company == "Globex" and maria.email == "maria@globex.test"
    assert await store.count_contacts() == 2
    [entry] = await service.list_audit(action="contact.imported")
    assert entry.detail == {"created": 1, "merged": 2, "rejected": 0}


async def test_bad_rows_are_reported_and_nothing_changes(store: Store, service: CrmService) -> None:
    data = (
        b"name,phone,email,owner\n"
        b"Good Row,4155550111,,\n"
        b"Bad Number,12,,\n"
        b",,,\n"
        b"Bad Mail,4155550112,not-an-address,\n"
        b"No Owner,4155550113,,nobody\n"
        b",,x@y.test,\n"
    )
    report = await import_contacts(service, data, actor="root")
    assert not report.applied
    assert [(p.line, p.reason.split(" ")[0]) for p in report.rejected] == [
        (3, "phone"), (5, "e-mail"), (6, "owner"), (7, "no"),
    ]  # fmt: skip
    assert "'12' is not a phone number" in report.rejected[0].reason
    assert await store.count_contacts() == 0
    assert await service.list_audit(action="contact.imported") == []


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"\xff\xfename,phone\n", "not UTF-8"),
        (b"foo,bar\n1,2\n", "first line must name the columns"),
        (b"name\x00phone", "not a text file"),
    ],
)
async def test_unreadable_files_are_refused(
    store: Store, service: CrmService, data: bytes, message: str
) -> None:
    with pytest.raises(ImportFileError, match=message):
        await import_contacts(service, data, actor="root")
    assert await store.count_contacts() == 0


async def test_export_neutralises_formulas_and_is_audited(
    store: Store, service: CrmService
) -> None:
    await service.create_contact("=HYPERLINK(\"http://evil\")", company="+SUM(A1)",
                                 phones=["4155550121"], tags=["@cmd", "-x"])  # fmt: skip
    # the service trims typed names; an imported or API-written value may still start so
    phone = PhoneNumber("4155550122", "+14155550122")
    await store.add_contact(Contact(None, "\tTabbed", company="\rCR", phones=[phone]))
    await service.create_contact("Plain Name", company="Acme", phones=["4155550123"])
    out = io.StringIO()
    assert await export_contacts(service, out, actor="mona") == 3
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert rows[0]["name"] == '\'=HYPERLINK("http://evil")'
    assert rows[0]["company"] == "'+SUM(A1)"
    assert rows[0]["tags"] == "'-x; @cmd"
    assert rows[0]["phones"] == "'+14155550121"  # E.164 starts with +, so it is guarded too
    assert rows[1]["name"] == "'\tTabbed" and rows[1]["company"] == "'\rCR"
    assert rows[2]["name"] == "Plain Name" and rows[2]["company"] == "Acme"
    [entry] = await service.list_audit(action="contact.exported")
    assert entry.actor == "mona" and entry.detail["count"] == 3


async def test_export_then_import_round_trips(store: Store, service: CrmService) -> None:
    await service.create_contact("=Formula Person", company="Acme", phones=["4155550131"])
    out = io.StringIO()
    await export_contacts(service, out, actor="root")
    await service.erase_contact((await store.contacts_by_e164("+14155550131"))[0].id, "root")
    report = await import_contacts(service, out.getvalue().encode(), actor="root")
    assert report.applied and report.created == 1
    [back] = await store.contacts_by_e164("+14155550131")
    assert back.name == "=Formula Person" and back.company == "Acme"
