"""Click-to-originate latency: from a call to ``ClickToCall.start`` until the replay PBX
has the Originate action in hand, over real TCP on loopback.

    .venv/bin/python -m benchmarks.bench_originate [--clicks 300]

Two runs: with the real audit write (CrmService on SQLite, the embedded default) and with
a no-op auditor (the bridge's own share: checks, dial rules, the action on the wire).
Clicks go one at a time (each waits for its Originate to arrive), then as a burst of
concurrent clicks from many reps, which shows the queueing under load.  Prints p50, p99
and max in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ami_bridge.dialrules import DialRules  # noqa: E402
from ami_bridge.link import AmiLink, LinkSettings  # noqa: E402
from ami_bridge.protocol import Message, first  # noqa: E402
from ami_bridge.replay_pbx import OriginateScript, ReplayPbx  # noqa: E402
from ami_bridge.tracker import CallTracker  # noqa: E402
from crm.clicktocall import ClickToCall  # noqa: E402
from crm.events import EventBus  # noqa: E402
from crm.models import User  # noqa: E402
from crm.policy import LeadPolicy  # noqa: E402
from crm.services import CrmService  # noqa: E402
from crm.store import open_store  # noqa: E402


class TimedPbx(ReplayPbx):
    """The replay PBX noting when each Originate reached it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrived: dict[str, float] = {}
        self.waiters: dict[str, asyncio.Future[None]] = {}

    def _handle_action(self, session: Any, msg: Message) -> None:
        if first(msg.get("Action")) == "Originate":
            action_id = first(msg.get("ActionID"))
            self.arrived[action_id] = time.perf_counter()
            waiter = self.waiters.pop(action_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        super()._handle_action(session, msg)

    async def arrival(self, action_id: str) -> float:
        if action_id not in self.arrived:
            fut = asyncio.get_running_loop().create_future()
            self.waiters[action_id] = fut
            async with asyncio.timeout(5):
                await fut
        return self.arrived[action_id]


class NoAudit:
    async def click_to_call(self, actor: str, number: str, originate_id: str) -> None:
        return None


def figures(label: str, samples: list[float]) -> None:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(
        f"  {label:<44} n={len(ms):4d}  p50 {statistics.median(ms):7.3f} ms"
        f"  p99 {p99:7.3f} ms  max {ms[-1]:7.3f} ms"
    )


async def run(clicks: int, make_auditor: Callable[[], Awaitable[Any]], label: str) -> None:
    auditor = await make_auditor()
    async with TimedPbx(None, speed=0) as pbx:
        pbx.script_originate(OriginateScript.failure(reason=3), times=None)
        settings = LinkSettings(host=pbx.host, port=pbx.port, secret="crmsecret")
        link = AmiLink(settings, CallTracker())
        async with link:
            await link.wait_state("connected")
            reps = [User(i, f"rep{i}", f"R{i}", extensions=[str(200 + i)]) for i in range(1, 101)]
            c2c = ClickToCall(auditor, link, DialRules(), EventBus(), per_user_per_minute=10**6)
            try:
                one: list[float] = []
                for n in range(clicks):
                    t0 = time.perf_counter()
                    res = await c2c.start(reps[0], f"+1415555{n:04d}")
                    one.append(await pbx.arrival(res.originate_id) - t0)
                figures(f"{label}, one click at a time", one)

                async def click(n: int) -> float:
                    t0 = time.perf_counter()
                    res = await c2c.start(reps[n % len(reps)], f"+1650555{n:04d}")
                    return await pbx.arrival(res.originate_id) - t0

                burst = await asyncio.gather(*(click(n) for n in range(clicks)))
                figures(f"{label}, {clicks} concurrent clicks", list(burst))
                assert pbx.actions["originate"] == 2 * clicks
            finally:
                await c2c.aclose()
    close = getattr(getattr(auditor, "store", None), "close", None)
    if close is not None:
        await close()


async def main_async(clicks: int) -> None:
    print(f"click-to-originate latency over TCP (loopback), {clicks} clicks per run")
    with tempfile.TemporaryDirectory() as tmp:

        async def sqlite_service() -> CrmService:
            store = await open_store(f"sqlite:///{Path(tmp) / 'bench.db'}")
            return CrmService(store, LeadPolicy())

        async def no_audit() -> NoAudit:
            return NoAudit()

        await run(clicks, no_audit, "no audit write")
        await run(clicks, sqlite_service, "audit to SQLite")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(main_async(args.clicks))


if __name__ == "__main__":
    main()
