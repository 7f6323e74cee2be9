"""Bad input: the AMI reader and the call tracker fuzzed with hypothesis.

The bridge reads whatever arrives on a TCP socket and feeds it to the tracker, so neither
may crash, hang or grow without bound on malformed, truncated, reordered or oversized
input, and whatever records come out must still be records a CRM can store: ordered
times, non-negative durations, an outcome from the allowed set, each call once.

Inputs are real traffic (the Asterisk 22 captures and cacofonisk's 51 streams) mutated at
random, plus random bytes.  ``max_examples`` is modest so the suite stays fast; run with
``--hypothesis-seed`` / a higher ``HYPOTHESIS_PROFILE`` budget to dig deeper.
"""

from __future__ import annotations

import functools
import math
import os
import random
from collections.abc import Iterable
from typing import get_args

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from ami_bridge.capture import read_capture
from ami_bridge.facts import CallProgress, CallRecord, Direction, Fact, HangupBy, Outcome
from ami_bridge.profile import PbxProfile
from ami_bridge.protocol import FrameReader, Message, encode_action, first
from ami_bridge.replay_pbx import IdAllocator
from ami_bridge.tracker import CallTracker

from .paths import ASTERISK22, cacofonisk_dir

FUZZ = settings(
    # AMI_FUZZ_EXAMPLES=2000 digs deeper; the default keeps the suite to a few seconds.
    max_examples=int(os.environ.get("AMI_FUZZ_EXAMPLES", "40")),
    deadline=None,
    database=None,  # no .hypothesis/ directory in the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
OUTCOMES = frozenset(get_args(Outcome))
DIRECTIONS = frozenset(get_args(Direction))
HANGUP_BY = frozenset(get_args(HangupBy)) | {None}
LATE = 1e20  # a time after every capture (and every absurd Timestamp): any grace has passed

# The profile the cacofonisk tests use recognises their trunk; the default one fits ours.
CACOFONISK_PROFILE = PbxProfile(
    trunk_endpoints=("voipgrid-siproute-docker",),
    trunk_contexts=("voipgrid_in",),
    extension_pattern=r"\d{3}|\d{9}",
)


# --------------------------------------------------------------------------- corpus


@functools.cache
def raw_streams() -> tuple[tuple[str, bytes], ...]:
    """The Asterisk 22 captures as they came off the wire (banner, responses, events)."""
    return tuple(
        (p.parent.name, p.read_bytes()) for p in sorted(ASTERISK22.glob("*/raw.ami"))
    )


@functools.cache
def small_raw_streams() -> tuple[tuple[str, bytes], ...]:
    return tuple((n, b) for n, b in raw_streams() if len(b) < 200_000)


@functools.cache
def captures() -> tuple[tuple[str, tuple[tuple[Message, float], ...]], ...]:
    """Every recorded stream as (message, time) pairs: ours and cacofonisk's."""
    out: list[tuple[str, tuple[tuple[Message, float], ...]]] = []
    for path in sorted(ASTERISK22.glob("*/events.jsonl")):
        out.append((path.parent.name, tuple(read_capture(path))))
    root = cacofonisk_dir()
    for path in sorted(root.glob("*/*.json")):
        out.append((str(path.relative_to(root)), tuple(read_capture(path))))
    return tuple(out)


@pytest.fixture(scope="module")
def corpus() -> None:
    """The cacofonisk streams are there, checked once before Hypothesis starts: inside
    it, each example failed again after reading every capture, and shrank, for minutes
    per test instead of one clear line."""
    cacofonisk_dir()


def profile_for(name: str) -> PbxProfile:
    return CACOFONISK_PROFILE if name.endswith(".json") else PbxProfile()


capture_index = st.integers(min_value=0, max_value=10_000)


def pick_capture(i: int) -> tuple[str, tuple[tuple[Message, float], ...]]:
    all_ = captures()
    return all_[i % len(all_)]


# --------------------------------------------------------------------------- checks


def live_state(tracker: CallTracker) -> dict[str, int]:
    """Sizes of everything the tracker keeps per live call (white box: memory is the point)."""
    return {
        "calls": len(tracker._calls),
        "channels": len(tracker._channels),
        "by_name": len(tracker._by_name),
        "bridges": len(tracker._bridges),
        "local_halves": len(tracker._local_halves),
        "alias": len(tracker._alias),
        "pending": len(tracker._pending),
    }


def check_fact(fact: Fact, *, ordered: bool) -> None:
    """What the CRM relies on in every fact, whatever the input was."""
    if isinstance(fact, CallProgress):
        assert fact.linkedid and isinstance(fact.linkedid, str)
        assert fact.state in ("ringing", "answered", "ended")
        assert fact.direction in DIRECTIONS
        assert math.isfinite(fact.at)
        return
    if not isinstance(fact, CallRecord):
        return
    r = fact
    assert r.linkedid and isinstance(r.linkedid, str)
    assert r.direction in DIRECTIONS
    assert r.outcome in OUTCOMES
    assert r.hangup_by in HANGUP_BY
    assert r.answered == (r.answered_at is not None) == (r.outcome == "answered")
    for t in (r.started_at, r.ended_at, r.ring_seconds, r.talk_seconds):
        assert math.isfinite(t), r
    assert r.answered_at is None or math.isfinite(r.answered_at)
    assert r.ring_seconds >= 0 and r.talk_seconds >= 0, r
    assert r.started_at <= r.ended_at, r
    if r.answered_at is not None:
        assert r.started_at <= r.answered_at <= r.ended_at, r
    if ordered:
        span = r.ended_at - r.started_at
        assert r.talk_seconds <= span + 1e-6, r
        assert r.ring_seconds <= span + 1e-6, r
    assert all(isinstance(x, str) for x in (*r.rang, *r.uniqueids, *r.recordings))


def run_tracker(
    tracker: CallTracker, items: Iterable[tuple[Message, float]], *, ordered: bool
) -> list[Fact]:
    """Feed everything, let every grace pass, then close what is still open.

    Asserts the facts are well formed, that no call is recorded twice, and that nothing
    is left behind in the tracker afterwards.
    """
    facts: list[Fact] = []
    for msg, at in items:
        facts += tracker.feed(msg, at)
    facts += tracker.tick(LATE)
    assert live_state(tracker)["pending"] == 0
    facts += tracker.flush(include_live=True)
    assert all(v == 0 for v in live_state(tracker).values()), live_state(tracker)
    records = [f for f in facts if isinstance(f, CallRecord)]
    ids = [r.linkedid for r in records]
    assert len(ids) == len(set(ids)), f"a call was recorded twice: {ids}"
    for fact in facts:
        check_fact(fact, ordered=ordered)
    return facts


def mutate(
    items: tuple[tuple[Message, float], ...], rng: random.Random, drop: float, dup: float,
    swap: float, window: int,
) -> list[Message]:
    """Drop, duplicate and locally reorder events (what a buggy PBX or proxy might do)."""
    out: list[Message] = []
    for msg, _ in items:
        if rng.random() < drop:
            continue
        out.append(msg)
        if rng.random() < dup:
            out.append(msg)
    for i in range(len(out)):
        if rng.random() < swap:
            j = min(len(out) - 1, i + rng.randint(1, window))
            out[i], out[j] = out[j], out[i]
    return out


# --------------------------------------------------------------------------- reader


@FUZZ
@given(st.lists(st.binary(max_size=600), max_size=40), st.integers(16, 4096))
def test_reader_survives_random_bytes(chunks: list[bytes], max_frame: int) -> None:
    reader = FrameReader(max_frame=max_frame)
    for chunk in chunks:
        for msg in reader.feed(chunk):
            assert all(isinstance(k, str) for k in msg)
            assert all(isinstance(v, str | list) for v in msg.values())
        assert reader.buffered <= max_frame
    reader.close()
    assert reader.buffered == 0


@FUZZ
@given(
    st.integers(0, 100),
    st.lists(st.integers(1, 70_000), min_size=1, max_size=30),
)
def test_reader_gives_the_same_frames_however_the_stream_is_cut(
    which: int, cuts: list[int]
) -> None:
    """TCP delivers a stream in arbitrary pieces: the frames must not depend on them."""
    name, data = small_raw_streams()[which % len(small_raw_streams())]
    # A caller name with characters that take several bytes, so cuts land inside them.
    data += "Event: NewCallerid\r\nCallerIDName: Jürgen Ångström 王\r\n\r\n".encode()
    whole = FrameReader()
    expected = whole.feed(data) + whole.close()
    reader = FrameReader()
    got: list[Message] = []
    pos = 0
    for cut in cuts:
        got += reader.feed(data[pos : pos + cut])
        pos += cut
    got += reader.feed(data[pos:]) + reader.close()
    note(name)
    assert got == expected
    assert expected[-1]["CallerIDName"] == "Jürgen Ångström 王"


@FUZZ
@given(
    st.integers(257, 20_000),
    st.integers(1, 5000),
    st.booleans(),
    st.sampled_from(["\r\n", "\n"]),
)
def test_oversized_frames_are_dropped_and_the_stream_recovers(
    size: int, chunk: int, terminated_huge_line: bool, eol: str
) -> None:
    """Beyond ``max_frame`` a frame is dropped whole; its tail never becomes a frame."""
    max_frame = 256
    good = f"Event: Newstate{eol}Uniqueid: 1.1{eol}{eol}"
    huge_value = "x" * size + (eol if terminated_huge_line else "")
    # The tail of the huge frame looks like a response: it must not come out as one.
    huge = f"Event: VarSet{eol}Value: {huge_value}Response: Success{eol}ActionID: 7{eol}{eol}"
    data = (good + huge + good + huge + good).encode()
    reader = FrameReader(max_frame=max_frame)
    got: list[Message] = []
    for pos in range(0, len(data), chunk):
        got += reader.feed(data[pos : pos + chunk])
        assert reader.buffered <= max_frame
    got += reader.close()
    assert got == [{"Event": "Newstate", "Uniqueid": "1.1"}] * 3
    assert reader.dropped >= 2


header_name = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=30
)
header_value = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60),
    st.sampled_from(["", "<unknown>", "nan", "inf", "-1", "99999999999999999999", "1.1",
                     "PJSIP/101-00000001", "Local/100@ctx-00000001;1", ";", ":", "\x00"]),
    st.integers(0, 5000).map(lambda n: "9" * n),  # huge numbers (int() refuses > 4300 digits)
)


