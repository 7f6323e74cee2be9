"""Queue figures from stored facts, on both engines: the recorded Asterisk 22 queue calls
(20: 102 rings out and 103 answers; 21: the caller gives up while 103 rings) checked
against the PBX's own queue_log, generated calls for the edges (service level and short
abandon limits, per-queue settings, days and hours), pause and registration events, and
the agreement with the calls list and the missed-calls audit of the same period."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from ami_bridge.replay import replay_file
from config.settings import load_settings, pbx_profile
from crm.access import Scope
from crm.events import EventBus
from crm.ingest import Ingest
from crm.models import CallFilter, User
from crm.policy import LeadPolicy
from crm.queue_settings import QueueSettings, QueueSettingsBook, Threshold, parse
from crm.queue_stats import agent_times, bucket_of
from crm.services import CrmService, InvalidInput
from crm.store import Store

from .conftest import Clock
from .factories import T0, inbound, outbound

CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk-22"
QUEUE_SCENARIOS = ("20-queue-second-member", "21-queue-abandoned")
OTHER_SCENARIOS = (
    "01-inbound-answered",
    "02-inbound-missed",
    "05-outbound-answered",
    "09-internal-call",
    "11-burst-20-concurrent",
    "18-declined",
    "22-busy",
)
NAMES = {"Alice Adams": "101", "Bob Brown": "102", "Carol Chen": "103"}
DAY = 86_400.0


def _policy() -> tuple[Any, LeadPolicy]:
    profile = pbx_profile(load_settings(env={}, demo=True))
    return profile, LeadPolicy(
        own_numbers=profile.own_numbers,
        default_region=profile.default_region,
        callback_sla_minutes=30,
    )


def _queue_log(scenario: str) -> list[list[str]]:
    """The PBX's queue_log lines: time|callid|queue|agent|event|data..."""
    text = (CAPTURES / scenario / "queue_log.txt").read_text()
    return [line.split("|") for line in text.splitlines() if line.strip()]


async def _office(store: Store) -> dict[str, User]:
    users = {}
    for username, (full, ext) in zip(("alice", "bob", "carol"), NAMES.items(), strict=True):
        users[ext] = await store.add_user(User(None, username, full, "rep", [ext]), 0.0)
    return users


async def _replay(store: Store, clock: Clock, scenarios: tuple[str, ...]) -> None:
    profile, policy = _policy()
    ingest = Ingest(store, policy, EventBus(), clock)
    for scenario in scenarios:
        for rec in replay_file(CAPTURES / scenario / "events.jsonl", profile):
            await ingest.handle(rec)


def _service(store: Store, clock: Clock) -> CrmService:
    return CrmService(store, _policy()[1], clock)


async def _add_events(store: Store, rows: list[tuple[float, str, str | None, str, str | None]]):
    """Agent events as the board's tracker stores them (``agent_events``, migration 0015)."""
    async with store._use() as c:  # type: ignore[attr-defined]
        await c.executemany(
            "INSERT INTO agent_events (ts, kind, queue, extension, reason) "
            "VALUES ($1, $2, $3, $4, $5)",
            rows,
        )


# -- the recorded queue calls ---------------------------------------------------------------
async def test_recorded_queue_calls_match_the_pbx_queue_log(store: Store, clock: Clock) -> None:
    users = await _office(store)
    await _replay(store, clock, QUEUE_SCENARIOS)
    since, until = 1_796_000_000.0, 1_796_000_000.0 + DAY
    clock.now = until
    report = await _service(store, clock).queue_report(since, until)

    (support,) = report.queues
    assert support.queue == "support"
    # queue_log: one ENTERQUEUE per call, one CONNECT, one ABANDON
    log = [line for s in QUEUE_SCENARIOS for line in _queue_log(s)]
    events = [line[4] for line in log]
    assert support.offered == events.count("ENTERQUEUE") == 2
    assert support.answered == events.count("CONNECT") == 1
    assert support.abandoned + support.short_abandoned == events.count("ABANDON") == 1
    assert support.short_abandoned == 0  # gave up after 8 s; short abandons are <= 5 s
    # waits: CONNECT's holdtime, ABANDON's waittime (whole seconds in the queue_log)
    (connect,) = [line for line in log if line[4] == "CONNECT"]
    (abandon,) = [line for line in log if line[4] == "ABANDON"]
    assert support.asa == pytest.approx(float(connect[5]), abs=1.0)
    assert support.longest_wait == pytest.approx(float(connect[5]), abs=1.0)
    assert support.wait_abandoned[bucket_of(int(abandon[7]))] == 1
    # talk: COMPLETECALLER's talk time
    (complete,) = [line for line in log if line[4] == "COMPLETECALLER"]
    assert support.aht == pytest.approx(float(complete[6]), abs=1.0)
    # answered in 9 s <= 20 s; of 2 offered, no short abandon
    assert support.service_level == pytest.approx(0.5)
    assert sum(support.wait_answered) == 1 and sum(support.wait_abandoned) == 1

    reps = {r.name: r for r in report.reps}
    by_agent: dict[str, int] = {}
    for line in log:
        if line[4] == "RINGNOANSWER":
            by_agent[line[3]] = by_agent.get(line[3], 0) + 1
    assert {n: r.rona for n, r in reps.items()} == {
        n: by_agent.get(n, 0) for n in reps
    }  # Bob rang out twice; Carol was still ringing when the caller left (RINGCANCELED)
    assert reps["Bob Brown"].rona == 2
    assert (reps["Carol Chen"].answered, reps["Carol Chen"].rona) == (1, 0)
    assert reps["Carol Chen"].talk_seconds == pytest.approx(float(complete[6]), abs=1.0)
    assert "Alice Adams" not in reps  # not a member of the queue, no events
    assert users["103"].id == reps["Carol Chen"].user_id


