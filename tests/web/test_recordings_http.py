"""Recordings over HTTP with the real fixture recording (Asterisk 22 capture 01: an
inbound call alice answered on 101): the player partial, seeking with byte ranges, who is
refused, what lands in the audit log, and that file paths never come from the request."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from yarl import URL

from ami_bridge.replay import replay_file
from config.settings import pbx_profile
from crm.models import Call, RecordingRow
from recordings.worker import RecordingWorker
from tests.paths import ASTERISK22
from web.app import create_app, current_user, runtime
from web.recordings_view import media_dir, player_items, sign
from web.render import format_duration, render
from web.runtime import Runtime

from .conftest import People, login

CAPTURE = ASTERISK22 / "01-inbound-answered"


@dataclass
class Recorded:
    call: Call
    rec: RecordingRow


async def ingest_capture_with_recording(rt: Runtime, capture: Path = CAPTURE) -> Recorded:
    """The capture's call through the ingest, its WAV in the monitor directory, the
    recordings worker run once: what a live system has a minute after the call."""
    monitor = Path(rt.settings["recordings"]["directory"])
    monitor.mkdir(parents=True, exist_ok=True)
    for wav in (capture / "recordings").iterdir():
        shutil.copy(wav, monitor / wav.name)
    [record] = replay_file(capture / "events.jsonl", pbx_profile(rt.settings))
    call = (await rt.ingest.record(record)).call
    worker = RecordingWorker(rt.service, monitor, media_dir(rt), settle_seconds=0)
    await worker.run_once()
    assert call.id is not None
    [rec] = await rt.service.recordings_for_call(call.id)
    assert rec.status == "ready", rec
    return Recorded(call, rec)


async def player_page(request: web.Request) -> web.StreamResponse:
    """Stands in for the call page: the partial as the rep pages include it."""
    call = await runtime(request).service.get_call(int(request.match_info["id"]))
    current_user(request)
    return render(request, "_player.html", {"player_items": await player_items(request, call)})


@pytest.fixture
async def recorded(rt: Runtime, people: People, tmp_path: Path) -> Recorded:
    rt.settings["recordings"]["media_dir"] = str(tmp_path / "media")
    sales = await rt.service.create_team("Sales", "admin")
    for user in (people.alice, people.bob, people.manager):
        assert user.id is not None
        await rt.service.set_team(user.id, sales.id, "admin")
    return await ingest_capture_with_recording(rt)


@pytest.fixture
async def web_client(aiohttp_client: Any, rt: Runtime, recorded: Recorded) -> TestClient:
    app = create_app(rt)
    app.router.add_get("/test/player/{id}", player_page)
    return await aiohttp_client(app)


async def links(client: TestClient, call: Call) -> dict[str, str]:
    html = await (await client.get(f"/test/player/{call.id}")).text()
    out = {}
    for name, attr in (("stream", 'preload="metadata" src="'), ("waveform", 'data-waveform="'),
                       ("download", 'class="player-download" href="')):  # fmt: skip
        if attr in html:
            out[name] = html.split(attr, 1)[1].split('"', 1)[0].replace("&amp;", "&")
    return out


async def plays(rt: Runtime) -> list[Any]:
    return await rt.service.list_audit(action="recording.played")


async def test_the_rep_who_took_the_call_plays_and_seeks(
    web_client: TestClient, rt: Runtime, recorded: Recorded
) -> None:
    await login(web_client, "alice")
    html = await (await web_client.get(f"/test/player/{recorded.call.id}")).text()
    assert '<audio class="player-audio" controls preload="metadata"' in html
    assert format_duration(recorded.rec.duration_seconds) in html  # the duration is shown
    url = (await links(web_client, recorded.call))["stream"]
    assert recorded.rec.media_path is not None and recorded.rec.media_path not in url
    whole = await web_client.get(url)
    assert whole.status == 200
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Content-Type"].startswith("audio/webm")
    data = await whole.read()
    assert len(data) == recorded.rec.size_bytes
    part = await web_client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status == 206
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert await part.read() == data[100:200]
    tail = await web_client.get(url, headers={"Range": "bytes=-50"})
    assert tail.status == 206 and await tail.read() == data[-50:]
    past = await web_client.get(url, headers={"Range": f"bytes={len(data) + 10}-"})
    assert past.status == 416
    wave = await (await web_client.get((await links(web_client, recorded.call))["waveform"])).json()
    assert len(wave["peaks"]) > 10 and max(wave["peaks"]) > 0
    assert wave["duration"] == pytest.approx(recorded.rec.duration_seconds, abs=0.01)


async def test_a_play_is_audited_once_per_link_not_per_range_request(
    web_client: TestClient, rt: Runtime, recorded: Recorded, people: People
) -> None:
    await login(web_client, "alice")
    url = (await links(web_client, recorded.call))["stream"]
    for rng in ("bytes=0-", "bytes=500-", "bytes=1000-1999", "bytes=0-"):
        assert (await web_client.get(url, headers={"Range": rng})).status == 206
    [entry] = await plays(rt)
    assert (entry.actor, entry.target) == ("alice", f"call:{recorded.call.id}")
    assert entry.detail == {"recording": recorded.rec.id}
    assert people.alice.id is not None
    later = sign(rt, recorded.rec.id, people.alice.id, now=time.time() + 30)  # a later view
    assert (await web_client.get(later.url("stream"))).status == 200
    assert len(await plays(rt)) == 2


async def test_another_rep_is_refused_even_with_the_reps_own_link(
    web_client: TestClient, rt: Runtime, recorded: Recorded, people: People
) -> None:
    await login(web_client, "alice")
    alice_links = await links(web_client, recorded.call)
    web_client.session.cookie_jar.clear()
    await login(web_client, "bob")
    assert await links(web_client, recorded.call) == {}  # bob's page offers no player
    for url in alice_links.values():
        assert (await web_client.get(url)).status == 403
    assert people.bob.id is not None
    own = sign(rt, recorded.rec.id, people.bob.id)  # a genuine link made out to bob
    for action in ("stream", "waveform", "download"):
        resp = await web_client.get(own.url(action))
        assert resp.status == 403, action
    assert await plays(rt) == []


async def test_links_cannot_be_forged_extended_or_reused(
    web_client: TestClient, rt: Runtime, recorded: Recorded, people: People
) -> None:
    await login(web_client, "alice")
    url = URL((await links(web_client, recorded.call))["stream"])
    q = dict(url.query)
    tampered = [
        {**q, "e": str(int(q["e"]) + 3600)},  # a longer life
        {**q, "u": str(people.bob.id)},  # made out to someone else
        {**q, "s": q["s"][:-2] + ("AA" if not q["s"].endswith("AA") else "BB")},
        {k: v for k, v in q.items() if k != "s"},
    ]
    for query in tampered:
        assert (await web_client.get(url.with_query(query))).status == 403, query
    other = url.path.replace(f"/{recorded.rec.id}/", f"/{recorded.rec.id + 1}/")
    assert (await web_client.get(URL(other).with_query(q))).status == 403
    assert people.alice.id is not None
    expired = sign(rt, recorded.rec.id, people.alice.id, now=1_000_000.0)
    assert (await web_client.get(expired.url("stream"))).status == 403
    web_client.session.cookie_jar.clear()
    logged_out = await web_client.get(url, allow_redirects=False)
    assert logged_out.status == 302 and logged_out.headers["Location"].startswith("/login")


async def test_managers_of_the_team_listen_and_download_others_do_not(
    web_client: TestClient, rt: Runtime, recorded: Recorded
) -> None:
    await login(web_client, "maria")
    maria = await links(web_client, recorded.call)
    assert (await web_client.get(maria["stream"])).status == 200
    got = await web_client.get(maria["download"])
    assert got.status == 200
    assert got.headers["Content-Disposition"].startswith("attachment;")
    assert len(await got.read()) == recorded.rec.size_bytes
    [entry] = await rt.service.list_audit(action="recording.downloaded")
    assert entry.actor == "maria"
    web_client.session.cookie_jar.clear()
    await login(web_client, "otto")  # manages another team
    assert await links(web_client, recorded.call) == {}
    web_client.session.cookie_jar.clear()
    await login(web_client, "alice")
    assert "download" not in await links(web_client, recorded.call)  # reps listen only


async def test_unplayable_recordings_say_why_and_paths_never_come_from_outside(
    web_client: TestClient, rt: Runtime, recorded: Recorded
) -> None:
    await login(web_client, "alice")
    url = (await links(web_client, recorded.call))["stream"]
    await rt.service.update_recording(
        recorded.rec.id, status="ready", media_path="../../config/default.toml", at=0.0
    )
    assert (await web_client.get(url)).status == 404  # refused, never read
    await rt.service.update_recording(
        recorded.rec.id, status="corrupt", error="not a WAV file", at=0.0
    )
    html = await (await web_client.get(f"/test/player/{recorded.call.id}")).text()
    assert "<audio" not in html and "damaged" in html
    assert (await web_client.get(url)).status == 404