@FUZZ
@given(st.lists(st.lists(st.tuples(header_name, header_value), max_size=12), max_size=30))
def test_garbage_header_names_and_values_reach_the_tracker_harmlessly(
    frames: list[list[tuple[str, str]]],
) -> None:
    """Frames built raw (encode_action refuses line breaks; a hostile peer does not)."""
    tracker = CallTracker()
    reader = FrameReader(skip=lambda name, text: not tracker.wants(name, text))
    wire = b"".join(
        ("".join(f"{k}: {v}\r\n" for k, v in frame) + "\r\n").encode("utf-8", "surrogatepass")
        for frame in frames
    )
    items = [(msg, 1000.0 + i) for i, msg in enumerate(reader.feed(wire) + reader.close())]
    run_tracker(tracker, items, ordered=True)


# --------------------------------------------------------------------------- tracker


@pytest.mark.usefixtures("corpus")
@FUZZ
@given(
    capture_index,
    st.integers(0, 2**32),
    st.floats(0, 0.3),
    st.floats(0, 0.2),
    st.floats(0, 0.3),
    st.integers(1, 40),
)
def test_tracker_survives_dropped_duplicated_reordered_events(
    which: int, seed: int, drop: float, dup: float, swap: float, window: int
) -> None:
    """Times follow the order events are fed in (a live link's receive times)."""
    name, items = pick_capture(which)
    note(f"{name} seed={seed}")
    rng = random.Random(seed)
    events = mutate(items, rng, drop, dup, swap, window)
    times = sorted(at for _, at in items)[: len(events)]
    times += [times[-1] if times else 0.0] * (len(events) - len(times))
    run_tracker(CallTracker(profile_for(name)), zip(events, times, strict=True), ordered=True)


