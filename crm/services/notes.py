"""Notes on a call: written by whoever took it, changed by their author or a manager who
may see the call, the old text kept in the audit log."""

from __future__ import annotations

from ..errors import Forbidden, InvalidInput, NotFound
from ..limits import NOTE_COMMENT_MAX, NOTE_RESULT_MAX, NOTE_TOPIC_MAX, check_text
from ..models import Note, User
from .calls import CallServices
from .teams import TeamServices


class NoteServices(CallServices, TeamServices):
    async def add_note(
        self,
        call_id: int,
        author_id: int | None,
        topic: str = "",
        result: str = "",
        comment: str = "",
    ) -> Note:
        topic, result, comment = _note_text(topic, result, comment)
        await self.get_call(call_id)
        note = Note(None, call_id, author_id, topic, result, comment, self.clock())
        return await self.store.add_note(note)

    async def notes(self, call_id: int) -> list[Note]:
        return await self.store.notes_for_call(call_id)

    async def edit_note(
        self, user: User, note_id: int, topic: str = "", result: str = "", comment: str = ""
    ) -> Note:
        """Change a note: its author may, and managers and admins who may see its call.
        The previous text goes to the audit log (``note.edited``), so nothing said is
        lost."""
        note = await self.store.get_note(note_id)
        if note is None:
            raise NotFound(f"note {note_id}")
        call = await self.get_call(note.call_id)
        if not await self.can_see_call(await self.scope_for(user), call):
            raise NotFound(f"note {note_id}")
        if note.author_id != user.id and user.role not in ("manager", "admin"):
            raise Forbidden("only the author of a note (or a manager) can change it")
        topic, result, comment = _note_text(topic, result, comment)
        before = {"topic": note.topic, "result": note.result, "comment": note.comment}
        note.topic, note.result, note.comment = topic, result, comment
        note.updated_at, note.updated_by = self.clock(), user.id
        async with self.store.transaction() as tx:
            await tx.update_note(note)
            await self.audit(
                user.username, "note.edited", f"note:{note_id}",
                {"call": note.call_id, "before": before}, tx,
            )  # fmt: skip
        return note


def _note_text(topic: str, result: str, comment: str) -> tuple[str, str, str]:
    """A note's three texts trimmed, refused when all are empty or one is too long."""
    topic, result, comment = topic.strip(), result.strip(), comment.strip()
    if not (topic or result or comment):
        raise InvalidInput("an empty note")
    check_text("topic", topic, NOTE_TOPIC_MAX)
    check_text("result", result, NOTE_RESULT_MAX)
    check_text("comment", comment, NOTE_COMMENT_MAX)
    return topic, result, comment
