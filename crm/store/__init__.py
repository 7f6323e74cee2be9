"""The CRM's persistence: one interface (``Store``), two engines chosen by URL.

``sqlite:///path.db`` (or a bare path, or ``:memory:``) opens the embedded engine;
``postgresql://user@host/db`` (optionally ``?schema=name``) opens the server engine.
Migrations run on open, and on their own through ``migrate(url)``.
"""

from __future__ import annotations

from .interface import ANY_LINK, AnyLink, CallCursor, Store
from .params import ContactSearch

__all__ = ["ANY_LINK", "AnyLink", "CallCursor", "ContactSearch", "Store", "migrate", "open_store"]


def _sqlite_path(url: str) -> str | None:
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :] or ":memory:"
    if url.startswith("sqlite://"):
        return url[len("sqlite://") :] or ":memory:"
    if "://" not in url:
        return url
    return None


async def open_store(url: str, migrate: bool = True) -> Store:
    """Open (and by default migrate) the store ``url`` names."""
    path = _sqlite_path(url)
    if path is not None:
        from .sqlite import SqliteStore

        return await SqliteStore.open(path, migrate=migrate)
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return await PostgresStore.open(url, migrate=migrate)
    raise ValueError(f"unsupported store URL {url!r}: use sqlite:///path or postgresql://...")


async def migrate(url: str) -> int:
    """Bring the schema at ``url`` up to date; returns the resulting schema version."""
    store = await open_store(url, migrate=True)
    try:
        return await store.schema_version()
    finally:
        await store.close()
