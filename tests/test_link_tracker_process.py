"""The link with its tracker in a process of its own (``[ami] tracker_process``), against
the replay PBX over real TCP: the same facts as in one process, across a drop, with
click-to-call's answers coming back through the child, and a killed child replaced."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ami_bridge.facts import CallProgress, CallRecord, Fact
from ami_bridge.link import AmiLink, settings_from_config
from ami_bridge.presence import PresenceChange
from ami_bridge.presence.combined import calls_and_presence
from ami_bridge.profile import PbxProfile
from ami_bridge.replay import replay_file
from ami_bridge.replay_pbx import OriginateScript, ReplayPbx
from ami_bridge.tracker import CallTracker
from ami_bridge.tracker_process import TrackerProcess
from crm.models import CallFilter
from web.runtime import Runtime, open_runtime

from .test_link import BURST, CLICK, INBOUND, click_request, is_answer, settings, until
from .web.conftest import web_settings

pytestmark = pytest.mark.timeout(60)

PROFILE = PbxProfile(finish_grace=0.1)


def in_a_process(profile: PbxProfile = PROFILE) -> TrackerProcess:
    return TrackerProcess(functools.partial(CallTracker, profile))


def answered(facts: list[Fact]) -> bool:
    return any(isinstance(f, CallProgress) and f.state == "answered" for f in facts)


@contextlib.asynccontextmanager
async def answered_call(
    tracker: TrackerProcess, facts: list[Fact]
) -> AsyncIterator[tuple[ReplayPbx, AmiLink]]:
    """The inbound capture played up to its answer through a link to ``tracker``, paused
    there (the test goes on from the answer)."""
    async with (
        ReplayPbx(INBOUND, speed=0, paused=True) as pbx,
        AmiLink(settings(pbx), tracker, facts.append) as link,
    ):
        await link.wait_state("connected")
        await pbx.play_until(is_answer)
        await until(lambda: answered(facts))
        yield pbx, link


def summary(facts: list[Fact]) -> list[tuple[object, ...]]:
    """What a user sees of the facts: every call's record, and each live update's state
    (who rings, who answered), in order; not when they were read."""
    out: list[tuple[object, ...]] = []
    for f in facts:
        if isinstance(f, CallRecord):
            out.append(("record", f.linkedid, f.direction, f.caller, f.callee, f.answered,
                        f.answered_by, f.outcome, f.rang))  # fmt: skip
        elif isinstance(f, CallProgress):
            out.append(("progress", f.linkedid, f.state, f.ringing, f.answered_by))
        else:
            out.append((type(f).__name__,))
    return out


async def play(capture: Path, tracker: object) -> list[Fact]:
    facts: list[Fact] = []
    async with (
        ReplayPbx(capture, speed=0, paused=True) as pbx,
        AmiLink(settings(pbx), tracker, facts.append) as link,  # type: ignore[arg-type]
    ):
        await link.wait_state("connected")
        pbx.resume()
        await pbx.wait_done(5)
        expected = len(replay_file(capture))
        await until(lambda: sum(isinstance(f, CallRecord) for f in facts) >= expected, 10)
        await asyncio.sleep(0.3)  # a duplicate would come with the next ticks
    return facts


async def test_the_burst_gives_the_same_facts_as_in_one_process() -> None:
    """20 overlapping calls: every record and every live update, in the same order."""
    alone = await play(BURST, CallTracker(PROFILE))
    split = await play(BURST, in_a_process())
    records = [f for f in split if isinstance(f, CallRecord)]
    assert len(records) == 20 == len({r.linkedid for r in records})
    assert summary(split) == summary(alone)
    # every call's first update (its pop) carries when the parent read its event: the
    # pop latency figure starts there
    firsts: dict[str, CallProgress] = {}
    for f in split:
        if isinstance(f, CallProgress):
            firsts.setdefault(f.linkedid, f)
    assert len(firsts) == 20
    assert all(f.received_at is not None for f in firsts.values())


async def test_calls_and_presence_cross_the_process_too() -> None:
    """The link manager's tracker (calls and presence) built from its recipe."""
    facts = await play(INBOUND, TrackerProcess(functools.partial(calls_and_presence, PROFILE)))
    assert [f.linkedid for f in facts if isinstance(f, CallRecord)] == ["1795341294.0"]
    assert any(isinstance(f, PresenceChange) for f in facts)


