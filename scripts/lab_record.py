"""What the lab recording scripts (``record_asterisk22.py``, ``record_presence.py``) share:
the lab's tools on the path, a scenario's ``scenario.json`` and ``truth.json``, and running
the scenarios asked for one after the other on one rig."""

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

__all__ = ["Lab", "run_scenarios", "write_scenario"]


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
    ``every``) on the rig up in RUN_DIR, writing each under OUT."""
    run_dir, out, keys = sys.argv[1], sys.argv[2], sys.argv[3:]

    async def main() -> None:
        async with Lab(run_dir) as lab:
            for key in keys or list(every):
                await run_one(lab, key, out)
                await asyncio.sleep(2)

    asyncio.run(main())
