"""`run.py --demo`: the replay PBX feeds recorded calls through the real link into the CRM,
and the sample people can log in."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from web.server import start

from .conftest import web_settings

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_demo_mode_shows_calls_arriving(tmp_path: Path) -> None:
    port = _free_port()
    settings = web_settings(tmp_path, server={"port": port}, demo={"speed": 50.0})
    rt, runner = await start(settings, demo=True)
    try:
        assert rt.link is not None
        await rt.link.wait_state("connected")
        deadline = time.monotonic() + 30
        while await rt.store.count_calls() < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert await rt.store.count_calls() >= 5
        assert rt.settings["ami"]["secret"] != "crmsecret"  # the demo PBX gets a fresh secret
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            page = await http.get(f"http://127.0.0.1:{port}/login")
            text = await page.text()
            token = text.split('name="csrf-token" content="')[1].split('"')[0]
            resp = await http.post(
                f"http://127.0.0.1:{port}/login",
                data={"username": "alice", "password": "demo-pass-2026", "_csrf": token},
            )
            assert resp.status == 200
            assert "Alice Rep" in await resp.text()
    finally:
        await runner.cleanup()
        await rt.close()


def test_run_py_reports_bad_settings_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nport = ")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "--config", str(bad), "migrate"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "bad.toml" in proc.stderr and "Traceback" not in proc.stderr


def test_run_py_migrate(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "migrate"],
        capture_output=True, text=True, timeout=60,
        env={"CRM__DATABASE__URL": f"sqlite:///{db}", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "schema at version" in proc.stdout
    assert db.exists()


def test_admin_commands_create_user_token_and_import(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    env = {
        "CRM__DATABASE__URL": f"sqlite:///{db}",
        "PATH": "/usr/bin:/bin",
        "CRM__SERVER__KEY_FILE": str(tmp_path / "k"),
        "CRM_PASSWORD": "long-enough-1",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(ROOT / "run.py"), *args],
                              capture_output=True, text=True, timeout=60, env=env)  # fmt: skip

    made = run("create-user", "alice", "--role", "rep", "--extension", "101")
    assert made.returncode == 0, made.stderr
    assert "user alice (rep) created" in made.stdout
    again = run("create-user", "alice")
    assert again.returncode == 2 and "taken" in again.stderr and "Traceback" not in again.stderr
    token = run("create-token", "alice", "sync")
    assert token.returncode == 0 and token.stdout.strip().startswith("crm_")
    assert run("create-token", "nobody", "x").returncode == 2
    good = tmp_path / "ok.csv"
    good.write_text("name,phones\nAda,+14155550101\n")
    assert "imported 1 rows: 1 new" in run("import-contacts", str(good)).stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("name,phones\nBob,555\n")
    refused = run("import-contacts", str(bad))
    assert refused.returncode == 1 and "line 2" in refused.stderr
