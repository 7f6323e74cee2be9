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
    teamed = run("create-user", "bob", "--extension", "102", "--team", "East")
    assert teamed.returncode == 0 and "user bob (rep) created in team East" in teamed.stdout
    boss = run("create-user", "maria", "--role", "manager", "--team", "east")
    assert "in team East" in boss.stdout  # the same team, found by name in any case
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


async def test_demo_team_and_a_click_to_call_closes_a_callback(tmp_path: Path) -> None:
    """The newcomer's path: the manager has the reps in their team; a missed call opens a
    callback; a rep clicks the number; the replay PBX answers with the recorded
    click-to-call, for that number from that rep's phone; the callback closes and the
    managers' "called back" figure moves."""
    port = _free_port()
    missed = "tests/fixtures/asterisk-22/02-inbound-missed/events.jsonl"
    settings = web_settings(
        tmp_path, server={"port": port}, demo={"speed": 20.0, "captures": [missed], "loop_gap": 2.0}
    )
    rt, runner = await start(settings, demo=True)
    try:
        s = rt.service
        users = {u.username: u for u in await s.list_users()}
        maria = users["maria"]
        team = {u.username for u in users.values() if u.team_id == maria.team_id}
        assert team == {"maria", "alice", "bob", "carol"}
        scope = await s.scope_for(maria)
        assert all(scope.covers(users[n].id) for n in ("alice", "bob", "carol"))
        deadline = time.monotonic() + 30
        tasks: list = []  # type: ignore[type-arg]
        while not tasks and time.monotonic() < deadline:
            tasks = [t for t in await s.list_callbacks(None, "open") if t.number_e164]
            await asyncio.sleep(0.2)
        task = tasks[0]  # the missed call repeats (the capture loops): one task, joined
        assert task.number_e164 == "+14155550102"
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            text = await (await http.get(f"{base}/login")).text()
            token = text.split('name="csrf-token" content="')[1].split('"')[0]
            await http.post(
                f"{base}/login",
                data={"username": "alice", "password": "demo-pass-2026", "_csrf": token},
            )
            text = await (await http.get(f"{base}/")).text()
            token = text.split('name="csrf-token" content="')[1].split('"')[0]
            resp = await http.post(
                f"{base}/dial",
                json={"number": task.number_e164},
                headers={"X-CSRF-Token": token, "Accept": "application/json"},
            )
            assert resp.status == 202, await resp.text()
        closed = None
        while time.monotonic() < deadline:
            closed = await rt.store.get_callback(task.id or 0)
            if closed is not None and closed.status == "closed":
                break
            await asyncio.sleep(0.2)
        assert closed is not None and closed.status == "closed"
        summary = await s.missed_summary(task.opened_at - 60, rt.clock() + 60)
        assert summary.returned >= 1  # "called back" moved
        assert closed.closed_by_user_id == users["alice"].id
    finally:
        await runner.cleanup()
        await rt.close()
