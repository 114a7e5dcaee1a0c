"""An export from request to tombstone (DESIGN section 2):

    request_export   the clerk asks; the dossier must have ended; a job is queued
    claim_export     one process takes the job (again, after a crash or a failure)
    run_export       gather the content, let the exporter hand it over step by step; when the
                     target has confirmed everything, crypto-shred at once and leave a
                     tombstone naming the target, its references and the manifest checksum.
                     If anything fails, nothing is shredded: the dossier keeps its deadline,
                     the job says why, and a retry continues from the last finished step.

Every step is an audit event.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlmodel import col

from dossier.errors import DossierDestroyed, DossierError, InvalidState
from dossier.export.base import Exporter
from dossier.export.errors import ExportError
from dossier.export.gather import gather_content
from dossier.lookup import get_live_dossier, record_dossier_event
from dossier.models import DossierState, ExportJob, ExportStep, Tombstone, TombstoneOutcome
from dossier.shredding import ExportRecord, destroy_dossier
from dossier.store import DossierStore
from retention.audit import Actor
from retention.policy import Policy

__all__ = [
    "STALE_AFTER",
    "ExportJobInfo",
    "claim_export",
    "export_job",
    "pending_exports",
    "request_export",
    "retry_export",
    "run_export",
]

log = logging.getLogger(__name__)

# A running job whose process has not reported progress for this long is taken over.
STALE_AFTER = dt.timedelta(minutes=10)
_ACTIVE = ("queued", "running")


@dataclass(frozen=True)
class ExportJobInfo:
    """An export as the clerk's page shows it."""

    export_id: uuid.UUID
    dossier_id: uuid.UUID
    department_id: uuid.UUID
    target: str
    state: str  # queued, running, failed, done
    progress: float
    progress_text: str
    error: str | None
    references: Mapping[str, str]
    manifest_sha256: str | None
    created_at: dt.datetime
    finished_at: dt.datetime | None


