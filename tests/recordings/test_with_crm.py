"""End to end with the real catalogue: the tracker's full PBX paths go through the CRM's
store (SQLite and PostgreSQL), the worker makes them playable, retention and erasure clean
up.  The store fixtures are the CRM suite's own."""

from __future__ import annotations

import shutil
from pathlib import Path

from crm.ingest import Ingest
from crm.policy import LeadPolicy
from crm.services import CrmService
from crm.store import Store
from recordings.retention import erase_recordings, purge
from recordings.worker import RecordingWorker
from tests.crm.conftest import Clock, pg_database, store, store_url  # noqa: F401
from tests.crm.factories import T0, inbound

from .conftest import REAL, wav_seconds

POLICY = LeadPolicy(own_numbers=("5551000",), callback_sla_minutes=30)


async def test_worker_retention_and_erasure_on_the_real_store(
    store: Store,  # noqa: F811
    tmp_path: Path,
) -> None:
    clock = Clock(T0 + 60)
    service = CrmService(store, POLICY, clock)
    ingest = Ingest(store, POLICY, clock=clock)
    monitor, media = tmp_path / "monitor", tmp_path / "media"
    (monitor / "2026" / "11" / "22").mkdir(parents=True)
    shutil.copy(REAL[0], monitor / "2026" / "11" / "22" / REAL[0].name)
    shutil.copy(REAL[1], monitor / REAL[1].name)
    pbx = "/var/spool/asterisk/monitor/2026/11/22/"
    a = await ingest.handle(inbound("+14155550401", at=T0, recordings=(pbx + REAL[0].name,)))
    b = await ingest.handle(inbound("+14155550402", at=T0 + 5, recordings=(REAL[1].name,)))
    c = await ingest.handle(inbound("+14155550403", at=T0 + 9, recordings=(pbx + "late.wav",)))

    worker = RecordingWorker(service, monitor, media, clock=clock)
    assert await worker.run_once() == 3
    [ra] = await service.recordings_for_call(a.call.id)
    [rb] = await service.recordings_for_call(b.call.id)
    [rc] = await service.recordings_for_call(c.call.id)
    assert (ra.status, rb.status, rc.status) == ("ready", "ready", "missing")
    assert ra.duration_seconds == round(wav_seconds(REAL[0]), 3)
    assert (media / ra.media_path).stat().st_size == ra.size_bytes

    # retention: calls older than a day lose their audio, the call records stay
    clock.now = T0 + 86400 + 20  # a and b ended at T0+12 and T0+17, c at T0+21
    report = await purge(service, media, monitor, 1, clock.now, delete_originals=False)
    assert sorted(report.marked) == sorted([ra.id, rb.id])
    assert (await service.get_recording(ra.id)).status == "deleted"
    assert not (media / ra.media_path).exists()
    assert (await service.get_call(a.call.id)).id == a.call.id
    assert (await service.get_recording(rc.id)).status == "missing"

    # GDPR erasure of c's contact: the CRM returns (id, name), the files go
    pairs = await service.erase_contact(c.call.contact_id, "dpo")
    assert pairs == [(rc.id, pbx + "late.wav")]
    (monitor / "late.wav").write_bytes(REAL[2].read_bytes())  # it did turn up after all
    done = await erase_recordings(pairs, directory=monitor, media_dir=media)
    assert not (monitor / "late.wav").exists() and done.failed == []
