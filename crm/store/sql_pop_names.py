"""The screen pop's lookup of a caller (``contact_names_by_e164``, ``Ingest._lookup``):
every new call's first fact asks it, on the reader (SQLite's read-only connections, not
behind a batch being written).

At ten times a burst's pace (40 new calls a second, issue 17) each lookup was a trip of
its own to the reader's thread, and the trips queued for seconds behind each other and
the hub's reads of the same calls.  Lookups asked for while the readers are busy now
wait together and are read in one statement once one is free: a quiet store answers
each at once, a busy one answers a burst in one trip.

A mixin of ``SqlStore`` (``_conn``, ``_use_read``, ``_texts_in``, ``_texts_param``,
``_BY_E164``).
"""

from __future__ import annotations

import asyncio
from typing import Any

Names = list[tuple[int, str]]


class PopNameQueries:
    _names_wanted: dict[str, asyncio.Future[Names]] | None = None
    """Numbers asked for that wait for a reader, read together when one is free."""

    async def contact_names_by_e164(self, e164: str) -> Names:
        """(id, name) of the contacts having the number, as ``contact_ids_by_e164``
        orders them, read with every other number asked for while the readers were
        busy (one statement for them all)."""
        if self._conn is not None:  # type: ignore[attr-defined]  # a transaction's own
            return (await self._names_of(self._conn, [e164]))[e164]  # type: ignore[attr-defined]
        wanted = self._names_wanted
        if wanted is None:
            wanted = self._names_wanted = {}
            task = asyncio.ensure_future(self._read_names(wanted))
            task.add_done_callback(_retrieved)
        read = wanted.get(e164)
        if read is None:
            read = wanted[e164] = asyncio.get_running_loop().create_future()
        return list(await asyncio.shield(read))

    async def _read_names(self, wanted: dict[str, asyncio.Future[Names]]) -> None:
        """Wait for a reader, close the batch (numbers asked for from now on form the
        next), read it, answer every number in it (an error or a cancellation too:
        nobody waits for ever)."""
        found: dict[str, Names] | None = None
        error: BaseException | None = None
        try:
            async with self._use_read() as c:  # type: ignore[attr-defined]
                if self._names_wanted is wanted:
                    self._names_wanted = None
                found = await self._names_of(c, list(wanted))
        except BaseException as exc:
            error = exc
            if not isinstance(exc, Exception):
                raise
        finally:
            if self._names_wanted is wanted:
                self._names_wanted = None
            for e164, read in wanted.items():
                if read.done():
                    continue
                if found is not None:
                    read.set_result(found.get(e164, []))
                elif isinstance(error, Exception):
                    read.set_exception(error)
                    read.exception()  # retrieved: each caller's own handler logs it
                else:
                    read.cancel()

    async def _names_of(self, c: Any, numbers: list[str]) -> dict[str, Names]:
        if len(numbers) == 1:
            rows = await c.fetch(f"SELECT c.id, c.name {self._BY_E164}", numbers[0])  # type: ignore[attr-defined]
            return {numbers[0]: [(r["id"], r["name"]) for r in rows]}
        rows = await c.fetch(
            "SELECT p.e164 AS e164, c.id AS id, c.name AS name FROM contact_phones p "
            "JOIN contacts c ON c.id = p.contact_id "
            f"WHERE p.e164 {self._texts_in(1)} AND NOT c.erased "  # type: ignore[attr-defined]
            "ORDER BY c.last_contact_at DESC NULLS LAST, c.id DESC",
            self._texts_param(numbers),  # type: ignore[attr-defined]
        )
        out: dict[str, Names] = {n: [] for n in numbers}
        seen: set[tuple[str, int]] = set()
        for r in rows:  # a contact holding the number twice is named once
            if (r["e164"], r["id"]) not in seen:
                seen.add((r["e164"], r["id"]))
                out[r["e164"]].append((r["id"], r["name"]))
        return out


def _retrieved(task: asyncio.Future[None]) -> None:
    """The batch's own outcome is its readers' (each gets the error): mark it seen."""
    if not task.cancelled():
        task.exception()
