"""The sweeper: every dossier past its deadline and not on hold is crypto-shredded (DESIGN §2, §9).

One run, whichever process it runs in:

    1. On PostgreSQL, take a session-level advisory lock on a connection of its own for the
       whole run. If another process holds it, that process is sweeping: report so, stop.
    2. Claim up to `batch_size` dossiers in one transaction (`FOR UPDATE SKIP LOCKED` on
       PostgreSQL, `BEGIN IMMEDIATE` on SQLite) and mark them DESTROYING with their outcome.
    3. Destroy each with `destroy_dossier`, which leaves a tombstone naming the batch.
    4. Repeat until nothing is due; then close the batch (`DestructionBatch`, audit event).

Due are: dossiers in any live state whose deadline has passed without an active hold;
dossiers left DESTROYING by a crash (the mark is durable, so the next run finishes them);
cancelled dossiers whose destruction on cancel was interrupted. Exported dossiers are gone
already and leave nothing to do. The cost of a run follows the due dossiers, not the table:
every query goes through the (state, deadline) index.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy import Select, exists, func, or_, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from dossier.db import read_session
from dossier.errors import DossierError
from dossier.lookup import record_dossier_event
from dossier.models import (
    Appointment,
    Dossier,
    DossierState,
    ServiceType,
    Tombstone,
    TombstoneOutcome,
)
from dossier.shredding import destroy_dossier
from dossier.store import DossierStore
from retention.audit import Actor, record_event
from retention.models import DestructionBatch, Hold

__all__ = ["SweepItem", "SweepReport", "due_dossiers", "sweep"]

log = logging.getLogger(__name__)

# Any constant works as long as every process uses the same one: it names "the sweep".
_PG_SWEEP_LOCK_KEY = 0x42A11E_5EE9
_INTERRUPTED = (DossierState.DESTROYING.value, DossierState.CANCELLED.value)
_LIVE = tuple(state.value for state in DossierState if state.value not in _INTERRUPTED)
MIXED_POLICY = "mixed"


@dataclass(frozen=True, slots=True)
class SweepItem:
    """One dossier the sweep took on, and what became of it.

    `result` is "destroyed" (by this run), "would_destroy" (dry run), "elsewhere" (another
    process finished it meanwhile; `outcome` is what its tombstone says) or "failed".
    """

    dossier_id: uuid.UUID
    service_type: str
    deadline: dt.datetime
    outcome: TombstoneOutcome
    result: str
    error: str = ""

    def describe(self) -> str:
        """One line for an operator: id, service type, deadline, what happened."""
        what = {
            "destroyed": f"destroyed ({self.outcome.value})",
            "would_destroy": f"would be destroyed ({self.outcome.value})",
            "elsewhere": f"finished by another process ({self.outcome.value})",
        }.get(self.result, f"failed: {self.error}")
        deadline = f"{self.deadline:%Y-%m-%d %H:%M:%S} UTC"
        return f"{self.dossier_id}  {self.service_type}  deadline {deadline}  {what}"


@dataclass(slots=True)
class SweepReport:
    """What one run did (or, dry, would do). `busy`: another process was sweeping."""

    started_at: dt.datetime
    dry_run: bool
    busy: bool = False
    batch_id: str | None = None
    items: list[SweepItem] = field(default_factory=list)

    def count(self, result: str) -> int:
        return sum(1 for item in self.items if item.result == result)

    @property
    def destroyed(self) -> int:
        return self.count("destroyed")

    @property
    def failed(self) -> int:
        return self.count("failed")

    def summary(self) -> str:
        """One closing line for an operator or the log."""
        if self.busy:
            return "another process is sweeping right now; this run did nothing"
        if self.dry_run:
            return (f"dry run: {self.count('would_destroy')} dossier(s) would be destroyed; "
                    "nothing was changed")  # fmt: skip
        if not self.items:
            return "nothing due: no dossier was destroyed"
        line = f"batch {self.batch_id}: {self.destroyed} dossier(s) destroyed"
        if elsewhere := self.count("elsewhere"):
            line += f", {elsewhere} finished by another process"
        return line + f", {self.failed} failed"


@dataclass(frozen=True, slots=True)
class _Due:
    dossier_id: uuid.UUID
    state: str
    deadline: dt.datetime
    destroy_reason: str | None
    service_type: str
    policy_version: str

    @property
    def outcome(self) -> TombstoneOutcome:
        if self.state == DossierState.DESTROYING and self.destroy_reason:
            return TombstoneOutcome(self.destroy_reason)
        if self.state == DossierState.CANCELLED:
            return TombstoneOutcome.DESTROYED_ON_CANCEL
        return TombstoneOutcome.DESTROYED_AT_DEADLINE


def _query(*, now: dt.datetime, interrupted: bool) -> Select[Dossier, str]:
    base = (
        select(Dossier, col(ServiceType.code))
        .join(Appointment, col(Appointment.id) == col(Dossier.appointment_id))
        .join(ServiceType, col(ServiceType.id) == col(Appointment.service_type_id))
    )
    if interrupted:
        # An export interrupted after its mark is the export's to finish (with its
        # references); only once its deadline passed does the sweeper step in.
        return base.where(
            col(Dossier.state).in_(_INTERRUPTED),
            or_(
                col(Dossier.destroy_reason).is_(None),
                col(Dossier.destroy_reason) != TombstoneOutcome.EXPORTED.value,
                col(Dossier.deadline) <= now,
            ),
        )
    held = exists().where(
        col(Hold.dossier_id) == col(Dossier.id),
        col(Hold.state) == "active",
        col(Hold.ends_at) > now,
    )
    return base.where(col(Dossier.state).in_(_LIVE), col(Dossier.deadline) <= now, ~held).order_by(
        col(Dossier.deadline)
    )


async def _find(
    session: AsyncSession,
    *,
    now: dt.datetime,
    limit: int | None,
    skip: Sequence[uuid.UUID] = (),
    lock: bool = False,
) -> list[tuple[Dossier, str]]:
    """Interrupted destructions first, then dossiers past their deadline, `limit` in all."""
    found: list[tuple[Dossier, str]] = []
    for interrupted in (True, False):
        query = _query(now=now, interrupted=interrupted)
        if skip:
            query = query.where(col(Dossier.id).not_in(skip))
        if limit is not None:
            query = query.limit(limit - len(found))
        if lock:  # PostgreSQL only; SQLite's BEGIN IMMEDIATE already excludes other writers
            query = query.with_for_update(of=Dossier, skip_locked=True)
        found.extend((dossier, code) for dossier, code in (await session.execute(query)).all())
        if limit is not None and len(found) >= limit:
            break
    return found


def _due(dossier: Dossier, service_type: str) -> _Due:
    return _Due(
        dossier_id=dossier.id,
        state=str(dossier.state),
        deadline=dossier.deadline,
        destroy_reason=dossier.destroy_reason,
        service_type=service_type,
        policy_version=dossier.policy_version,
    )


async def due_dossiers(store: DossierStore) -> list[SweepItem]:
    """What a sweep would destroy now (the dry run); reads only."""
    async with read_session(store.sessions) as session:
        now = await store.clock.now(session)
        rows = await _find(session, now=now, limit=None)
    return [
        SweepItem(d.dossier_id, d.service_type, d.deadline, d.outcome, "would_destroy")
        for d in (_due(dossier, code) for dossier, code in rows)
    ]


@asynccontextmanager
async def _sweep_lock(store: DossierStore) -> AsyncIterator[bool]:
    """Hold the sweep lock for the whole run; yields False if another process holds it.

    A session-level advisory lock on a connection in autocommit: no transaction stays open
    for the run, and if the process dies its connection closes and the lock goes with it.
    """
    async with store.sessions() as session:
        if session.get_bind().dialect.name != "postgresql":
            yield True  # SQLite: one writer at a time; claims are BEGIN IMMEDIATE
            return
        conn = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        params = {"key": _PG_SWEEP_LOCK_KEY}
        taken = bool(
            (await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), params)).scalar()
        )
        try:
            yield taken
        finally:
            if taken:
                try:
                    await conn.execute(text("SELECT pg_advisory_unlock(:key)"), params)
                except BaseException:
                    await conn.invalidate()  # a closed connection releases the lock too
                    raise


def _batch_id(now: dt.datetime) -> str:
    return f"{now.astimezone(dt.UTC):%Y%m%dT%H%MZ}-{secrets.token_hex(3)}"


def _policy_of(versions: set[str]) -> str:
    return next(iter(versions)) if len(versions) == 1 else MIXED_POLICY


async def _claim(
    store: DossierStore,
    *,
    actor: Actor,
    batch_size: int,
    skip: Sequence[uuid.UUID],
    batch_id: str | None,
) -> tuple[list[_Due], str | None]:
    """Mark the next batch DESTROYING in one transaction; returns it (and the batch id, made
    with the batch row when this is the run's first claim)."""
    async with store.sessions() as session, session.begin():
        now = await store.clock.now(session)
        is_pg = session.get_bind().dialect.name == "postgresql"
        rows = await _find(session, now=now, limit=batch_size, skip=skip, lock=is_pg)
        claimed = [_due(dossier, code) for dossier, code in rows]
        if not claimed:
            return [], batch_id
        if batch_id is None:
            batch_id = _batch_id(now)
            policy = _policy_of({d.policy_version for d in claimed})
            session.add(DestructionBatch(id=batch_id, started_at=now, actor=str(actor),
                                         policy_version=policy))  # fmt: skip
            await record_event(
                session, at=now, actor=actor, action="retention.sweep_started",
                object_type="batch", object_ref=batch_id,
            )  # fmt: skip
        for (dossier, _), due in zip(rows, claimed, strict=True):
            if dossier.state == DossierState.DESTROYING:
                continue  # marked by the run a crash interrupted; its outcome stands
            dossier.state, dossier.state_changed_at = DossierState.DESTROYING, now
            dossier.destroy_started_at, dossier.destroy_reason = now, due.outcome.value
            await record_dossier_event(
                session, at=now, actor=actor, action="dossier.destroy_started",
                dossier_id=dossier.id, detail={"outcome": due.outcome.value, "batch": batch_id},
            )  # fmt: skip
    return claimed, batch_id


async def _destroy(store: DossierStore, *, actor: Actor, due: _Due, batch_id: str) -> SweepItem:
    try:
        tombstone = await destroy_dossier(
            store,
            actor=actor,
            dossier_id=due.dossier_id,
            outcome=due.outcome,
            destruction_batch=batch_id,
        )
    except (DossierError, SQLAlchemyError, OSError) as exc:
        # One dossier that cannot go now must not keep the others; it stays DESTROYING
        # (its key may be gone already) and the next run tries again.
        log.exception("sweep could not destroy dossier %s", due.dossier_id)
        error = getattr(exc, "code", type(exc).__name__)
        return SweepItem(due.dossier_id, due.service_type, due.deadline, due.outcome, "failed",
                         error)  # fmt: skip
    result = "destroyed" if tombstone.destruction_batch == batch_id else "elsewhere"
    return SweepItem(due.dossier_id, due.service_type, due.deadline,
                     TombstoneOutcome(tombstone.outcome), result)  # fmt: skip


async def _close_batch(store: DossierStore, *, actor: Actor, report: SweepReport) -> None:
    batch_id = report.batch_id
    assert batch_id is not None
    async with store.sessions() as session, session.begin():
        now = await store.clock.now(session)
        query = (
            select(col(Tombstone.policy_version), func.count())
            .where(col(Tombstone.destruction_batch) == batch_id)
            .group_by(col(Tombstone.policy_version))
        )
        versions = {v: int(n) for v, n in (await session.execute(query)).all()}
        count = sum(versions.values())
        batch = await session.get_one(DestructionBatch, batch_id)
        if versions:
            batch.policy_version = _policy_of(set(versions))
        batch.finished_at, batch.dossiers = now, count
        await record_event(
            session, at=now, actor=actor, action="retention.sweep", object_type="batch",
            object_ref=batch_id,
            detail={"dossiers": count, "failed": report.failed,
                    "policy_version": batch.policy_version},
        )  # fmt: skip


async def sweep(
    store: DossierStore, *, actor: Actor, batch_size: int, dry_run: bool = False
) -> SweepReport:
    """Destroy every due dossier, `batch_size` at a time, until none is left.

    With `dry_run`, report what would be destroyed and change nothing (not even the audit
    log). A dossier that fails is reported, logged and left for the next run; the others go
    on. Never destroys a dossier twice, however many processes sweep at once.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    async with read_session(store.sessions) as session:  # no write lock on SQLite
        report = SweepReport(started_at=await store.clock.now(session), dry_run=dry_run)
    if dry_run:
        report.items = await due_dossiers(store)
        return report
    async with _sweep_lock(store) as taken:
        if not taken:
            report.busy = True
            return report
        failed: list[uuid.UUID] = []
        while True:
            # A look without the write lock first: most runs find nothing to do.
            async with read_session(store.sessions) as session:
                now = await store.clock.now(session)
                if not await _find(session, now=now, limit=1, skip=failed):
                    break
            claimed, report.batch_id = await _claim(
                store, actor=actor, batch_size=batch_size, skip=failed, batch_id=report.batch_id
            )
            if not claimed:
                break
            for due in claimed:
                item = await _destroy(store, actor=actor, due=due, batch_id=report.batch_id or "")
                report.items.append(item)
                if item.result == "failed":
                    failed.append(due.dossier_id)
        if report.batch_id is not None:
            await _close_batch(store, actor=actor, report=report)
    if report.items:
        log.info("%s", report.summary())
    return report
