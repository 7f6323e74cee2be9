"""Demo mode: a replay PBX playing recorded Asterisk traffic, and sample people and
contacts, so a newcomer sees calls arrive, screen pops and missed calls within seconds.

The demo data is seeded only into an empty database; the replay PBX listens on a free
loopback port with a random secret, and the link is pointed at it.
"""

from __future__ import annotations

import logging
import random
import secrets
from collections.abc import Iterator
from typing import Any

from ami_bridge.capture import read_capture
from ami_bridge.protocol import Message
from ami_bridge.replay_pbx import OriginateScript, ReplayPbx

from .runtime import Runtime, resolve_path, start_link

log = logging.getLogger(__name__)
DEMO_PASSWORD = "demo-pass-2026"
USERS = (
    ("admin", "Ada Admin", "admin", ()),
    ("maria", "Maria Manager", "manager", ()),
    ("alice", "Alice Rep", "rep", ("101",)),
    ("bob", "Bob Rep", "rep", ("102",)),
    ("carol", "Carol Rep", "rep", ("103",)),
)
TEAM = "Sales"
CLICK_TO_CALL = "tests/fixtures/asterisk-22/06-click-to-call/events.jsonl"
"""The recorded click-to-call the replay PBX answers every click with (``answer_as``:
the Originate it answered, from ``crm-sent.ami``), so a callback can be closed."""
CLICK_RECORDED = ("PJSIP/103", "4155550123")
FIRST = ("Olivia", "Liam", "Emma", "Noah", "Ava", "Lucas", "Mia", "Ethan", "Zoe", "Leo")
LAST = ("Nguyen", "Garcia", "Smith", "Kowalski", "Rossi", "Dubois", "Okafor", "Tanaka")
COMPANIES = ("Acme Corp", "Globex", "Initech", "Umbrella Ltd", "Hooli", "Stark Supplies", "")


def timeline(paths: list[str], gap: float = 4.0) -> Iterator[tuple[Message, float]]:
    """Several captures one after the other on one clock, ``gap`` seconds apart."""
    offset: float | None = None
    end = 0.0
    for path in paths:
        events = list(read_capture(resolve_path(path)))
        if not events:
            continue
        first = events[0][1]
        offset = (end + gap - first) if offset is not None else 0.0
        for msg, at in events:
            yield msg, at + offset
        end = events[-1][1] + offset


async def seed(rt: Runtime) -> bool:
    """Users and sample contacts, only into an empty database."""
    service = rt.service
    if await service.list_users(include_inactive=True):
        return False
    ids: dict[str, int] = {}
    # the manager and the reps are one team, so the manager's pages (missed calls,
    # reports, the board) show their work
    team = await service.create_team(TEAM, actor="demo")
    for username, name, role, exts in USERS:
        user = await service.create_user(
            username, name, DEMO_PASSWORD, role, exts,
            team.id if role != "admin" else None, actor="demo",
        )  # fmt: skip
        assert user.id is not None
        ids[username] = user.id
    known = [
        ("Grace Hopper", "Navy Computing", "+14155550199", "alice"),
        ("Alan Turing", "Bletchley Ltd", "+14155550201", "alice"),
        ("Ada Lovelace", "Analytical Engines", "+14155550204", "bob"),
        ("Katherine Johnson", "NASA Langley", "+14155550208", "bob"),
        ("Linus Torvalds", "Kernel Co", "+14155550123", "carol"),
        ("Tim Berners-Lee", "W3 Consortium", "+442079460958", None),
        ("Margaret Hamilton", "Apollo Software", "+14155550212", "alice"),
    ]
    for name, company, number, owner in known:
        await service.create_contact(
            name, company, f"{name.split()[0].lower()}@example.com", [number],
            owner_id=ids[owner] if owner else None, tags=["demo"], actor="demo",
        )  # fmt: skip
    rng = random.Random(7)
    for i in range(60):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        await service.create_contact(
            f"{first} {last}", rng.choice(COMPANIES), "",
            [f"+1415555{3000 + i:04d}"], owner_id=rng.choice(list(ids.values())[2:]),
            actor="demo",
        )  # fmt: skip
    return True


async def start_demo(rt: Runtime) -> dict[str, Any]:
    demo = rt.settings.get("demo", {})
    captures = list(demo.get("captures", []))
    speed = float(demo.get("speed", 1.0))
    secret = secrets.token_urlsafe(12)
    pbx = ReplayPbx(
        list(timeline(captures)),
        username="crm",
        secret=secret,
        speed=speed,
        loops=None if demo.get("loop", True) else 1,
        loop_gap=float(demo.get("loop_gap", 6.0)),
    )
    click = demo.get("click_to_call", CLICK_TO_CALL)
    if click:
        script = OriginateScript.from_capture(
            resolve_path(click), "c2c-0001", answer_as=CLICK_RECORDED
        )
        pbx.script_originate(script, times=None)
    await pbx.start()
    rt.pbx = pbx
    ami = rt.settings.setdefault("ami", {})
    ami.update(host="127.0.0.1", port=pbx.port, username="crm", secret=secret, tls=False)
    rec = rt.settings.setdefault("recordings", {})
    rec["directory"] = str(resolve_path(demo.get("recordings", "tests/fixtures/asterisk-22")))
    seeded = await seed(rt)
    start_link(rt)
    return {"pbx_port": pbx.port, "seeded": seeded}
