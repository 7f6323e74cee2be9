"""The store's web sessions and API token expiry/scope, on both engines."""

from __future__ import annotations

from crm.models import User, WebSession
from crm.store import Store


async def _user(store: Store, name: str) -> int:
    user = await store.add_user(User(None, name, name.title(), "rep", password_hash="x"), 1.0)
    assert user.id is not None
    return user.id


async def test_sessions_live_end_and_are_purged(store: Store) -> None:
    alice, bob = await _user(store, "alice"), await _user(store, "bob")
    for sid, uid, at in (("a1", alice, 100.0), ("a2", alice, 200.0), ("a3", alice, 300.0),
                         ("b1", bob, 100.0)):  # fmt: skip
        await store.add_web_session(WebSession(sid, uid, at, at, address="198.51.100.7",
                                               user_agent="x" * 1000))  # fmt: skip
    row = await store.get_web_session("a1")
    assert row is not None and row.user_id == alice and row.ended_at is None
    assert row.address == "198.51.100.7" and len(row.user_agent) == 300
    await store.touch_web_session("a1", 150.0)
    await store.touch_web_session("a1", 120.0)  # never backwards
    assert (await store.get_web_session("a1")).last_seen_at == 150.0  # type: ignore[union-attr]
    assert [s.id for s in await store.list_web_sessions(alice)] == ["a3", "a2", "a1"]
    assert await store.end_web_sessions(alice, 400.0, only="a2") == 1
    assert await store.end_web_sessions(alice, 401.0, keep="a3") == 1  # a1 (a2 was over)
    assert [s.id for s in await store.list_web_sessions(alice)] == ["a3"]
    assert await store.end_web_sessions(alice, 402.0) == 1
    assert await store.list_web_sessions(alice) == []
    await store.touch_web_session("a3", 500.0)  # an ended session is not revived
    ended = await store.get_web_session("a3")
    assert ended is not None and ended.ended_at == 402.0 and ended.last_seen_at == 300.0
    assert [s.id for s in await store.list_web_sessions(bob)] == ["b1"]
    await store.add_web_session(WebSession("b2", bob, 450.0, 450.0))
    assert await store.purge_web_sessions(401.5) == 4  # ended or idle since before 401.5
    assert await store.get_web_session("b1") is None
    assert [s.id for s in await store.list_web_sessions(bob)] == ["b2"]


async def test_tokens_expire_and_carry_their_scope(store: Store) -> None:
    alice = await _user(store, "alice")
    await store.add_api_token(alice, "forever", "h1", 10.0)
    await store.add_api_token(alice, "short", "h2", 10.0, expires_at=100.0, scope="read")
    found = await store.token_for_hash("h2", 99.0)
    assert found is not None and found[0].id == alice
    assert found[1].scope == "read" and found[1].expires_at == 100.0
    assert await store.token_for_hash("h2", 100.0) is None
    assert await store.user_for_token_hash("h2", 150.0) is None
    forever = await store.token_for_hash("h1", 1e12)
    assert forever is not None and forever[1].scope == "full" and forever[1].expires_at is None
    listed = {t.name: t for t in await store.list_api_tokens(alice)}
    assert listed["short"].live(99.0) and not listed["short"].live(100.0)
    assert listed["short"].last_used_at == 99.0
