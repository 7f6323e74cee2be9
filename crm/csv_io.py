"""Contacts in and out as CSV, the format every spreadsheet and old CRM speaks.

Import is all or nothing: the file is read and checked completely first, and written in
one transaction; a file that cannot be read (wrong encoding, too big, not CSV) is refused
with a message saying what to do.  With ``strict`` (the default) a single bad row means
nothing is written, and the report lists every row that was refused and why.

Export is safe to open in a spreadsheet: a cell that starts like a formula is prefixed
with a quote (OWASP "CSV injection").
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from .access import Scope
from .errors import InvalidInput
from .limits import CELL_MAX, COMPANY_MAX, EMAIL_MAX, NAME_MAX, check_custom
from .models import LEAD_STATUSES, Contact, Lead, PhoneNumber
from .phones import normalize
from .services import CrmService

MAX_BYTES = 10 * 1024 * 1024
MAX_ROWS = 200_000
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PHONE_COLUMN = re.compile(r"^(phone|phones|mobile|cell|tel|telephone|work|home|fax)[ _]?\d*$")
_LIST_SPLIT = re.compile(r"[;|,]")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
KNOWN = {
    "name",
    "company",
    "email",
    "tags",
    "owner",
    "custom",
    "id",
    "lead_status",
    "lead_source",
    "created_at",
}


class ImportFileError(ValueError):
    """The file as a whole cannot be imported; nothing was changed."""


@dataclass(frozen=True, slots=True)
class RowProblem:
    line: int
    """Line number in the file (the header is line 1)."""
    reason: str


@dataclass(slots=True)
class ImportReport:
    rows: int = 0
    created: int = 0
    merged: int = 0
    rejected: list[RowProblem] = field(default_factory=list)
    applied: bool = False


def _decode(data: bytes, max_bytes: int) -> str:
    if len(data) > max_bytes:
        raise ImportFileError(
            f"the file is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB, "
            "split it into smaller files"
        )
    if b"\x00" in data[:65536]:
        raise ImportFileError("this is not a text file (save the sheet as 'CSV UTF-8')")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            f"the file is not UTF-8 (bad byte at position {exc.start}); "
            "save it as 'CSV UTF-8' and try again"
        ) from exc


def _unguard(cell: str) -> str:
    """Undo our own export guard so an exported file imports unchanged."""
    cell = cell.strip()
    if len(cell) > 1 and cell[0] == "'" and cell[1] in FORMULA_STARTS:
        return cell[1:]
    return cell


def _read_rows(text: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    sample = text[:8192]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration as exc:
        raise ImportFileError("the file is empty") from exc
    except csv.Error as exc:
        raise ImportFileError(f"not a readable CSV file: {exc}") from exc
    if "name" not in header and not any(_PHONE_COLUMN.match(h) for h in header):
        raise ImportFileError("the first line must name the columns: name, company, phone, ...")
    if len(set(header)) != len(header):
        raise ImportFileError("two columns have the same name")
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for values in reader:
            if len(rows) >= MAX_ROWS:
                raise ImportFileError(f"more than {MAX_ROWS} rows; split the file")
            if not any(v.strip() for v in values):
                continue
            rows.append((reader.line_num, dict(zip(header, values, strict=False))))
            if len(values) > len(header):
                rows[-1][1]["\x00extra"] = "yes"
    except csv.Error as exc:
        raise ImportFileError(f"not a readable CSV file (line {reader.line_num}): {exc}") from exc
    return header, rows


@dataclass(slots=True)
class _Pending:
    contact: Contact
    existing: bool


async def import_contacts(
    service: CrmService,
    data: bytes,
    actor: str,
    owner_id: int | None = None,
    strict: bool = True,
    max_bytes: int = MAX_BYTES,
) -> ImportReport:
    """Read ``data`` (the uploaded file's bytes) and add or merge its contacts."""
    header, rows = _read_rows(_decode(data, max_bytes))
    region = service.policy.default_region
    report = ImportReport(rows=len(rows))
    now = service.clock()
    async with service.store.transaction() as tx:
        users = {u.username.lower(): u.id for u in await tx.list_users(include_inactive=False)}
        by_number: dict[str, _Pending] = {}
        pending: list[_Pending] = []
        for line, row in rows:
            problem, fields = _parse_row(row, header, region, users)
            if problem:
                report.rejected.append(RowProblem(line, problem))
                continue
            assert fields is not None
            phones: list[PhoneNumber] = fields.pop("phones")
            target: _Pending | None = None
            for phone in phones:
                assert phone.e164 is not None
                target = by_number.get(phone.e164)
                if target is None:
                    found = await tx.contacts_by_e164(phone.e164)
                    if found:
                        target = _Pending(found[0], existing=True)
                        pending.append(target)
                        for p in found[0].phones:
                            if p.e164:
                                by_number[p.e164] = target
                if target is not None:
                    break
            if target is None:
                contact = Contact(
                    id=None,
                    name="",
                    owner_id=owner_id,
                    lead=None,
                    created_at=now,
                    updated_at=now,
                )
                target = _Pending(contact, existing=False)
                pending.append(target)
                report.created += 1
            else:
                report.merged += 1
            _merge_into(target.contact, fields, phones, now)
            for phone in phones:
                assert phone.e164 is not None
                by_number[phone.e164] = target
        if report.rejected and strict:
            report.created = report.merged = 0
            return report
        new = [p.contact for p in pending if not p.existing]
        for contact in new:
            if not contact.name:
                contact.name = contact.phones[0].raw if contact.phones else "(no name)"
        await tx.bulk_load_contacts(new)
        for p in pending:
            if p.existing:
                await tx.update_contact(p.contact)
        await service.audit(
            actor,
            "contact.imported",
            "contacts",
            {"created": report.created, "merged": report.merged, "rejected": len(report.rejected)},
            tx,
        )
        report.applied = True
    return report


def _parse_row(
    row: dict[str, str], header: list[str], region: str, users: dict[str, int | None]
) -> tuple[str | None, dict[str, Any] | None]:
    if row.pop("\x00extra", None):
        return "more cells than there are columns", None
    for column, limit in (("name", NAME_MAX), ("company", COMPANY_MAX), ("email", EMAIL_MAX)):
        if len(row.get(column) or "") > limit:
            return f"{column}: at most {limit} characters", None
    for column, cell in row.items():
        if column != "custom" and len(cell or "") > CELL_MAX:
            return f"{column}: a cell of at most {CELL_MAX} characters", None
    name = _unguard(row.get("name", ""))
    email = _unguard(row.get("email", ""))
    if email and not _EMAIL.match(email):
        return f"e-mail {email!r} is not an address", None
    phones: list[PhoneNumber] = []
    for column in header:
        if not _PHONE_COLUMN.match(column):
            continue
        cell = _unguard(row.get(column, ""))
        parts = _LIST_SPLIT.split(cell) if column == "phones" else [cell]
        for part in (p.strip() for p in parts):
            if not part:
                continue
            e164 = normalize(part, region)
            if e164 is None:
                return f"{column} {part!r} is not a phone number", None
            if all(p.e164 != e164 for p in phones):
                label = "" if column in ("phone", "phones") else column
                phones.append(PhoneNumber(part, e164, label))
    if not name and not phones:
        return "no name and no phone number", None
    owner = _unguard(row.get("owner", ""))
    owner_id = None
    if owner:
        if owner.lower() not in users:
            return f"owner {owner!r} is not an active user", None
        owner_id = users[owner.lower()]
    custom: dict[str, Any] = {}
    raw_custom = _unguard(row.get("custom", ""))
    if raw_custom:
        try:
            parsed = json.loads(raw_custom)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            return "column custom must hold a JSON object", None
        custom.update(parsed)
    for column in header:
        if column not in KNOWN and not _PHONE_COLUMN.match(column) and column:
            value = _unguard(row.get(column, ""))
            if value:
                custom[column] = value
    try:
        check_custom(custom)
    except InvalidInput as exc:
        return str(exc), None
    lead = _unguard(row.get("lead_status", "")).lower() or None
    if lead is not None and lead not in LEAD_STATUSES:
        return f"lead_status {lead!r} is not one of {', '.join(LEAD_STATUSES)}", None
    tags = [t.strip() for t in _LIST_SPLIT.split(_unguard(row.get("tags", ""))) if t.strip()]
    return None, {
        "name": name,
        "company": _unguard(row.get("company", "")),
        "email": email,
        "owner_id": owner_id,
        "tags": tags,
        "custom": custom,
        "phones": phones,
        "lead": lead,
    }


def _merge_into(
    contact: Contact, fields: dict[str, Any], phones: list[PhoneNumber], now: float
) -> None:
    """Fill what the contact lacks; never overwrite what someone already typed."""
    for key in ("name", "company", "email"):
        if not getattr(contact, key) and fields[key]:
            setattr(contact, key, fields[key])
    if contact.owner_id is None and fields["owner_id"] is not None:
        contact.owner_id = fields["owner_id"]
    contact.tags = sorted(set(contact.tags) | set(fields["tags"]))
    contact.custom = {**fields["custom"], **contact.custom}
    known = {p.e164 for p in contact.phones}
    contact.phones.extend(p for p in phones if p.e164 not in known)
    if contact.id is None and contact.lead is None and fields["lead"]:
        contact.lead = Lead(fields["lead"], "import", now)
    contact.updated_at = now


# -- export --------------------------------------------------------------------------
EXPORT_COLUMNS = (
    "id",
    "name",
    "company",
    "email",
    "phones",
    "tags",
    "owner",
    "lead_status",
    "lead_source",
    "created_at",
    "custom",
)


def guard(cell: str) -> str:
    """Make a cell inert in spreadsheets: no formula, no DDE."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def _cells(contact: Contact, owners: dict[int | None, str]) -> Iterable[str]:
    created = dt.datetime.fromtimestamp(contact.created_at, tz=dt.UTC).isoformat(timespec="seconds")
    return (
        str(contact.id),
        contact.name,
        contact.company,
        contact.email,
        "; ".join(p.e164 or p.raw for p in contact.phones),
        "; ".join(contact.tags),
        owners.get(contact.owner_id, ""),
        contact.lead.status if contact.lead else "",
        contact.lead.source if contact.lead else "",
        created,
        json.dumps(contact.custom, ensure_ascii=False) if contact.custom else "",
    )


async def export_contacts(
    service: CrmService,
    out: TextIO,
    actor: str,
    owner_id: int | None = None,
    batch: int = 1000,
    scope: Scope | None = None,
) -> int:
    """Write every live contact (or one owner's, or those ``scope`` sees) to ``out``;
    returns how many."""
    owners = {u.id: u.username for u in await service.store.list_users(include_inactive=True)}
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    count, after = 0, None
    while True:
        contacts = await service.store.list_contacts(
            after, batch, owner_id, scope.ids() if scope else None
        )
        for contact in contacts:
            writer.writerow([guard(cell) for cell in _cells(contact, owners)])
        count += len(contacts)
        if len(contacts) < batch:
            break
        after = contacts[-1].id
    await service.audit(
        actor, "contact.exported", "contacts", {"count": count, "owner_id": owner_id}
    )
    return count
