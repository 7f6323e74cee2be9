"""The reads and writes a batch of finished calls (``Ingest.record_many``) does once for
the whole batch instead of once per call.

Per call, the ingest used to ask the database the same kinds of question one at a time
(is this call known, whose extension is this, which contacts have this number) and to
make small writes (the contact's last call, the call's ``live_calls`` row, the snapshots
of calls in progress) one statement each.  On PostgreSQL each is a round trip, and the
trips, not the work, were the batch's time.  Here each is one statement per batch; the
ingest keeps the answers for the batch and applies in Python what its earlier calls
changed, so the calls mean what they would one by one.  The screen pop's lookup of a
caller (``contact_names_by_e164``) is in ``sql_pop_names``.

A mixin of ``SqlStore`` (``_use``, ``_tx``, ``_ids_in``, ``_ids_param``, ``_texts_in``,
``_texts_param``, ``_calls``, ``_users``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..models import Call, User
from .sql_common import dumps
from .sql_users import USER_COLS

LiveRow = tuple[str, int | None, dict[str, Any], float]
"""A call in progress to keep: (linkedid, link id, snapshot, at)."""


class CallBatchQueries:
    async def lock_numbers(self, numbers: Iterable[str]) -> None:
        """``lock_number`` for each, in sorted order (two batches never wait on each
        other's numbers crosswise)."""
        for number in sorted(set(numbers)):
            await self.lock_number(number)  # type: ignore[attr-defined]

    async def calls_by_linkedids(
        self, linkedids: Sequence[str], pbx_link_id: int | None
    ) -> dict[str, Call]:
        """The calls of these linkedids on that link (None: written with no link)."""
        if not linkedids:
            return {}
        from .sql_calls import CALL_COLS

        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch(
                f"SELECT {CALL_COLS} FROM calls WHERE COALESCE(pbx_link_id, 0) = $1 "
                f"AND linkedid {self._texts_in(2)}",  # type: ignore[attr-defined]
                pbx_link_id or 0,
                self._texts_param(list(dict.fromkeys(linkedids))),  # type: ignore[attr-defined]
            )
            calls = await self._calls(c, rows)  # type: ignore[attr-defined]
        return {call.linkedid: call for call in calls}

    async def users_for_extensions(self, extensions: Iterable[str]) -> dict[str, User]:
        """``user_for_extension`` for several extensions (those with a user)."""
        exts = sorted(set(extensions))
        if not exts:
            return {}
        cols = ", ".join("u." + x.strip() for x in USER_COLS.split(","))
        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch(
                f"SELECT e.extension AS ext, {cols} FROM user_extensions e "
                f"JOIN users u ON u.id = e.user_id WHERE e.extension {self._texts_in(1)}",  # type: ignore[attr-defined]
                self._texts_param(exts),  # type: ignore[attr-defined]
            )
            users = await self._users(c, rows)  # type: ignore[attr-defined]
        return {r["ext"]: user for r, user in zip(rows, users, strict=True)}

    async def contact_ids_by_numbers(self, numbers: Iterable[str]) -> dict[str, list[int]]:
        """The contacts (not erased) having each number, in no particular order (the
        ingest orders them as ``contact_ids_by_e164`` does, by the last contact it
        knows)."""
        wanted = sorted(set(numbers))
        out: dict[str, list[int]] = {n: [] for n in wanted}
        if not wanted:
            return out
        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch(
                "SELECT DISTINCT p.e164 AS e164, c.id AS id FROM contact_phones p "
                "JOIN contacts c ON c.id = p.contact_id "
                f"WHERE p.e164 {self._texts_in(1)} AND NOT c.erased",  # type: ignore[attr-defined]
                self._texts_param(wanted),  # type: ignore[attr-defined]
            )
        for r in rows:
            out[r["e164"]].append(r["id"])
        return out

    async def numbers_with_open_callbacks(self, numbers: Iterable[str]) -> set[str]:
        """Which of these numbers have an open callback task."""
        wanted = sorted(set(numbers))
        if not wanted:
            return set()
        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch(
                "SELECT DISTINCT number_e164 FROM callback_tasks "
                f"WHERE status = 'open' AND number_e164 {self._texts_in(1)}",  # type: ignore[attr-defined]
                self._texts_param(wanted),  # type: ignore[attr-defined]
            )
        return {r["number_e164"] for r in rows}

    async def touch_contacts(self, last_contact: Mapping[int, float]) -> None:
        """``touch_contact`` for several contacts: one statement."""
        async with self._use() as c:  # type: ignore[attr-defined]
            await c.executemany(
                "UPDATE contacts SET last_contact_at = $2 WHERE id = $1 "
                "AND (last_contact_at IS NULL OR last_contact_at < $2)",
                sorted(last_contact.items()),
            )

    async def delete_live_calls(self, linkedids: Sequence[str], pbx_link_id: int | None) -> None:
        """``delete_live_call`` for several calls of one link: one statement."""
        if not linkedids:
            return
        async with self._use() as c:  # type: ignore[attr-defined]
            await c.execute(
                "DELETE FROM live_calls WHERE COALESCE(pbx_link_id, 0) = $1 "
                f"AND linkedid {self._texts_in(2)}",  # type: ignore[attr-defined]
                pbx_link_id or 0,
                self._texts_param(list(linkedids)),  # type: ignore[attr-defined]
            )

    async def save_live_calls(self, rows: Sequence[LiveRow]) -> None:
        """``save_live_call`` for several calls in progress: those whose record exists
        are skipped, the rest kept, in two statements per link."""
        by_link: dict[int | None, list[LiveRow]] = {}
        for row in rows:
            by_link.setdefault(row[1], []).append(row)
        async with self._tx() as c:  # type: ignore[attr-defined]
            for link, items in by_link.items():
                done = {
                    r["linkedid"]
                    for r in await c.fetch(
                        "SELECT linkedid FROM calls WHERE COALESCE(pbx_link_id, 0) = $1 "
                        f"AND linkedid {self._texts_in(2)}",  # type: ignore[attr-defined]
                        link or 0,
                        self._texts_param([r[0] for r in items]),  # type: ignore[attr-defined]
                    )
                }
                await c.executemany(
                    "INSERT INTO live_calls (linkedid, pbx_link_id, snapshot, updated_at) "
                    "VALUES ($1, $2, $3, $4) ON CONFLICT (COALESCE(pbx_link_id, 0), linkedid) "
                    "DO UPDATE SET snapshot = excluded.snapshot, "
                    "updated_at = excluded.updated_at",
                    [(i, lnk, dumps(snap), at) for i, lnk, snap, at in items if i not in done],
                )
