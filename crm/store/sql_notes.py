"""Notes reps write on calls (topic, result, comment), read per call and per contact.
A mixin of ``SqlStore`` (uses ``_use``)."""

from __future__ import annotations

from ..models import Note

NOTE_COLS = "id, call_id, author_id, topic, result, comment, created_at, updated_at, updated_by"


class NoteQueries:
    async def add_note(self, note: Note) -> Note:
        note.id = await self._inserted(
            "notes", note, "call_id, author_id, topic, result, comment, created_at"
        )
        return note

    async def notes_for_call(self, call_id: int) -> list[Note]:
        async with self._use() as c:
            rows = await c.fetch(
                f"SELECT {NOTE_COLS} FROM notes WHERE call_id = $1 ORDER BY id",
                call_id,
            )
        return [Note(**dict(r)) for r in rows]

    async def get_note(self, note_id: int) -> Note | None:
        async with self._use() as c:
            row = await c.fetchrow(f"SELECT {NOTE_COLS} FROM notes WHERE id = $1", note_id)
        return Note(**dict(row)) if row else None

    async def update_note(self, note: Note) -> None:
        """Topic, result, comment, ``updated_at`` and ``updated_by`` of ``note.id``."""
        async with self._use() as c:
            await c.execute(
                "UPDATE notes SET topic = $2, result = $3, comment = $4, updated_at = $5, "
                "updated_by = $6 WHERE id = $1",
                note.id,
                note.topic,
                note.result,
                note.comment,
                note.updated_at,
                note.updated_by,
            )

    async def notes_for_contact(self, contact_id: int, limit: int = 500) -> list[Note]:
        """Notes on the contact's calls, newest first."""
        async with self._use() as c:
            rows = await c.fetch(
                "SELECT n.id, n.call_id, n.author_id, n.topic, n.result, n.comment, "
                "n.created_at, n.updated_at, n.updated_by FROM notes n "
                "JOIN calls ON calls.id = n.call_id "
                "WHERE calls.contact_id = $1 ORDER BY n.created_at DESC, n.id DESC LIMIT $2",
                contact_id,
                limit,
            )
        return [Note(**dict(r)) for r in rows]
