"""Destroying a dossier by crypto-shredding, in the order DESIGN section 4 prescribes.

    1. mark DESTROYING        (commit)  — from here on nobody reads or writes the dossier
    2. delete the data key    (commit)  — the ciphertext is noise, here and in every backup
    3. remove the blobs                 — idempotent, file by file
    4. delete the rows and write the tombstone, in one transaction

A crash between any two steps is repaired by running `destroy_dossier` again, or by
`finish_interrupted_destructions` at start-up; every step tolerates having run before.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError as DatabaseIntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from dossier.db import NO_TRANSACTION
from dossier.errors import DossierNotFound
from dossier.lookup import record_dossier_event
from dossier.models import (
    Appointment,
    ChatMessage,
    DataKey,
    DemoCheckout,
    Department,
    Document,
    Dossier,
    DossierState,
    Payment,
    PaymentEvent,
    Refund,
    ResidentIdentity,
    ServiceType,
    Tombstone,
    TombstoneOutcome,
)
from dossier.store import DossierStore
from retention.audit import Actor

__all__ = ["ExportRecord", "destroy_dossier", "finish_interrupted_destructions"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ExportRecord:
    """What the tombstone of an exported dossier says of the export."""

    target: str
    references_json: str
    manifest_sha256: str | None


async def destroy_dossier(
    store: DossierStore,
    *,
    actor: Actor,
    dossier_id: uuid.UUID,
    outcome: TombstoneOutcome,
    export_reference: str | None = None,
    destruction_batch: str | None = None,
    export: ExportRecord | None = None,
) -> Tombstone:
    """Crypto-shred the dossier and leave its tombstone; returns the tombstone.

    Idempotent: destroying a destroyed dossier returns the existing tombstone unchanged.
    Raises DossierNotFound when there never was such a dossier.
    """
    # Step 1: mark. Whoever marked first decides the outcome.
    async with store.sessions() as session, session.begin():
        existing = await session.get(Tombstone, dossier_id)
        if existing is not None:
            return existing
        # Row lock on PostgreSQL: a second destroyer waits here and then sees the mark.
        dossier = await session.get(Dossier, dossier_id, with_for_update=True)
        if dossier is None:  # never was, or another destroyer finished while we waited
            return await _tombstone_in(session, dossier_id)
        if dossier.state != DossierState.DESTROYING:
            now = await store.clock.now(session)
            dossier.state, dossier.state_changed_at = DossierState.DESTROYING, now
            dossier.destroy_started_at, dossier.destroy_reason = now, outcome.value
            await record_dossier_event(
                session,
                at=now,
                actor=actor,
                action="dossier.destroy_started",
                dossier_id=dossier_id,
                detail={"outcome": outcome.value},
            )
        outcome = TombstoneOutcome(dossier.destroy_reason or outcome.value)

    # Step 2: shred. After this commit no copy of the content can be decrypted.
    async with store.sessions() as session, session.begin():
        key = await session.get(DataKey, dossier_id, with_for_update=True)  # audited once
        if key is not None:
            await session.delete(key)
            await record_dossier_event(
                session,
                at=await store.clock.now(session),
                actor=actor,
                action="dossier.key_destroyed",
                dossier_id=dossier_id,
                detail={"kek": key.kek_id},
            )

    await _flush_deleted_key(store)

    # Step 3: remove the (now undecryptable) blobs.
    async with store.sessions() as session:
        query = select(col(Document.blob_ref)).where(col(Document.dossier_id) == dossier_id)
        blob_refs = list((await session.execute(query)).scalars())
    for blob_ref in blob_refs:
        await store.blobs.delete(blob_ref)

    # Step 4: rows out, tombstone in — atomically.
    try:
        async with store.sessions() as session, session.begin():
            # Locked: a racing destroyer waits for the other's commit and then finds no row.
            dossier = await session.get(Dossier, dossier_id, with_for_update=True)
            if dossier is None:  # another process finished step 4 meanwhile
                return await _tombstone_in(session, dossier_id)
            appointment = await session.get(Appointment, dossier.appointment_id)
            assert appointment is not None  # foreign key
            service = await session.get(ServiceType, appointment.service_type_id)
            department = await session.get(Department, appointment.department_id)
            assert service is not None  # foreign key
            assert department is not None  # foreign key
            now = await store.clock.now(session)
            tombstone = Tombstone(
                dossier_id=dossier.id,
                appointment_id=appointment.id,
                service_type=service.code,
                department=department.code,
                created_at=dossier.created_at,
                appointment_start=appointment.starts_at,
                deadline=dossier.deadline,
                ended_at=dossier.ended_at,
                outcome=outcome,
                removed_at=now,
                policy_version=dossier.policy_version,
                selectielijst=service.selectielijst,
                export_reference=export_reference,
                destruction_batch=destruction_batch,
                removed_by=str(actor),
                export_target=export.target if export else None,
                export_references=export.references_json if export else None,
                export_manifest_sha256=export.manifest_sha256 if export else None,
                archive_mode=service.archive_mode,
                kek_id=dossier.kek_id,
            )
            # The demo provider's checkouts live in this database too and name the payment.
            payments = select(col(Payment.id)).where(col(Payment.dossier_id) == dossier_id)
            references = [str(p) for p in (await session.execute(payments)).scalars()]
            await session.execute(
                delete(DemoCheckout).where(col(DemoCheckout.reference).in_(references))
            )
            for model in (
                ChatMessage, Document, ResidentIdentity, DataKey, PaymentEvent, Refund, Payment,
            ):  # fmt: skip
                await session.execute(delete(model).where(col(model.dossier_id) == dossier_id))
            await session.delete(dossier)
            await session.flush()
            await session.delete(appointment)
            session.add(tombstone)
            await record_dossier_event(
                session,
                at=now,
                actor=actor,
                action="dossier.destroyed",
                dossier_id=dossier_id,
                detail={"outcome": outcome.value, "service_type": service.code},
            )
    except DatabaseIntegrityError:
        # Two processes raced through step 4; the loser's transaction rolled back whole.
        return await _tombstone(store, dossier_id)
    log.info("dossier %s destroyed (%s)", dossier_id, outcome.value)
    return tombstone


async def _flush_deleted_key(store: DossierStore) -> None:
    """On SQLite, move the zeroed page of the deleted key from the WAL into the database file.

    With `secure_delete` the new page version is zeroed, but the old one stays in the
    write-ahead log until a checkpoint. Best effort: a busy reader only postpones it to the
    next automatic checkpoint. (PostgreSQL keeps dead tuples until VACUUM; see deploy notes.)
    """
    async with store.sessions() as session:
        if session.get_bind().dialect.name == "sqlite":
            conn = await session.connection(execution_options={NO_TRANSACTION: True})
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


async def _tombstone_in(session: AsyncSession, dossier_id: uuid.UUID) -> Tombstone:
    # In the caller's own transaction: a second session would wait for the first's
    # write lock on SQLite (BEGIN IMMEDIATE) until the busy timeout.
    tombstone = await session.get(Tombstone, dossier_id)
    if tombstone is None:
        raise DossierNotFound(f"no dossier with id {dossier_id}")
    return tombstone


async def _tombstone(store: DossierStore, dossier_id: uuid.UUID) -> Tombstone:
    async with store.sessions() as session:
        tombstone = await session.get(Tombstone, dossier_id)
    if tombstone is None:
        raise DossierNotFound(f"no dossier with id {dossier_id}")
    return tombstone


async def finish_interrupted_destructions(store: DossierStore, *, actor: Actor) -> int:
    """Complete every destruction a crash interrupted (and cancelled dossiers); returns count."""
    async with store.sessions() as session:
        query = select(col(Dossier.id), col(Dossier.state), col(Dossier.destroy_reason)).where(
            col(Dossier.state).in_((DossierState.DESTROYING, DossierState.CANCELLED))
        )
        pending = list((await session.execute(query)).all())
    for dossier_id, state, reason in pending:
        if state == DossierState.CANCELLED:
            outcome = TombstoneOutcome.DESTROYED_ON_CANCEL
        else:
            outcome = TombstoneOutcome(reason or TombstoneOutcome.DESTROYED_BY_OPERATOR)
        await destroy_dossier(store, actor=actor, dossier_id=dossier_id, outcome=outcome)
    return len(pending)
