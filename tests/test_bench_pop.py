"""The screen-pop benchmark measures from the moment the PBX says a rep's phone rings.

``benchmarks/bench_pop.py`` used to stamp a pop's start at the call's ``DialBegin`` to the
phone.  The CRM pops a call when the PBX reports the phone *ringing* (``Newstate``
Ringing, ``DialState`` RINGING), and in the replayed burst capture, whose times have
one-second resolution, that report comes a whole second after the ``DialBegin`` for one
dial in six: the benchmark counted that second of replayed PBX time as a one-second
stall of the CRM (issue 17: p99 about 1,016 ms at 1x, whatever the number of clients).

These tests pin what the stamp must be: the event after which the product's own tracker
reports the extension ringing, counted in events played (no clock, no timer).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from ami_bridge.facts import CallProgress
from ami_bridge.profile import PbxProfile
from ami_bridge.tracker import CallTracker
from benchmarks import bench_pop
from benchmarks.bench_load import BURST, overlapped


@pytest.fixture
def counting_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """The benchmark's ``time.monotonic`` as a counter the test advances itself: each
    call moves it to the next whole number (0, 1, 2...)."""
    ticks = itertools.count()
    now = {"t": 0}

    def monotonic() -> float:
        return float(now["t"])

    def advance() -> None:
        now["t"] = next(ticks)

    monkeypatch.setattr(bench_pop.time, "monotonic", monotonic)
    return advance


def _dial_begin(state: str) -> dict[str, str]:
    return {
        "Event": "DialBegin", "Privilege": "call,all",
        "Channel": "PJSIP/trunk-00000001", "Uniqueid": "100.1", "Linkedid": "100.1",
        "DestChannel": "PJSIP/102-00000002", "DestUniqueid": "100.2", "DestLinkedid": "100.1",
        "DestChannelState": "5" if state == "Ringing" else "0",
        "DestChannelStateDesc": state, "DialString": "102",
    }  # fmt: skip


def _newstate_ringing() -> dict[str, str]:
    return {
        "Event": "Newstate", "Privilege": "call,all", "Channel": "PJSIP/102-00000002",
        "ChannelState": "5", "ChannelStateDesc": "Ringing", "Uniqueid": "100.2",
        "Linkedid": "100.1",
    }  # fmt: skip


def test_a_dial_to_a_phone_not_yet_ringing_starts_the_clock_at_its_ringing(
    counting_clock,
) -> None:
    pbx = bench_pop.StampingPbx([], paused=True)
    counting_clock()  # t = 0
    pbx._emit(_dial_begin("Down"), 0.0)
    assert ("100.1", "102") not in pbx.ring_at  # dialled, not ringing: no pop is due yet
    counting_clock()  # t = 1 (the next replayed second)
    pbx._emit(_newstate_ringing(), 1.0)
    assert pbx.rang_at[("100.1", "102")] == 0.0
    assert pbx.ring_at[("100.1", "102")] == 1.0


def test_a_dial_to_a_phone_already_ringing_starts_the_clock_at_the_dial(counting_clock) -> None:
    pbx = bench_pop.StampingPbx([], paused=True)
    counting_clock()
    pbx._emit(_dial_begin("Ringing"), 0.0)
    counting_clock()
    pbx._emit(_newstate_ringing(), 1.0)
    assert pbx.ring_at[("100.1", "102")] == 0.0


def test_the_stamp_is_the_event_after_which_the_tracker_reports_the_phone_ringing(
    counting_clock,
) -> None:
    """The burst the benchmark replays, played event by event through the stamping PBX
    and the CRM's tracker side by side: every (call, extension) is stamped exactly at the
    event whose facts first list the extension as ringing, which is when the hub pops it."""
    items = overlapped(BURST, 2, 0.2)
    pbx = bench_pop.StampingPbx(items, paused=True)
    tracker = CallTracker(PbxProfile())
    first_ringing: dict[tuple[str, str], float] = {}
    for index, (msg, at) in enumerate(items):
        counting_clock()
        pbx._emit(msg, at)
        for fact in tracker.feed(msg, at):
            if isinstance(fact, CallProgress):
                for ext in fact.ringing:
                    first_ringing.setdefault((fact.linkedid, ext), float(index))
    assert first_ringing, "the burst rings no phone"
    assert pbx.ring_at == first_ringing
    later = [k for k, t in pbx.ring_at.items() if t > pbx.rang_at[k]]
    assert later, "the capture has dials that ring after their DialBegin (the old stamp)"


async def test_only_a_message_that_shows_the_rep_the_pop_counts_as_delivered() -> None:
    """A call that ended before its rep saw it ring (or that somebody else answered)
    reaches the rep's browser, if at all, as a message without a pop: the benchmark must
    not count that as the pop delivered.  Frames as the hub writes them
    (``message_line``, ``sse_frame``), read by the benchmark's client."""
    from web.live_streams import message_line, sse_frame

    def frame(lid: str, state: str, pop: str | None) -> bytes:
        data = {"linkedid": lid, "state": state, "me": None, "pop": pop,
                "row_html": '<tr data-x="{&quot;pop&quot;:&quot;ringing&quot;}">'}  # fmt: skip
        return sse_frame(message_line("call_progress", data))

    reader = bench_pop._SseReader(b"")
    reader.data_received(b"HTTP/1.1 200 OK\r\n\r\n")
    reader.data_received(frame("gone", "ended", None) + frame("elsewhere", "answered", None))
    assert reader.pops() == []
    reader.data_received(
        frame("rings", "ringing", "ringing") + frame("mine", "answered", "on_call")
    )
    reader.data_received(frame("rings", "ended", None))
    assert [lid for lid, _ in reader.pops()] == ["rings", "mine"]