@pytest.mark.usefixtures("corpus")
@FUZZ
@given(capture_index, st.integers(0, 2**32))
def test_tracker_survives_a_full_shuffle_with_times_attached(which: int, seed: int) -> None:
    """Each event keeps its own time, so time runs backwards and forwards at random."""
    name, items = pick_capture(which)
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    note(name)
    run_tracker(CallTracker(profile_for(name)), shuffled, ordered=False)


bad_times = st.sampled_from([math.nan, math.inf, -math.inf, -1e18, 0.0, 1e18])


@pytest.mark.usefixtures("corpus")
@FUZZ
@given(capture_index, st.integers(0, 2**32), st.lists(bad_times, min_size=1, max_size=5))
def test_tracker_survives_absurd_event_times(which: int, seed: int, absurd: list[float]) -> None:
    """The link takes an event's time from its Timestamp header when there is one."""
    name, items = pick_capture(which)
    rng = random.Random(seed)
    timed = [(m, rng.choice(absurd) if rng.random() < 0.1 else at) for m, at in items]
    run_tracker(CallTracker(profile_for(name)), timed, ordered=False)


@pytest.mark.usefixtures("corpus")
@FUZZ
@given(
    capture_index, st.integers(0, 2**32), st.floats(0.01, 0.5), st.lists(header_value, min_size=1)
)
def test_tracker_survives_mangled_header_values(
    which: int, seed: int, rate: float, values: list[str]
) -> None:
    """Real events with values replaced: ids from other calls, empties, huge numbers,
    repeated headers (which parse as lists), garbage."""
    name, items = pick_capture(which)
    rng = random.Random(seed)
    ids = [first(m.get("Uniqueid")) for m, _ in items if m.get("Uniqueid")] or ["1.1"]
    mangled: list[tuple[Message, float]] = []
    for msg, at in items:
        out = dict(msg)
        for key in list(out):
            if rng.random() >= rate:
                continue
            choice = rng.randrange(5)
            if choice == 0:
                out[key] = rng.choice(values)
            elif choice == 1:
                out[key] = rng.choice(ids)
            elif choice == 2:
                out[key] = [first(out[key]), rng.choice(values)]  # header sent twice
            elif choice == 3:
                out[key] = []
            else:
                del out[key]
        mangled.append((out, at))
    note(name)
    run_tracker(CallTracker(profile_for(name)), mangled, ordered=True)


