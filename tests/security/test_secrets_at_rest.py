"""Secrets at rest (ASVS 6.4.1): what a copy of the SQLite file gives away.

The tests read the raw ``settings`` rows with the sqlite3 module, as someone holding a
backup would, and the files' permission bits as another local user would meet them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from crm.policy import LeadPolicy
from crm.secretbox import SecretBox
from crm.services import CrmService
from crm.store import Store
from tests.crm.conftest import pg_database, store, store_url
from tests.web.conftest import web_settings
from web.pages.admin import apply_stored_settings
from web.runtime import Runtime, open_runtime

__all__ = ["pg_database", "store", "store_url"]  # the two-engine fixtures of tests/crm
AMI_SECRET = "Ami-Plain-Secret-55e1"
HOOK_SECRET = "Hook-Plain-Secret-93b0"


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask most servers run with (files 0644 unless the program says otherwise)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def raw_settings(db: Path) -> dict[str, str]:
    con = sqlite3.connect(db)
    try:
        return {s: v for s, v in con.execute("SELECT section, value FROM settings")}
    finally:
        con.close()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_stored_secrets_are_encrypted(tmp_path: Path, usual_umask: None) -> None:
    rt = await open_runtime(web_settings(tmp_path), with_link=False)
    try:
        await rt.service.put_setting("ami", {"host": "10.0.0.5", "secret": AMI_SECRET}, "admin")
        await rt.service.put_setting("webhooks", {"targets": [
            {"url": "https://hooks.example/a", "secret": HOOK_SECRET}]}, "admin")  # fmt: skip
        raw = raw_settings(tmp_path / "crm.db")
        assert AMI_SECRET not in raw["ami"] and HOOK_SECRET not in raw["webhooks"]
        assert json.loads(raw["ami"])["secret"].startswith("enc:v1:")
        assert json.loads(raw["ami"])["host"] == "10.0.0.5"  # only secrets are encrypted
        # the CRM itself reads them back in clear
        assert (await rt.service.get_setting("ami"))["secret"] == AMI_SECRET
        hooks = await rt.service.get_setting("webhooks")
        assert hooks["targets"][0]["secret"] == HOOK_SECRET
        # saving again without the secret keeps it (merged in clear, stored sealed)
        await rt.service.put_setting("ami", {"port": 5039}, "admin")
        assert (await rt.service.get_setting("ami"))["secret"] == AMI_SECRET
        assert AMI_SECRET not in raw_settings(tmp_path / "crm.db")["ami"]
        # the database files: owner only
        for name in ("crm.db", "crm.db-wal", "crm.db-shm"):
            assert (tmp_path / name).exists(), name
            assert mode(tmp_path / name) == 0o600, f"{name} is {oct(mode(tmp_path / name))}"
    finally:
        await rt.close()


async def test_plain_secrets_and_open_files_of_an_older_install_are_fixed_on_start(
    tmp_path: Path, usual_umask: None
) -> None:
    db = tmp_path / "crm.db"
    rt = await open_runtime(web_settings(tmp_path), with_link=False)
    await rt.close()
    # what an older version left: plain secrets, files readable by everyone
    con = sqlite3.connect(db)
    con.execute("INSERT INTO settings (section, value, updated_at) VALUES (?, ?, 0)",
                ("ami", json.dumps({"host": "10.0.0.5", "secret": AMI_SECRET})))  # fmt: skip
    con.execute("INSERT INTO settings (section, value, updated_at) VALUES (?, ?, 0)",
                ("webhooks", json.dumps({"targets": [{"url": "https://h.example/",
                                                      "secret": HOOK_SECRET}]})))  # fmt: skip
    con.commit()
    con.close()
    os.chmod(db, 0o644)
    assert AMI_SECRET in raw_settings(db)["ami"]
    rt = await open_runtime(web_settings(tmp_path), with_link=False)
    try:
        raw = raw_settings(db)
        assert AMI_SECRET not in raw["ami"] and HOOK_SECRET not in raw["webhooks"]
        assert mode(db) == 0o600
        await apply_stored_settings(rt)
        assert rt.settings["ami"]["secret"] == AMI_SECRET  # the link still logs in
        assert rt.settings["ami"]["host"] == "10.0.0.5"
    finally:
        await rt.close()


async def test_another_install_key_cannot_read_the_secrets(tmp_path: Path) -> None:
    rt = await open_runtime(web_settings(tmp_path), with_link=False)
    try:
        await rt.service.put_setting("ami", {"secret": AMI_SECRET}, "admin")
    finally:
        await rt.close()
    other = web_settings(tmp_path, server={"key_file": str(tmp_path / "other.key")})
    rt2: Runtime = await open_runtime(other, with_link=False)
    try:
        assert (await rt2.service.get_setting("ami"))["secret"] == ""
    finally:
        await rt2.close()


async def test_sealing_works_on_both_engines(store: Store) -> None:
    """Plain secrets found at start are sealed in place on SQLite and PostgreSQL alike."""
    await store.put_setting("ami", {"host": "h", "secret": AMI_SECRET}, 1.0)
    await store.put_setting("numbers", {"default_region": "US"}, 1.0)
    service = CrmService(store, LeadPolicy())
    service.secret_box = SecretBox(b"k" * 32)
    assert await service.seal_stored_secrets() == ["ami"]
    assert await service.seal_stored_secrets() == []  # once
    raw = await store.get_setting("ami")
    assert raw is not None and raw["secret"].startswith("enc:v1:") and raw["host"] == "h"
    assert (await service.get_setting("ami"))["secret"] == AMI_SECRET
