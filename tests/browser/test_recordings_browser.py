"""A rep plays the recording of a call they answered, seeks in it (the browser asks for a
byte range and gets 206), and another rep is refused, even holding the first rep's link.
The call and its WAV are Asterisk 22 capture 01; the recordings worker transcodes it."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Response

from tests.web.test_recordings_http import ingest_capture_with_recording

from .conftest import Site, login_page, screenshot

pytestmark = pytest.mark.browser


async def test_alice_plays_and_seeks_her_call_and_bob_is_refused(
    browser: Browser, site: Site, tmp_path: Path
) -> None:
    site.rt.settings["recordings"]["media_dir"] = str(tmp_path / "media")
    recorded = await ingest_capture_with_recording(site.rt)
    page = await login_page(browser, site, "alice")
    ranges: list[tuple[int, str]] = []

    def seen(resp: Response) -> None:
        if "/stream" in resp.url:
            ranges.append((resp.status, resp.request.headers.get("range", "")))

    page.on("response", seen)
    await page.goto(f"{site.url}/calls/{recorded.call.id}")
    audio = page.locator("audio.player-audio")
    await audio.wait_for()
    duration = await page.evaluate("""() => new Promise((ok, fail) => {
        const a = document.querySelector('audio.player-audio');
        const done = () => ok(a.duration);
        if (a.readyState >= 1) done(); else a.addEventListener('loadedmetadata', done);
        a.addEventListener('error', () => fail(new Error('audio error ' + a.error?.code)));
    })""")
    assert duration == pytest.approx(recorded.rec.duration_seconds, abs=0.5)
    await page.evaluate("""() => { const a = document.querySelector('audio.player-audio');
                                   a.muted = true; return a.play(); }""")
    await page.wait_for_function(
        "() => document.querySelector('audio.player-audio').currentTime > 0.2"
    )
    target = round(duration * 0.75, 1)
    moved = await page.evaluate("""(t) => new Promise((ok) => {
        const a = document.querySelector('audio.player-audio');
        a.addEventListener('seeked', () => ok(a.currentTime), {once: true});
        a.currentTime = t;
    })""", target)  # fmt: skip
    assert moved == pytest.approx(target, abs=0.6)
    await page.wait_for_function(
        "() => +document.querySelector('progress.player-progress').value > 1"
    )
    assert any(status == 206 for status, _ in ranges), ranges
    shown = await page.locator(".player-time").text_content()
    assert shown is not None and shown.startswith("0:")
    await page.evaluate("() => document.querySelector('audio.player-audio').pause()")
    await screenshot(page, "recording-player")
    plays = await site.rt.service.list_audit(action="recording.played")
    assert [(e.actor, e.target) for e in plays] == [("alice", f"call:{recorded.call.id}")]

    stream_url = await audio.get_attribute("src")
    assert stream_url is not None
    bob = await login_page(browser, site, "bob")
    refused = await bob.request.get(f"{site.url}{stream_url}")
    assert refused.status == 403
    call_page = await bob.goto(f"{site.url}/calls/{recorded.call.id}")
    assert call_page is not None and call_page.status in (403, 404)
    assert await bob.locator("audio").count() == 0
    assert len(await site.rt.service.list_audit(action="recording.played")) == 1
