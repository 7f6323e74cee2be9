"""A user's own language and time zone (migration 0011), on both engines."""

from __future__ import annotations

import pytest

from crm.errors import InvalidInput
from crm.services import CrmService
from crm.store import Store


async def test_preferences_are_kept_and_audited(service: CrmService, store: Store) -> None:
    user = await service.create_user("yuki", "Yuki Tanaka", "password-123", "rep", ["105"])
    assert user.id is not None
    fresh = await store.get_user(user.id)
    assert fresh is not None and (fresh.language, fresh.timezone) == (None, None)

    await service.set_preferences(user.id, "ja", "Asia/Tokyo", "yuki")
    fresh = await store.get_user(user.id)
    assert fresh is not None and (fresh.language, fresh.timezone) == ("ja", "Asia/Tokyo")
    by_name = await store.get_user_by_username("yuki")
    by_ext = await store.user_for_extension("105")
    assert by_name is not None and by_name.timezone == "Asia/Tokyo"
    assert by_ext is not None and by_ext.language == "ja"
    # other changes to the user keep the choice
    await service.set_extensions(user.id, ["106"], "admin")
    fresh = await store.get_user(user.id)
    assert fresh is not None and (fresh.language, fresh.timezone) == ("ja", "Asia/Tokyo")

    entries = await service.list_audit(action="user.preferences")
    assert len(entries) == 1 and entries[0].detail["to"] == {
        "language": "ja", "timezone": "Asia/Tokyo"
    }  # fmt: skip

    await service.set_preferences(user.id, None, None, "yuki")  # back to "not chosen"
    fresh = await store.get_user(user.id)
    assert fresh is not None and (fresh.language, fresh.timezone) == (None, None)


@pytest.mark.parametrize(("language", "timezone"), [("ja", "Mars/Olympus"),
                                                    ("ja", "../../etc/passwd"),
                                                    ("日本語", None)])  # fmt: skip
async def test_bad_preferences_change_nothing(
    service: CrmService, store: Store, language: str, timezone: str | None
) -> None:
    user = await service.create_user("yuki", "Yuki Tanaka", "password-123", "rep")
    assert user.id is not None
    with pytest.raises(InvalidInput):
        await service.set_preferences(user.id, language, timezone, "yuki")
    fresh = await store.get_user(user.id)
    assert fresh is not None and (fresh.language, fresh.timezone) == (None, None)