@pytest.mark.usefixtures("corpus")
@FUZZ
@given(capture_index, st.integers(0, 2**32), st.integers(1, 6), st.floats(0.5, 1.0))
def test_cut_streams_with_resyncs_close_every_call_once(
    which: int, seed: int, cuts: int, listed_share: float
) -> None:
    """The link drops ``cuts`` times, losing a random stretch of events each time, and
    resyncs with a CoreShowChannels listing (most of) the channels alive at the PBX."""
    name, items = pick_capture(which)
    rng = random.Random(seed)
    tracker = CallTracker(profile_for(name))
    starts = set(rng.sample(range(len(items)), min(cuts, len(items))))
    alive: dict[str, Message] = {}  # the PBX's own view of its channels
    facts: list[Fact] = []
    lost_until = -1
    for i, (msg, at) in enumerate(items):
        event = msg.get("Event")
        if event == "Newchannel":
            alive[first(msg.get("Uniqueid"))] = msg
        elif event == "Hangup":
            alive.pop(first(msg.get("Uniqueid")), None)
        if i in starts:
            lost_until = i + rng.randint(0, 40)
        if i < lost_until:
            continue  # the link is down: this event never reaches the bridge
        if i == lost_until:  # reconnected: resync, then carry on
            tracker.begin_resync(at)
            for chan in list(alive.values()):
                if rng.random() < listed_share:
                    listed = {k: v for k, v in chan.items() if k != "Event"}
                    facts += tracker.feed({"Event": "CoreShowChannel", **listed}, at)
            facts += tracker.feed({"Event": "CoreShowChannelsComplete"}, at)
        facts += tracker.feed(msg, at)
    facts += run_tracker(tracker, [], ordered=True)
    ids = [f.linkedid for f in facts if isinstance(f, CallRecord)]
    assert len(ids) == len(set(ids)), ids
    for fact in facts:
        check_fact(fact, ordered=True)


