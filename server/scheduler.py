"""Background jobs in the server process (APScheduler 3): data-driven, one run at a time.

Each job is one query over the database ("every payment that is not final"), never a timer
per object, so a restart loses nothing: the first run at start-up catches up. Two server
processes may both run a job; the jobs are written so that doing so is harmless.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

from dossier.db import wall_clock
from dossier.payments import reconcile_payments
from retention.audit import Actor
from retention.key_destruction import destroy_expired_keks
from retention.sweeper import sweep
from server.appkeys import CLOCK, DOSSIER_STORE, SETTINGS
from server.audit_routes import checkpoint_job
from server.export_routes import resume_exports
from server.hold_routes import expire_holds_job, notices_job
from server.payment_routes import PAYMENTS, notify_payment
from server.policy_routes import reload_policy

__all__ = [
    "SCHEDULER",
    "key_destruction_job",
    "prune_packages",
    "reconcile_job",
    "scheduler_context",
    "sweep_job",
]

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


async def sweep_job(app: web.Application) -> int:
    """Destroy every dossier past its deadline and not on hold; returns how many."""
    settings = app[SETTINGS]
    report = await sweep(
        app[DOSSIER_STORE],
        actor=Actor.system("retention-sweep"),
        batch_size=settings.retention_sweep_batch,
    )
    return report.destroyed


async def key_destruction_job(app: web.Application) -> int:
    """Destroy each month's KEK whose dossiers are all past deadline plus grace."""
    destroyed = await destroy_expired_keks(
        app[DOSSIER_STORE],
        actor=Actor.system("key-destruction"),
        grace_days=app[SETTINGS].key_destruction_grace_days,
    )
    return len(destroyed)


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
            # Once at start-up, to catch up at once. APScheduler counts in real time, so "now"
            # is the real now: the app's clock (moved by tests) is what the jobs themselves
            # read. An earlier first run time makes it step through every interval missed
            # since then (millions of steps for a clock months behind).
            next_run_time=dt.datetime.now(dt.UTC),
            max_instances=1,  # one run at a time; a slow run delays the next, never doubles
            coalesce=True,
            misfire_grace_time=None,  # late is better than never
        )

    every(settings.payment_reconcile_minutes, reconcile_job)
    every(1, resume_exports)
    every(30, prune_packages)
    # Retention (issue 7); each job is one query over the database and harmless to run in
    # several processes at once.
    every(settings.retention_sweep_minutes, sweep_job)
    every(60, key_destruction_job)
    every(5, notices_job)  # warnings, escalations and their e-mail (retried here)
    every(5, expire_holds_job)
    every(1, reload_policy)  # a policy version approved in another process takes effect here
    every(1, checkpoint_job)  # signs the audit chain's head when a checkpoint is due
    scheduler.start()
    app[SCHEDULER] = scheduler
    try:
        yield
    finally:
        scheduler.shutdown(wait=False)
        if running:
            await asyncio.wait(running, timeout=SHUTDOWN_WAIT_SECONDS)