async def test_queue_figures_agree_with_the_calls_list_and_the_missed_audit(
    store: Store, clock: Clock
) -> None:
    """Every recorded scenario (queue or not) plus generated queue calls: per period the
    queue report counts exactly the queue calls the calls list shows, and its abandons
    are exactly the queue calls of the missed-calls audit, for the admin and a manager."""
    users = await _office(store)
    await _replay(store, clock, QUEUE_SCENARIOS + OTHER_SCENARIOS)
    _, policy = _policy()
    ingest = Ingest(store, policy, EventBus(), clock)
    t = 1_796_000_000.0
    for i, (who, wait) in enumerate([("101", 3.0), ("102", 25.0), (None, 2.0), (None, 40.0)]):
        await ingest.handle(_queued(t + 600 * i, who, wait, caller=f"+1415555{i:04d}"))
    service = _service(store, clock)
    team = await service.create_team("Support", "test")
    manager = await store.add_user(User(None, "maria", "Maria", "manager", [], team_id=team.id), 0)
    for ext in ("102", "103"):
        u = users[ext]
        assert u.id is not None and team.id is not None
        await service.set_team(u.id, team.id, "test")
    since, until = 1_795_300_000.0, 1_796_100_000.0
    clock.now = until
    for scope in (None, await service.scope_for(manager)):
        report = await service.queue_report(since, until, scope)
        calls = (
            await service.list_calls(CallFilter(since=since, until=until), 500, None, scope)
        ).items
        queued = [c for c in calls if c.queue]
        missed = (await service.missed_calls_audit(since, until, 500, None, scope)).items
        missed_queued = [m for m in missed if m.call.queue]
        total = report.total
        assert total.offered == len(queued) == sum(q.offered for q in report.queues)
        assert total.answered == sum(1 for c in queued if c.answered)
        assert total.abandoned + total.short_abandoned == len(missed_queued)
        assert total.offered == total.answered + total.abandoned + total.short_abandoned
        # per day and per hour add up to the period
        assert sum(q.offered for qs in report.by_day.values() for q in qs) == total.offered
        assert sum(q.offered for qs in report.by_hour.values() for q in qs) == total.offered
        if scope is None:
            assert total.offered == 6
        else:
            # the manager sees the calls his team answered and the unanswered ones whose
            # callback is shared (no owner): alice's answered queue call is not his
            assert total.offered == 5 and all(r.user_id != users["101"].id for r in report.reps)


def _queued(
    at: float,
    answered_by: str | None,
    wait: float,
    *,
    queue: str = "support",
    caller: str = "+14155550300",
    rang: tuple[str, ...] = ("101", "102", "103"),
    talk: float = 30.0,
):
    answered = answered_by is not None
    return inbound(
        caller,
        answered_by=answered_by,
        outcome="answered" if answered else "abandoned",
        at=at,
        did="5552000",
        queue=queue,
        rang=rang,
        answered_at=at + wait if answered else None,
        ended_at=at + wait + (talk if answered else 0.0),
        ring_seconds=wait,
        talk_seconds=talk if answered else 0.0,
        hangup_by="caller",
    )


