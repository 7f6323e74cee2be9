"""`run.py rebuild-figures`: calls written behind the store's back (a bulk load, a
restore) leave the managers' figures short; the command recounts them from the calls in
the display time zone, and the reports then agree with the calls again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from crm.ingest import Ingest
from crm.policy import LeadPolicy
from crm.store import open_store
from tests.crm.factories import T0, inbound

ROOT = Path(__file__).resolve().parents[2]
BERLIN_DAY = 1_795_302_000.0  # 2026-11-22 00:00 in Europe/Berlin (+01:00)


async def _summary(url: str) -> tuple[Any, Any]:
    """The day's missed-calls summary from the figures, and the rows they hold."""
    store = await open_store(url)
    try:
        summary = await store.missed_summary(BERLIN_DAY, BERLIN_DAY + 86400, 1800.0)
        s: Any = store
        async with s._use() as c:
            zone = await c.fetchval("SELECT zone FROM figures_zone")
            rows = await c.fetchval("SELECT COALESCE(SUM(calls), 0) FROM call_figures")
        return (summary.total_inbound, summary.missed, zone), rows
    finally:
        await store.close()


async def test_rebuild_figures_recounts_them_from_the_calls(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    store = await open_store(url)
    try:
        ingest = Ingest(store, LeadPolicy())
        for i in range(6):
            answered = "101" if i % 3 else None
            await ingest.handle(inbound(f"+1415555010{i}", answered_by=answered, at=T0 + i * 60))
        s: Any = store
        async with s._use() as c:
            await c.execute("DELETE FROM call_figures")  # as a bulk load would leave them
    finally:
        await store.close()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "rebuild-figures"],
        capture_output=True, text=True, timeout=120,
        env={"CRM__DATABASE__URL": url, "CRM__SERVER__DISPLAY_TZ": "Europe/Berlin",
             "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Europe/Berlin" in proc.stdout
    (total, missed, zone), rows = await _summary(url)
    assert (total, missed, zone) == (6, 2, "Europe/Berlin")
    assert rows == 6