@pytest.mark.usefixtures("corpus")
def test_long_stream_keeps_tracker_state_bounded() -> None:
    """Hours of traffic with an event lost now and then: a periodic resync against an
    idle PBX leaves nothing behind, and between resyncs only live calls are held."""
    items = dict(captures())["11-burst-20-concurrent"]
    alloc = IdAllocator()
    alloc.observe(m for m, _ in items)
    tracker = CallTracker()
    rng = random.Random(7)
    span = items[-1][1] - items[0][1] + 5
    records: list[str] = []
    peak = 0
    for loop in range(30):
        renamer = alloc.renamer()
        for msg, at in items:
            if rng.random() < 0.01:
                continue  # a lost event, maybe a Hangup: that call never ends by itself
            for fact in tracker.feed(renamer.rename(msg), at + loop * span):
                if isinstance(fact, CallRecord):
                    records.append(fact.linkedid)
            peak = max(peak, len(tracker._channels))
        end = items[-1][1] + loop * span + 2
        records += [f.linkedid for f in tracker.tick(end) if isinstance(f, CallRecord)]
        tracker.begin_resync(end)
        records += [
            f.linkedid
            for f in tracker.feed({"Event": "CoreShowChannelsComplete"}, end)
            + tracker.tick(end + 2)
            if isinstance(f, CallRecord)
        ]
        assert all(v == 0 for v in live_state(tracker).values()), (loop, live_state(tracker))
    assert len(records) == len(set(records)) == 30 * 20
    assert peak < 200  # 20 calls of a few channels each, never the whole history
    assert len(tracker._finished) <= 20_001


@pytest.mark.usefixtures("corpus")
def test_wire_round_trip_of_every_capture_through_reader_and_tracker() -> None:
    """Every recorded stream re-encoded and cut into 7-byte reads gives the same records
    as feeding its messages directly."""
    for name, items in captures():
        kept = [(m, at) for m, at in items if m and _encodable(m)]
        direct = run_tracker(CallTracker(profile_for(name)), kept, ordered=False)
        wire = b"".join(encode_action(msg) for msg, _ in kept)
        reader = FrameReader()
        msgs: list[Message] = []
        for pos in range(0, len(wire), 7):
            msgs += reader.feed(wire[pos : pos + 7])
        msgs += reader.close()
        assert len(msgs) == len(kept), name
        timed = [(m, at) for m, (_, at) in zip(msgs, kept, strict=True)]
        via_wire = run_tracker(CallTracker(profile_for(name)), timed, ordered=False)
        assert [_key(f) for f in via_wire] == [_key(f) for f in direct], name


def _key(fact: Fact) -> tuple[object, ...]:
    if isinstance(fact, CallRecord):
        return (fact.linkedid, fact.outcome, fact.answered_by, fact.final_agent)
    return (type(fact).__name__,)


def _encodable(msg: Message) -> bool:
    return all(
        "\r" not in v and "\n" not in v and "\r" not in k and "\n" not in k
        for k, vs in msg.items()
        for v in (vs if isinstance(vs, list) else [vs])
    )