# -- generated edges ------------------------------------------------------------------------
async def test_limits_are_inclusive_and_per_queue(store: Store, clock: Clock) -> None:
    """Answered within N seconds counts (exactly N too, N+0.3 not); a caller gone within S
    seconds is a short abandon (exactly S too); each queue by its own settings."""
    await _office(store)
    service = _service(store, clock)
    _, policy = _policy()
    ingest = Ingest(store, policy, EventBus(), clock)
    await service.save_queue_settings(
        "sales",
        {**QueueSettings().as_dict(), "service_level_seconds": 10, "short_abandon_seconds": 2},
        "admin",
    )
    calls = [
        ("support", "101", 20.0),
        ("support", "102", 20.3),
        ("support", None, 5.0),
        ("support", None, 5.4),
        ("sales", "101", 10.0),
        ("sales", "101", 12.0),
        ("sales", None, 2.0),
        ("sales", None, 4.0),
    ]
    for i, (queue, who, wait) in enumerate(calls):
        await ingest.handle(_queued(T0 + 60 * i, who, wait, queue=queue, caller=f"+1415555{i:04d}"))
    clock.now = T0 + DAY
    report = await service.queue_report(T0 - 10, T0 + DAY)
    q = {f.queue: f for f in report.queues}
    s, x = q["support"], q["sales"]
    assert (s.offered, s.answered, s.abandoned, s.short_abandoned) == (4, 2, 1, 1)
    assert s.answered_in_time == 1 and s.service_level == pytest.approx(1 / 3)
    assert (x.offered, x.answered, x.abandoned, x.short_abandoned) == (4, 2, 1, 1)
    assert x.answered_in_time == 1 and x.service_level == pytest.approx(1 / 3)
    assert s.asa == pytest.approx(20.15) and s.aht == pytest.approx(30.0)
    assert s.longest_wait == pytest.approx(20.3)
    # all queues: each call judged by its own queue
    t = report.total
    assert (t.offered, t.answered_in_time, t.short_abandoned) == (8, 2, 2)
    assert t.service_level == pytest.approx(2 / 6)
    # buckets: <=10 s, <=20 s, <=30 s ...
    assert x.wait_answered[:3] == [1, 1, 0] and s.wait_answered[:3] == [0, 1, 1]
    assert s.wait_abandoned[0] == 2


async def test_days_and_hours_in_the_display_zone(store: Store, clock: Clock) -> None:
    await _office(store)
    _, policy = _policy()
    ingest = Ingest(store, policy, EventBus(), clock)
    midnight = 1_795_305_600.0  # 2026-11-22 00:00 UTC
    # 23:30 UTC on the 22nd is 01:30 on the 23rd at UTC+2
    for i, at in enumerate((midnight + 3600, midnight + 23.5 * 3600, midnight + 24.5 * 3600)):
        await ingest.handle(_queued(at, "101", 5.0, caller=f"+1415555{i:04d}"))
    clock.now = midnight + 3 * DAY
    report = await _service(store, clock).queue_report(midnight, midnight + 2 * DAY, None, 7200)
    assert {d: sum(q.offered for q in qs) for d, qs in report.by_day.items()} == {
        "2026-11-22": 1,
        "2026-11-23": 2,
    }
    assert {h: sum(q.offered for q in qs) for h, qs in report.by_hour.items()} == {3: 1, 1: 1, 2: 1}


async def test_empty_period_and_bad_input(store: Store, clock: Clock) -> None:
    service = _service(store, clock)
    report = await service.queue_report(T0, T0 + DAY)
    assert report.queues == [] and report.reps == [] and report.total.offered == 0
    assert report.total.service_level is None and report.total.asa is None
    with pytest.raises(InvalidInput):
        await service.queue_report(T0, T0)


async def test_outbound_and_unqueued_calls_are_not_queue_calls(store: Store, clock: Clock) -> None:
    await _office(store)
    _, policy = _policy()
    ingest = Ingest(store, policy, EventBus(), clock)
    await ingest.handle(inbound("+14155550401", answered_by="101", at=T0))
    await ingest.handle(outbound("4155550402", "+14155550402", at=T0 + 10))
    await ingest.handle(_queued(T0 + 20, "101", 4.0, rang=("101",)))
    clock.now = T0 + DAY
    report = await _service(store, clock).queue_report(T0 - 1, T0 + DAY)
    assert report.total.offered == 1
    (alice,) = report.reps
    # occupancy counts all of her calls' talk; her queue figures only the queue call
    assert alice.answered == 1 and alice.talk_seconds == pytest.approx(30.0)
    assert alice.all_talk_seconds == pytest.approx(8.0 + 5.0 + 30.0)