async def test_a_drop_mid_call_neither_loses_nor_doubles_the_call() -> None:
    facts: list[Fact] = []
    tracker = in_a_process()
    async with answered_call(tracker, facts) as (pbx, link):
        pbx.drop_clients()
        await until(lambda: link.status.reconnects == 1)
        await link.wait_state("connected")
        assert pbx.actions["coreshowchannels"] == 2  # the resync went through the child
        pbx.resume()
        await pbx.wait_done(2)
        await until(lambda: any(isinstance(f, CallRecord) for f in facts))
        await asyncio.sleep(0.3)
        assert tracker.starts == 1  # a dropped link is no reason for a new tracker
    records = [f for f in facts if isinstance(f, CallRecord)]
    assert [r.linkedid for r in records] == ["1795341294.0"]
    assert records[0].answered and records[0].answered_by == "101"


async def test_click_to_call_answers_come_back_through_the_child() -> None:
    """The Originate's response and its OriginateResponse event (which carries our
    ActionID) are parsed by the child and resolve the link's action."""
    facts: list[Fact] = []
    async with ReplayPbx(None, speed=0) as pbx:
        pbx.script_originate(OriginateScript.from_capture(CLICK, "c2c-0001"))
        async with AmiLink(settings(pbx), in_a_process(), facts.append) as link:
            await link.wait_state("connected")
            result = await asyncio.wait_for(link.originate(click_request()), 5)
            await until(lambda: any(isinstance(f, CallRecord) for f in facts), 5)
    assert result.success and result.reason_text == "answered"
    assert result.uniqueid == "1795341391.15"
    [record] = [f for f in facts if isinstance(f, CallRecord)]
    assert record.originate_id == "c2c-0001"


async def test_a_killed_tracker_process_is_replaced_and_the_call_still_recorded() -> None:
    """SIGKILL the child mid-call: the link says why, starts a new one and reconnects;
    the new tracker learns the call from the resync and records it once."""
    facts: list[Fact] = []
    tracker = in_a_process()
    async with answered_call(tracker, facts) as (pbx, link):
        first_pid = tracker.pid
        assert first_pid is not None
        os.kill(first_pid, signal.SIGKILL)
        await until(lambda: link.status.reconnects == 1, 10)
        status = await link.wait_state("connected", timeout=10)
        assert tracker.starts == 2 and tracker.pid != first_pid
        assert "tracker process ended" in (status.last_error or "")
        assert status.tracker_restarts == 1  # the admin page and /metrics say so
        pbx.resume()
        await pbx.wait_done(2)
        await until(lambda: any(isinstance(f, CallRecord) for f in facts), 5)
        await asyncio.sleep(0.3)
    records = [f for f in facts if isinstance(f, CallRecord)]
    assert [r.linkedid for r in records] == ["1795341294.0"]


async def test_stop_with_flush_records_the_calls_still_in_their_grace() -> None:
    """Stopping right after a call ended (its record waits out a 30 s grace for late
    events): the events already sent to the child are tracked first, then the flush
    gives the record; the child is gone afterwards."""
    facts: list[Fact] = []
    tracker = in_a_process(PbxProfile(finish_grace=30.0))
    async with ReplayPbx(INBOUND, speed=0, paused=True) as pbx:
        link = AmiLink(settings(pbx), tracker, facts.append)
        await link.start()
        await link.wait_state("connected")
        pbx.resume()
        await pbx.wait_done(5)
        await link.stop(flush=True)
    records = [f for f in facts if isinstance(f, CallRecord)]
    assert [r.linkedid for r in records] == ["1795341294.0"]
    assert not tracker.alive


def test_the_setting_is_true_or_false() -> None:
    base = {"host": "pbx", "secret": "s"}
    assert settings_from_config(base).tracker_process is False
    assert settings_from_config({**base, "tracker_process": True}).tracker_process is True
    with pytest.raises(ValueError, match=r"ami\.tracker_process must be true or false"):
        settings_from_config({**base, "tracker_process": "yes"})


def product_settings(tmp_path: Path, pbx: ReplayPbx, **ami: object) -> dict[str, Any]:
    """The product's settings, its one link to ``pbx`` with its tracker in a process."""
    cfg = web_settings(tmp_path, pbx={"finish_grace": 0.1})
    cfg["ami"].update(host="127.0.0.1", port=pbx.port, username="crm", secret="s3",
                      tracker_process=True, **ami)  # fmt: skip
    return cfg