def _info(row: ExportJob) -> ExportJobInfo:
    return ExportJobInfo(
        export_id=row.id,
        dossier_id=row.dossier_id,
        department_id=row.department_id,
        target=row.target,
        state=row.state,
        progress=row.progress,
        progress_text=row.progress_text,
        error=row.error,
        references=json.loads(row.references) if row.references else {},
        manifest_sha256=row.manifest_sha256,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


async def request_export(
    store: DossierStore,
    *,
    actor: Actor,
    dossier_id: uuid.UUID,
    department_id: uuid.UUID,
    target: str,
    options: Mapping[str, str],
) -> ExportJobInfo:
    """Queue an export of an ended dossier. Raises InvalidState (409) when it was exported
    already, when the call has not ended, or when an export of it is under way;
    DossierDestroyed (410) when it is gone; DossierNotFound when it never existed."""
    async with store.sessions() as session, session.begin():
        tombstone = await session.get(Tombstone, dossier_id)
        if tombstone is not None and tombstone.outcome == TombstoneOutcome.EXPORTED:
            when = f"{tombstone.removed_at:%Y-%m-%d %H:%M} UTC"
            raise InvalidState(
                f"dossier {dossier_id} was exported already "
                f"({tombstone.export_target or 'export'}, {when})"
            )
        dossier = await get_live_dossier(session, dossier_id)
        if dossier.state != DossierState.ENDED:
            raise InvalidState(
                f"dossier {dossier_id} is {dossier.state}: end the call before exporting"
            )
        running = select(col(ExportJob.id)).where(
            col(ExportJob.dossier_id) == dossier_id, col(ExportJob.state).in_(_ACTIVE)
        )
        if (await session.execute(running)).first() is not None:
            raise InvalidState(f"an export of dossier {dossier_id} is already under way")
        now = await store.clock.now(session)
        job = ExportJob(
            dossier_id=dossier_id,
            department_id=department_id,
            target=target,
            options=json.dumps(dict(options), sort_keys=True),
            state="queued",
            requested_by=str(actor),
            created_at=now,
            updated_at=now,
        )
        session.add(job)
        await record_dossier_event(
            session, at=now, actor=actor, action="export.requested", dossier_id=dossier_id,
            detail={"export": str(job.id), "target": target},
        )  # fmt: skip
    return _info(job)


async def retry_export(store: DossierStore, *, actor: Actor, export_id: uuid.UUID) -> ExportJobInfo:
    """Queue a failed export again; its finished steps are kept. InvalidState unless failed."""
    async with store.sessions() as session, session.begin():
        job = await session.get(ExportJob, export_id, with_for_update=True)
        if job is None:
            raise InvalidState(f"no export {export_id}")
        if job.state != "failed":
            raise InvalidState(
                f"export {export_id} is {job.state}; only a failed export is retried"
            )
        now = await store.clock.now(session)
        job.state, job.error, job.updated_at = "queued", None, now
        await record_dossier_event(
            session, at=now, actor=actor, action="export.retried", dossier_id=job.dossier_id,
            detail={"export": str(job.id)},
        )  # fmt: skip
    return _info(job)


async def export_job(store: DossierStore, export_id: uuid.UUID) -> ExportJobInfo | None:
    """The export's state, or None if there is no such export."""
    async with store.sessions() as session:
        row = await session.get(ExportJob, export_id)
    return _info(row) if row is not None else None


async def pending_exports(store: DossierStore) -> list[uuid.UUID]:
    """Exports waiting for a process: queued, or running without progress for STALE_AFTER."""
    async with store.sessions() as session:
        now = await store.clock.now(session)
        query = select(col(ExportJob.id)).where(
            or_(
                col(ExportJob.state) == "queued",
                (col(ExportJob.state) == "running")
                & (col(ExportJob.updated_at) < now - STALE_AFTER),
            )
        )
        return list((await session.execute(query)).scalars())


async def claim_export(store: DossierStore, export_id: uuid.UUID) -> bool:
    """Take the job for this process; False if another process has it (one atomic UPDATE,
    so two processes never run the same export at once)."""
    async with store.sessions() as session, session.begin():
        now = await store.clock.now(session)
        claimed = await session.execute(
            update(ExportJob)
            .where(col(ExportJob.id) == export_id)
            .where(
                or_(
                    col(ExportJob.state) == "queued",
                    (col(ExportJob.state) == "running")
                    & (col(ExportJob.updated_at) < now - STALE_AFTER),
                )
            )
            .values(state="running", updated_at=now, attempts=ExportJob.attempts + 1)
        )
        return bool(claimed.rowcount)  # type: ignore[attr-defined]


class _Ledger:
    """The job's finished steps, in the database: they survive crashes and retries."""

    def __init__(self, store: DossierStore, export_id: uuid.UUID) -> None:
        self._store, self._export_id = store, export_id

    async def done(self, key: str) -> dict[str, Any] | None:
        async with self._store.sessions() as session:
            row = await session.get(ExportStep, (self._export_id, key))
        return json.loads(row.result) if row is not None else None

    async def record(self, key: str, result: dict[str, Any]) -> None:
        async with self._store.sessions() as session, session.begin():
            now = await self._store.clock.now(session)
            row = await session.get(ExportStep, (self._export_id, key))
            if row is None:
                session.add(
                    ExportStep(export_id=self._export_id, key=key, result=json.dumps(result),
                               recorded_at=now)
                )  # fmt: skip
            else:
                row.result, row.recorded_at = json.dumps(result), now


async def _set(store: DossierStore, export_id: uuid.UUID, **values: Any) -> None:
    async with store.sessions() as session, session.begin():
        values["updated_at"] = await store.clock.now(session)
        await session.execute(
            update(ExportJob).where(col(ExportJob.id) == export_id).values(**values)
        )


async def run_export(
    store: DossierStore,
    *,
    export_id: uuid.UUID,
    exporters: Mapping[str, Exporter],
    policy: Policy,
) -> ExportJobInfo:
    """Run a claimed export to its end: done (and the dossier shredded) or failed (nothing
    shredded, the reason kept). Never raises for a failure of the export itself."""
    async with store.sessions() as session:
        job = await session.get_one(ExportJob, export_id)
        now = await store.clock.now(session)
    role, _, ref = job.requested_by.partition(":")
    actor = Actor(role, ref)
    options = json.loads(job.options)
    last: list[Any] = [-1.0, ""]  # fraction, text

    async def progress(fraction: float, text: str) -> None:
        # Written at most every 5 %: each write is a transaction, and it doubles as heartbeat.
        if text != last[1] or fraction - last[0] >= 0.05:
            last[0], last[1] = fraction, text
            await _set(store, export_id, progress=round(fraction, 3), progress_text=text[:200])

    try:
        exporter = exporters.get(job.target)
        if exporter is None:
            raise ExportError(f"no exporter {job.target!r} is configured")
        content = await gather_content(
            store, actor=actor, dossier_id=job.dossier_id, policy=policy, exported_at=now
        )
        outcome = await exporter.export(
            content, options=options, steps=_Ledger(store, export_id), progress=progress
        )
    except (DossierError, ExportError) as exc:
        return await _failed(store, job, actor, exc)
    except Exception as exc:  # an exporter's bug must not leave the job "running" forever
        log.exception("export %s failed unexpectedly", export_id)
        return await _failed(store, job, actor, exc)
    references = json.dumps(dict(outcome.references), sort_keys=True)
    async with store.sessions() as session, session.begin():
        now = await store.clock.now(session)
        await record_dossier_event(
            session, at=now, actor=actor, action="export.confirmed", dossier_id=job.dossier_id,
            detail={"export": str(export_id), "target": job.target,
                    "manifest_sha256": outcome.manifest_sha256},
        )  # fmt: skip
    # The target has everything: the local copy goes at once (crypto-shredding).
    await destroy_dossier(
        store,
        actor=actor,
        dossier_id=job.dossier_id,
        outcome=TombstoneOutcome.EXPORTED,
        export_reference=f"{job.target}:{export_id}",
        export=ExportRecord(job.target, references, outcome.manifest_sha256),
    )
    await _set(
        store, export_id, state="done", progress=1.0, progress_text="Klaar", references=references,
        manifest_sha256=outcome.manifest_sha256, finished_at=now, error=None,
    )  # fmt: skip
    info = await export_job(store, export_id)
    assert info is not None
    return info


async def _failed(
    store: DossierStore, job: ExportJob, actor: Actor, exc: Exception
) -> ExportJobInfo:
    message = str(exc) or type(exc).__name__
    await _set(store, job.id, state="failed", error=message[:500])
    if not isinstance(exc, DossierDestroyed):
        async with store.sessions() as session, session.begin():
            now = await store.clock.now(session)
            await record_dossier_event(
                session, at=now, actor=actor, action="export.failed", dossier_id=job.dossier_id,
                detail={"export": str(job.id), "target": job.target,
                        "error": getattr(exc, "code", "error")},
            )  # fmt: skip
    info = await export_job(store, job.id)
    assert info is not None
    return info
