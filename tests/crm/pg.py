"""A PostgreSQL for the test session: the local server when it answers, else a
throwaway cluster from the installed binaries.  Never a skip: the store suite must run
on both engines or fail."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

LOCAL_CANDIDATES = (
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://root@127.0.0.1:5432/test",
    "postgresql://postgres@127.0.0.1:5432/postgres",
)


async def _answers(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


def _bin_dir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def throwaway_server() -> Iterator[str]:
    """initdb + pg_ctl in a temp dir (as user postgres when we are root)."""
    bindir = _bin_dir()
    if bindir is None:
        raise RuntimeError("no PostgreSQL binaries (initdb) installed")
    tmp = tempfile.mkdtemp(prefix="crm-pg-")
    data, port = os.path.join(tmp, "data"), _free_port()
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    run = lambda *args: subprocess.run(  # noqa: E731
        [*prefix, *args], check=True, capture_output=True, text=True
    )
    run(f"{bindir}/initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync")
    run(
        f"{bindir}/pg_ctl", "-D", data, "-w", "-l", os.path.join(tmp, "log"),
        "-o", f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off",
        "start",
    )  # fmt: skip
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
                       capture_output=True)  # fmt: skip
        shutil.rmtree(tmp, ignore_errors=True)


async def _create_db(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_db(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextmanager
def session_database() -> Iterator[str]:
    """A fresh database for this test session on whichever server we can get."""
    server: str | None = None
    if not os.environ.get("CRM_TEST_PG_THROWAWAY"):
        for url in (os.environ.get("CRM_TEST_PG_URL"), *LOCAL_CANDIDATES):
            if url and asyncio.run(_answers(url)):
                server = url
                break
    with _maybe_throwaway(server) as server_url:
        name = f"crm_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        asyncio.run(_create_db(server_url, name))
        base, _, _ = server_url.rpartition("/")
        try:
            yield f"{base}/{name}"
        finally:
            asyncio.run(_drop_db(server_url, name))


@contextmanager
def _maybe_throwaway(server: str | None) -> Iterator[str]:
    if server is not None:
        yield server
        return
    with throwaway_server() as url:
        yield url