# -- pauses, registrations, occupancy -------------------------------------------------------
async def test_pause_time_and_occupancy_from_agent_events(store: Store, clock: Clock) -> None:
    users = await _office(store)
    _, policy = _policy()
    ingest = Ingest(store, policy, EventBus(), clock)
    start = T0
    await _add_events(
        store,
        [
            # bob: registered and paused (lunch) before the period: both carry into it
            (start - 7200, "registered", None, "102", None),
            (start - 600, "paused", "support", "102", "lunch"),
            (start + 1200, "unpaused", "support", "102", None),
            # paused in two queues at once: counted once (1800..2400 and 2100..2700 -> 900 s)
            (start + 1800, "paused", "support", "102", "admin"),
            (start + 2100, "paused", "sales", "102", "admin"),
            (start + 2400, "unpaused", "support", "102", None),
            (start + 2700, "unpaused", "sales", "102", None),
            (start + 3000, "unregistered", None, "102", None),
            # carol: registered for an hour within the period, never paused
            (start + 100, "registered", None, "103", None),
            (start + 3700, "unregistered", None, "103", None),
            # before the period and closed before it: nothing
            (start - 5000, "paused", "support", "101", "x"),
            (start - 4000, "unpaused", "support", "101", None),
            # an extension nobody has
            (start + 10, "paused", "support", "199", None),
        ],
    )
    await ingest.handle(_queued(start + 200, "103", 5.0, talk=900.0, rang=("103",)))
    await ingest.handle(_queued(start + 1300, "102", 5.0, talk=300.0, rang=("102",)))
    clock.now = start + 4 * 3600
    report = await _service(store, clock).queue_report(start, start + DAY)
    reps = {r.user_id: r for r in report.reps}
    bob, carol = reps[users["102"].id], reps[users["103"].id]
    assert bob.pause_seconds == pytest.approx(1200 + 900)
    assert bob.pause_reasons == pytest.approx({"lunch": 1200.0, "admin": 900.0})
    assert bob.registered_seconds == pytest.approx(3000)
    assert bob.occupancy == pytest.approx(300 / (3000 - 2100))
    assert carol.pause_seconds == 0 and carol.registered_seconds == pytest.approx(3600)
    assert carol.occupancy == pytest.approx(900 / 3600)
    assert users["101"].id not in reps  # alice: no calls, no events in the period


def test_open_intervals_end_at_now_and_unknown_registration_is_none() -> None:
    from crm.models import AgentEventRow

    ev = [AgentEventRow(100.0, "paused", "102", "support", "break", 7)]
    times = agent_times(ev, since=0.0, end=400.0)
    assert times[7] == (300.0, None, {"break": 300.0})


# -- settings ------------------------------------------------------------------------------
def test_thresholds_colour_both_ways() -> None:
    wait = Threshold(60, 120)
    assert [wait.level(v) for v in (59, 60, 119, 120, None)] == [
        "ok",
        "amber",
        "amber",
        "red",
        "ok",
    ]
    sl = QueueSettings().service_level  # amber <= 80 %, red <= 60 %
    assert [sl.level(v) for v in (0.81, 0.80, 0.61, 0.60)] == ["ok", "amber", "amber", "red"]


def test_settings_form_is_checked() -> None:
    good = {k: str(v) for k, v in QueueSettings().as_dict().items()}
    assert parse(good) == QueueSettings()
    for key, value, word in [
        ("service_level_seconds", "x", "whole number"),
        ("service_level_seconds", "0", "from 1"),
        ("waiting_red", "2", "red must be at or above"),
        ("service_level_red", "90", "red must be at or below"),
    ]:
        with pytest.raises(InvalidInput, match=word):
            parse({**good, key: value})


async def test_queue_settings_are_stored_audited_and_fall_back(store: Store, clock: Clock) -> None:
    service = _service(store, clock)
    assert await service.queue_settings() == QueueSettingsBook()
    form = {**QueueSettings().as_dict(), "service_level_seconds": 30}
    await service.save_queue_settings("default", form, "admin")
    await service.save_queue_settings("sales", {**form, "waiting_amber": 1}, "admin")
    book = await service.queue_settings()
    assert book.for_queue("support").service_level_seconds == 30  # the default's
    assert book.for_queue("sales").waiting_amber == 1
    (entry, *_) = await service.list_audit(action="settings.changed")
    assert entry.target == "queues" and entry.actor == "admin"
    await service.forget_queue_settings("sales", "admin")
    assert (await service.queue_settings()).for_queue("sales").waiting_amber == 3
    with pytest.raises(InvalidInput):
        await service.save_queue_settings("bad name; drop", form, "admin")
    with pytest.raises(InvalidInput):
        await service.forget_queue_settings("default", "admin")
    assert dataclasses.asdict(book.default)["service_level_seconds"] == 30


def test_scope_filters_event_only_reps() -> None:
    from crm.queue_stats import rep_figures

    rows = rep_figures(
        [], {}, {1: (10.0, None, {}), 2: (5.0, None, {})}, {1: "A", 2: "B"}, Scope(frozenset({1}))
    )
    assert [r.user_id for r in rows] == [1]
