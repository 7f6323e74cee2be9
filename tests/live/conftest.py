"""Live tests: real SIP calls through a real Asterisk 22 (the lab PBX of
``../shared/asterisk``), watched by the CRM running as in production.

The rig and the CRM start once for the whole ``tests/live`` package and stop after it,
also when tests fail.  Every test here is marked ``live`` (``pytest -m live`` runs only
them, ``-m "not live"`` everything else)."""

from __future__ import annotations

import asyncio
import csv
import os
import shutil
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .rig import LOCK_WAIT, Crm, Http, Observer, Rig, RigError, wait_for


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.live)
            # the first test's setup may wait for someone else's rig to go (LOCK_WAIT);
            # the tests themselves take well under a minute each
            item.add_marker(pytest.mark.timeout(LOCK_WAIT + 300))


@dataclass
class Live:
    """The running rig and CRM, and helpers to place calls and read what the CRM made
    of them (as the admin, through the JSON API)."""

    rig: Rig
    crm: Crm
    obs: Observer
    api: Http

    def drive(self, scenario: Callable[[Any], Awaitable[Any]], idle: bool = True) -> Any:
        """Run ``scenario(lab)`` with a fresh ``Lab`` on its own event loop, then wait
        until the PBX has no channel left (unless ``idle`` is False)."""

        async def main() -> Any:
            async with self.rig.lab() as lab:
                try:
                    return await scenario(lab)
                finally:
                    if idle:
                        await lab.wait_idle(quiet=1.0, timeout=180)

        return asyncio.run(main())

    def calls(self, **query: Any) -> list[dict[str, Any]]:
        q = urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        return self.api.get_json(f"/api/v1/calls?{q}&limit=100")["items"]

    def wait_calls(self, count: int = 1, timeout: float = 60, **query: Any) -> list[dict]:
        """The stored calls matching ``query`` once there are ``count`` of them (and no
        more arrive for a moment: a duplicate would show up here)."""
        found = wait_for(lambda: (c := self.calls(**query)) and len(c) >= count and c,
                         timeout, f"{count} stored call(s) for {query}")  # fmt: skip
        time.sleep(1.5)
        return self.calls(**query) or found

    def call_of(self, number: str, since: float, timeout: float = 60) -> dict[str, Any]:
        calls = self.wait_calls(1, timeout, number=number, since=since)
        assert len(calls) == 1, f"expected one stored call for {number}, got {calls}"
        return calls[0]

    def contact_of(self, e164: str) -> dict[str, Any] | None:
        found = self.api.get_json(f"/api/v1/contacts?q={urllib.parse.quote(e164)}")["items"]
        return found[0] if found else None

    def callbacks_for(self, e164: str, status: str = "all") -> list[dict[str, Any]]:
        items = self.api.get_json(f"/api/v1/callbacks?status={status}&limit=200")["items"]
        return [t for t in items if t["number_e164"] == e164]

    def trunk_dials(self, number: str) -> int:
        """How many times the PBX dialled ``number`` out through the trunk (its CDR CSV)."""
        path = self.rig.run_dir / "pbx" / "var" / "log" / "cdr-csv" / "Master.csv"
        if not path.exists():
            return 0
        with path.open(newline="") as f:
            return sum(1 for row in csv.reader(f)
                       if len(row) > 8 and row[6].startswith("PJSIP/trunk")
                       and number in row[8])  # fmt: skip

    def recording_links(self, http: Http, call_id: int, timeout: float = 60) -> dict[str, str]:
        """The player's links on the call page (``stream``, ``waveform``), once the
        recording is ready to play."""

        def links() -> dict[str, str] | None:
            html = http.get(f"/calls/{call_id}").text
            found = {}
            for name, marker in (("stream", 'preload="metadata" src="'),
                                 ("waveform", 'data-waveform="')):  # fmt: skip
                if marker in html:
                    found[name] = html.split(marker, 1)[1].split('"', 1)[0].replace("&amp;", "&")
            return found if "stream" in found else None

        return wait_for(links, timeout, f"a playable recording on /calls/{call_id}", every=1.0)


TIMINGS: dict[str, float] = {}
"""Figures for the end-of-run summary (CI logs show how long the live set took)."""


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        terminalreporter.write_line(
            "live tests: waited {lock:.0f} s for the rig lock, pbx up {up:.1f} s, "
            "{total:.0f} s from rig start to rig stop".format(**TIMINGS)
        )


@pytest.fixture(scope="package")
def rig() -> Iterator[Rig]:
    t0 = time.monotonic()
    try:
        started = Rig.start()
    except RigError as exc:
        pytest.fail(str(exc), pytrace=False)
    TIMINGS.update(lock=started.lock_wait_seconds, up=started.up_seconds)
    t0 += started.lock_wait_seconds
    try:
        yield started
    finally:
        started.stop()
        TIMINGS["total"] = time.monotonic() - t0


@pytest.fixture(scope="package")
def live(rig: Rig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    obs = Observer()
    obs.start()
    keep = os.environ.get("CRM_LIVE_WORKDIR")  # to read the CRM's log and database after
    if keep:
        shutil.rmtree(keep, ignore_errors=True)
        Path(keep).mkdir(parents=True)
    workdir = Path(keep) if keep else tmp_path_factory.mktemp("crm")
    crm = Crm(workdir, rig.recordings, obs.hook_url)
    try:
        crm.setup_users()
        crm.start()
        obs.watch(crm.base)
        yield Live(rig, crm, obs, crm.api())
    finally:
        obs.stop()
        crm.stop()
