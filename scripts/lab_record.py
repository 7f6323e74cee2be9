"""What the lab recording scripts (``record_asterisk22.py``, ``record_presence.py``) share:
the lab's tools on the path, the table of a script's scenarios, recording one scenario
(capture, play, settle, then its ``scenario.json`` and ``truth.json``), and running the
scenarios asked for one after the other on one rig."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "asterisk", "tools"))

from lab import Lab, _size  # type: ignore[import-not-found]  # noqa: E402

__all__ = ["Lab", "Scenarios", "record", "run_scenarios", "write_scenario"]

Play = Callable[..., Awaitable[dict[str, object]]]
"""One scenario: drives the rig (``play(lab, *args)``) and returns its truth."""


class Scenarios(dict[str, tuple[str, Play, str]]):
    """A script's scenarios by number (``"15"``): directory name, function, title.  Each
    is entered by ``@SCENARIOS("15-name", "title")`` above its function, so the list
    and the functions cannot drift apart; the order is the order they are written in."""

    def __call__(self, dirname: str, title: str) -> Callable[[Play], Play]:
        def enter(play: Play) -> Play:
            self[dirname.split("-", 1)[0]] = (dirname, play, title)
            return play

        return enter


async def _until_idle(cap: Any) -> None:
    await cap.wait_idle()


async def record(
    lab: Lab,
    scenarios: Scenarios,
    key: str,
    outbase: str,
    *args: object,
    settle: Callable[[Any], Awaitable[None]] = _until_idle,
    extra: Callable[[Any], dict[str, object]] | None = None,
) -> None:
    """Record scenario ``key`` in OUTBASE/its directory: played (``play(lab, *args)``)
    under a capture, the rig let settle (``settle(cap)``: by default until every call
    ended), then its truth written with ``extra(cap)``, read once the capture closed (the
    recordings are copied out only then)."""
    dirname, play, title = scenarios[key]
    lab.notes = []
    t_start = time.time()
    async with lab.capture(os.path.join(outbase, dirname)) as cap:
        desc = await play(lab, *args)
        await settle(cap)
    write_scenario(lab, cap, dirname, title, t_start, desc, **(extra(cap) if extra else {}))


def write_scenario(
    lab: Lab,
    cap: Any,
    dirname: str,
    title: str,
    t_start: float,
    desc: dict[str, object],
    **extra: object,
) -> None:
    """Write what the scenario did (``desc``, then ``extra``) with the capture's figures,
    as ``scenario.json`` and ``truth.json`` beside the capture, and say so."""
    info = {
        "scenario": dirname,
        "title": title,
        "started_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_start)),
        **desc,
        **extra,
        "driver_notes": lab.notes,
        "capture": {
            "ami_user": "crm",
            "events": sum(1 for m in cap.events if m["_type"] == "event"),
            "raw_bytes": _size(os.path.join(cap.out, "raw.ami")),
            "cdr_rows": len(cap.cdr_rows),
        },
    }
    for name in ("scenario.json", "truth.json"):
        with open(os.path.join(cap.out, name), "w") as f:
            json.dump(info, f, indent=2, ensure_ascii=False)
            f.write("\n")
    print(dirname, cap.summary(), lab.notes, flush=True)


def run_scenarios(
    every: Iterable[str], run_one: Callable[[Lab, str, str], Awaitable[None]]
) -> None:
    """The command line ``RUN_DIR OUT [KEY...]``: run the scenarios named (default:
    ``every``) on the rig up in RUN_DIR, writing each under OUT.  ``--help``, or too few
    arguments, says so and which keys there are, rather than failing on ``sys.argv``."""
    known = list(every)
    usage = f"usage: {os.path.basename(sys.argv[0])} RUN_DIR OUT [KEY...]  (KEY: {' '.join(known)})"
    if sys.argv[1:2] in (["-h"], ["--help"]):
        print(usage)
        raise SystemExit(0)
    if len(sys.argv) < 3:
        raise SystemExit(usage)
    run_dir, out, keys = sys.argv[1], sys.argv[2], sys.argv[3:]

    async def main() -> None:
        async with Lab(run_dir) as lab:
            for key in keys or known:
                await run_one(lab, key, out)
                await asyncio.sleep(2)

    asyncio.run(main())