async def test_a_pop_split_over_two_reads_is_stamped_by_the_read_that_completed_it() -> None:
    """The readers keep each read and parse after the run: a pop's stamp must still be
    the moment its last byte was read, as when they parsed on the spot."""
    from web.live_streams import message_line, sse_frame

    whole = sse_frame(message_line("call_progress", {"linkedid": "split", "pop": "ringing"}))
    reader = bench_pop._SseReader(b"")
    reader.data_received(b"HTTP/1.1 200 OK\r\n\r\n" + whole[:20])
    reader.data_received(whole[20:])
    assert [data for _, data in reader.reads] == [whole[:20], whole[20:]]
    reader.reads = [(1.0, whole[:20]), (2.0, whole[20:])]  # the moments they were read
    assert reader.pops() == [("split", 2.0)]


def test_a_pops_stages_add_up_to_its_latency_and_the_slow_ones_are_found_by_second() -> None:
    """``--details``: each pop's stages (stamps from the PBX's write to the client's read)
    sum to the latency the benchmark reports, and the latency by second of the run puts
    a late pop in the second its phone rang."""
    from benchmarks.pop_stages import STAGES, Stages, by_second

    stages = Stages()
    key = ("100.1", "101")
    marks = [10.0, 10.010, 10.012, 10.020, 10.021, 10.030, 10.100, 10.105, 10.107]
    stamps = (stages.fact, stages.taken, stages.lookup, stages.bus, stages.lane, stages.hub,
              stages.flush)  # fmt: skip
    for stamp, at in zip(stamps, marks[1:8], strict=True):
        stamp[key] = at
    stages.written[key] = {40001: marks[8]}
    read_at = 10.150
    got = stages.split([("100.1", "101", 40001, read_at)], {key: marks[0]})
    assert got["split_count"] == 1 and got["unstamped"] == 0
    assert list(got["split"]) == list(STAGES)
    p50s = [p50 for p50, _, _, _ in got["split"].values()]
    assert sum(p50s) == pytest.approx((read_at - marks[0]) * 1000)
    assert got["split"]["lane->hub"][0] == pytest.approx(70.0)  # the details' wait
    # a pop whose socket the hub never wrote (its handler did) is counted, not split
    assert stages.split([("100.1", "101", 40002, read_at)], {key: 10.0})["unstamped"] == 1
    rows = by_second([(10.2, 30.0), (10.4, 50.0), (12.5, 900.0)], start=10.0)
    assert [(s, n) for s, n, *_ in rows] == [(0, 2), (2, 1)]
    assert rows[1][4] == 900.0