async def connected_link(rt: Runtime) -> Any:
    """The link manager's running link, once connected."""
    manager = rt.extras["link_manager"]
    deadline = time.monotonic() + 20
    while not manager.running or any(
        r.link.status.state != "connected" for r in manager.running.values()
    ):
        assert time.monotonic() < deadline, "the link never came up"
        await asyncio.sleep(0.05)
    [running] = manager.running.values()
    return running


async def test_the_link_manager_runs_the_tracker_in_its_process(tmp_path: Path) -> None:
    """``[ami] tracker_process = true`` in the product: the call is stored, and the
    channel listing (which the link manager's recovery needs) is seen in the parent."""
    [expected] = replay_file(INBOUND)
    async with ReplayPbx(INBOUND, speed=0, paused=True, secret="s3") as pbx:
        rt = await open_runtime(product_settings(tmp_path, pbx))
        try:
            running = await connected_link(rt)
            assert isinstance(running.watch.worker, TrackerProcess)
            assert running.watch.worker.alive and running.watch.worker.pid != os.getpid()
            await asyncio.wait_for(running.watch.listed_once.wait(), 5)
            pbx.resume()
            await pbx.wait_done(5)
            deadline = time.monotonic() + 10
            while await rt.store.count_calls() < 1:
                assert time.monotonic() < deadline, "the call was never stored"
                await asyncio.sleep(0.05)
            [call] = await rt.store.list_calls(CallFilter())
            assert call.linkedid == expected.linkedid and call.complete
            assert call.outcome == expected.outcome
            worker = running.watch.worker
        finally:
            await rt.close()
        assert not worker.alive


async def test_a_call_that_ends_while_its_tracker_process_is_dead_is_still_written(
    tmp_path: Path,
) -> None:
    """The child is killed mid-call and the call hangs up before the new one runs: no
    tracker sees the end, the new one's channel list no longer has it, and the link
    manager writes it from what was kept (incomplete), once."""
    [expected] = replay_file(INBOUND)
    async with ReplayPbx(INBOUND, speed=0, paused=True, secret="s3") as pbx:
        rt = await open_runtime(product_settings(tmp_path, pbx, backoff_max=0.5))
        try:
            running = await connected_link(rt)
            worker = running.watch.worker
            await pbx.play_until(is_answer)
            deadline = time.monotonic() + 10
            while not await rt.store.live_calls_for_link(running.ingest.pbx_link_id):
                assert time.monotonic() < deadline, "the call in progress was never kept"
                await asyncio.sleep(0.05)
            os.kill(worker.pid, signal.SIGKILL)
            pbx.resume()  # the call ends at once, while no tracker runs
            await pbx.wait_done(5)
            deadline = time.monotonic() + 20
            while await rt.store.count_calls() < 1:
                assert time.monotonic() < deadline, "the call left behind was never written"
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.5)  # a second write would land by now
            [call] = await rt.store.list_calls(CallFilter())
            assert call.linkedid == expected.linkedid
            assert not call.complete  # nobody saw it end: its figures are flagged
            assert call.answered and worker.starts == 2
            assert not await rt.store.live_calls_for_link(running.ingest.pbx_link_id)
        finally:
            await rt.close()


def test_facts_cross_as_their_constructor_arguments_and_come_back_equal() -> None:
    """``fast_pickling``: every kind of fact the burst and the queue captures give, and
    the nested ones (a transfer in a record), unpickle equal to what was sent."""
    import pickle

    from ami_bridge import facts as call_facts
    from ami_bridge.capture import read_capture
    from ami_bridge.presence import facts as presence_facts
    from ami_bridge.tracker_process import fast_pickling

    from .paths import ASTERISK22

    out: list[Fact] = []
    for capture in sorted(ASTERISK22.glob("*/raw.ami")):
        tracker = calls_and_presence(PROFILE)
        for msg, at in read_capture(capture):
            if "Event" in msg:
                out += tracker.feed(msg, at)
        out += tracker.flush()
    kinds = {type(f).__name__ for f in out}
    assert {"CallRecord", "CallProgress", "PresenceChange"} <= kinds
    assert any(isinstance(f, CallRecord) and f.transfers for f in out)
    fast_pickling(call_facts, presence_facts)
    assert pickle.loads(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)) == out
