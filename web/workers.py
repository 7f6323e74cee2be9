"""Background work started with the server: the recordings worker and retention, the
click-to-call service, outgoing webhooks, the overdue-callback sweep.  Each is optional
and guarded, so one that cannot start is logged and the CRM still serves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from .runtime import Runtime, resolve_path

log = logging.getLogger(__name__)
Hook = Callable[[Runtime], Awaitable[None]]
DAY = 86400.0
OVERDUE_CHECK_SECONDS = 20.0
"""How often open callbacks are checked for going past due (the live mark and the
``callback.overdue`` webhook come at most this late)."""


async def start_recordings(rt: Runtime) -> None:
    from recordings.retention import purge
    from recordings.worker import RecordingWorker

    cfg = rt.settings.get("recordings", {})
    directory = resolve_path(str(cfg.get("directory", "/var/spool/asterisk/monitor")))
    from .recordings_view import media_dir as configured_media_dir

    media_dir = configured_media_dir(rt)
    media_dir.mkdir(parents=True, exist_ok=True)
    worker = RecordingWorker(
        rt.service, directory, media_dir,
        give_up_after=float(cfg.get("give_up_hours", 24)) * 3600.0,
    )  # fmt: skip
    rt.extras["recordings_worker"] = worker
    rt.extras["media_dir"] = media_dir
    rt.spawn(worker.run_forever(float(cfg.get("check_interval_seconds", 30))), "recordings")

    async def retention() -> None:
        while True:
            current = rt.settings.get("recordings", {})  # the admin may change it any day
            days = int(current.get("retention_days", 0) or 0)
            if days > 0:
                try:
                    report = await purge(
                        rt.service, media_dir, directory, days, time.time(),
                        delete_originals=bool(current.get("delete_originals", False)),
                    )  # fmt: skip
                    if report.deleted:
                        log.info("retention: deleted %d recording files", report.deleted)
                except Exception:
                    log.exception("recording retention failed; retrying tomorrow")
            await asyncio.sleep(DAY)

    rt.spawn(retention(), "recordings-retention")


async def start_clicktocall(rt: Runtime) -> None:
    from .pages.dial import clicktocall_of

    if clicktocall_of(rt) is None:
        raise ValueError("bad [dial] settings (see the log)")


async def start_webhooks(rt: Runtime) -> None:
    from .webhooks import start_webhooks as start

    rt.spawn(start(rt), "webhooks")


async def start_overdue(rt: Runtime) -> None:
    """Every ``OVERDUE_CHECK_SECONDS``: announce the callbacks that went past due
    (``CallbackWork.signal_overdue``, once per task however many processes sweep)."""
    from .runtime import callback_work

    async def sweep() -> None:
        while True:
            try:
                await callback_work(rt).signal_overdue()
            except Exception:
                log.exception("overdue callbacks: sweep failed; retrying")
            await asyncio.sleep(OVERDUE_CHECK_SECONDS)

    rt.spawn(sweep(), "callbacks-overdue")


def startup_hooks() -> list[tuple[str, Hook]]:
    return [
        ("click-to-call", start_clicktocall),
        ("recordings", start_recordings),
        ("webhooks", start_webhooks),
        ("overdue callbacks", start_overdue),
    ]


async def run_hooks(rt: Runtime) -> None:
    for name, hook in startup_hooks():
        try:
            await hook(rt)
        except Exception as exc:
            log.error("%s not started: %s", name, exc)
