"""Background jobs in the server process (APScheduler 3): data-driven, one run at a time.

Each job is one query over the database ("every payment that is not final"), never a timer
per object, so a restart loses nothing: the first run at start-up catches up. Two server
processes may both run a job; the jobs are written so that doing so is harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

from dossier.db import wall_clock
from dossier.payments import reconcile_payments
from server.appkeys import CLOCK, DOSSIER_STORE, SETTINGS
from server.export_routes import resume_exports
from server.payment_routes import PAYMENTS, notify_payment

__all__ = ["SCHEDULER", "prune_packages", "reconcile_job", "scheduler_context"]

log = logging.getLogger(__name__)

SCHEDULER = web.AppKey("scheduler", AsyncIOScheduler)
SHUTDOWN_WAIT_SECONDS = 30.0


async def reconcile_job(app: web.Application) -> int:
    """Bring every open payment up to date; returns how many changed (and tells the calls)."""
    updates = await reconcile_payments(app[DOSSIER_STORE], providers=app[PAYMENTS].providers)
    changed = [update for update in updates if update.changed]
    for update in changed:
        await notify_payment(app, update.payment)
    if changed:
        log.info("reconciled %d payments", len(changed))
    return len(changed)


async def prune_packages(app: web.Application) -> int:
    """Delete export packages older than BALIE_EXPORT_PACKAGE_HOURS: a package holds the
    dossier's content in the clear, and the dossier itself is already shredded."""
    settings = app[SETTINGS]
    folder = settings.resolved_export_dir
    if not folder.is_dir():
        return 0
    cutoff = wall_clock(app[CLOCK])().timestamp() - settings.export_package_hours * 3600
    removed = 0
    for path in folder.glob("*.zip"):
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.info("removed %d export packages past their time", removed)
    return removed


async def scheduler_context(app: web.Application) -> AsyncIterator[None]:
    """Start the jobs (first run at once), and at exit wait for a running job to finish."""
    settings = app[SETTINGS]
    scheduler = AsyncIOScheduler(timezone="UTC")
    running: set[asyncio.Task[Any]] = set()

    def shielded(
        job: Callable[[web.Application], Coroutine[Any, Any, Any]],
    ) -> Callable[[], Awaitable[None]]:
        # APScheduler cancels a running coroutine at shutdown; a job cut off mid-transaction
        # would leave its connection behind. The work runs in a task of its own, which the
        # shutdown below waits for instead.
        async def run() -> None:
            task = asyncio.create_task(job(app))
            running.add(task)
            task.add_done_callback(running.discard)
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("background job %s failed", job.__name__)

        return run

    def every(minutes: float, job: Callable[[web.Application], Coroutine[Any, Any, Any]]) -> None:
        scheduler.add_job(
            shielded(job),
            IntervalTrigger(minutes=minutes),
            id=job.__name__,
            next_run_time=wall_clock(app[CLOCK])(),  # once at start-up: catch up at once
            max_instances=1,  # one run at a time; a slow run delays the next, never doubles
            coalesce=True,
            misfire_grace_time=None,  # late is better than never
        )

    every(settings.payment_reconcile_minutes, reconcile_job)
    every(1, resume_exports)
    every(30, prune_packages)
    scheduler.start()
    app[SCHEDULER] = scheduler
    try:
        yield
    finally:
        scheduler.shutdown(wait=False)
        if running:
            await asyncio.wait(running, timeout=SHUTDOWN_WAIT_SECONDS)
