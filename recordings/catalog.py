"""What the recordings package needs from the CRM: the ``call_recordings`` catalogue.

The recordings code never touches SQL; it talks to this ``RecordingCatalog`` protocol, which
``crm.services.CrmService`` satisfies and which tests fake in memory.  ``RecordingRowLike`` is
the structural shape of ``crm.models.RecordingRow`` so this module does not import the CRM.

Times are epoch seconds (floats), like every other time in the CRM.
"""

from __future__ import annotations

from typing import Literal, Protocol, TypedDict, Unpack

RecordingStatus = Literal["pending", "ready", "missing", "corrupt", "deleted"]
STATUSES: tuple[RecordingStatus, ...] = ("pending", "ready", "missing", "corrupt", "deleted")

GAVE_UP = "file never appeared"
"""The error a ``missing`` row carries once the worker stopped waiting for its file; the
catalogue's ``recordings_to_check`` should then leave the row out (the worker skips it anyway)."""


class RecordingRowLike(Protocol):
    """One catalogued recording file of a call (read-only view)."""

    @property
    def id(self) -> int: ...
    @property
    def call_id(self) -> int: ...
    @property
    def path(self) -> str:
        """The file name as the PBX reported it (a base name, sometimes a full PBX path)."""

    @property
    def status(self) -> RecordingStatus: ...
    @property
    def duration_seconds(self) -> float | None: ...
    @property
    def media_path(self) -> str | None:
        """Base name of the transcoded file inside the media cache directory."""

    @property
    def size_bytes(self) -> int | None:
        """Size of the transcoded media file (what the browser downloads)."""

    @property
    def error(self) -> str | None: ...
    @property
    def checked_at(self) -> float | None: ...
    @property
    def created_at(self) -> float: ...


class Findings(TypedDict, total=False):
    """What one check of a file found, as ``update_recording`` keywords.  A fact left out
    or None keeps what was known (a file that went missing keeps its duration), except
    ``error``, which is replaced (a good check clears an old error).  The one list of
    them: ``crm.catalogue`` takes the same keywords through it."""

    duration_seconds: float | None
    media_path: str | None
    """Base name of the transcoded file inside the media cache directory."""
    size_bytes: int | None
    error: str | None


class RecordingCatalog(Protocol):
    """The catalogue service methods (implemented by ``crm.services.CrmService``)."""

    async def recordings_to_check(self, limit: int = 100) -> list[RecordingRowLike]:
        """Rows the worker should look at: ``pending``, and ``missing`` not yet given up."""
        ...

    async def update_recording(
        self, rec_id: int, *, status: RecordingStatus, at: float, **found: Unpack[Findings]
    ) -> bool:
        """False when the row no longer exists (erased meanwhile)."""
        ...

    async def get_recording(self, rec_id: int) -> RecordingRowLike | None: ...

    async def recordings_for_call(self, call_id: int) -> list[RecordingRowLike]: ...

    async def recordings_older_than(self, before: float, limit: int) -> list[RecordingRowLike]:
        """Rows created before ``before`` that are not ``deleted`` yet."""
        ...

    async def mark_recording_deleted(self, rec_id: int, at: float) -> bool: ...
