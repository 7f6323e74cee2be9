"""The recordings catalogue as the ``recordings/`` module sees it: which files still
need checking, what was found (duration, transcoded copy, size, error), and which are
old enough for retention.  The CRM keeps the facts; the recordings module touches files.

The signatures repeat ``recordings.catalog.RecordingCatalog`` on purpose: that protocol
is what ``recordings/`` is written against without importing the CRM, and these methods
(which validate) are what satisfies it.  What a check found is the protocol's one list,
``Findings``, named here for type checkers only: the CRM needs nothing of ``recordings/``
to run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Unpack

from .errors import InvalidInput
from .models import RECORDING_STATUSES, RecordingRow, RecordingStatus

if TYPE_CHECKING:
    from recordings.catalog import Findings

    from .store import Store


_UNSAID: Findings = {
    "duration_seconds": None,
    "media_path": None,
    "size_bytes": None,
    "error": None,
}
"""A fact a check does not mention, as the store takes it: None (kept; ``error``: none)."""


class RecordingServices:
    store: Store

    async def recordings_to_check(self, limit: int = 100) -> list[RecordingRow]:
        """Pending files, and missing ones not given up on (they may still turn up),
        oldest first."""
        return await self.store.recordings_to_check(max(1, min(limit, 10_000)))

    async def update_recording(
        self, rec_id: int, *, status: RecordingStatus, at: float, **found: Unpack[Findings]
    ) -> bool:
        """Record a check's result (``Findings`` says what each fact left out or None
        does).  False when the recording no longer exists (erased meanwhile)."""
        if status not in RECORDING_STATUSES:
            raise InvalidInput(f"recording status must be one of {', '.join(RECORDING_STATUSES)}")
        return await self.store.update_recording(rec_id, status=status, at=at, **(_UNSAID | found))

    async def get_recording(self, rec_id: int) -> RecordingRow | None:
        return await self.store.get_recording(rec_id)

    async def recordings_for_call(self, call_id: int) -> list[RecordingRow]:
        return await self.store.recordings_for_call(call_id)

    async def recordings_older_than(self, before: float, limit: int = 500) -> list[RecordingRow]:
        """Retention candidates: not yet deleted, created before ``before``, oldest first."""
        return await self.store.recordings_older_than(before, max(1, min(limit, 10_000)))

    async def mark_recording_deleted(self, rec_id: int, at: float) -> bool:
        """The file is gone (retention): the row stays so the call shows it existed."""
        return await self.store.mark_recording_deleted(rec_id, at)
