"""One dossier's trail for the information manager: its tombstone or live metadata, its holds
and the audit events about it (and about its holds, notices and export jobs). Metadata only:
audit details hold no personal data by design.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from dossier.models import (
    Appointment,
    Department,
    Dossier,
    ExportJob,
    ServiceType,
    Tombstone,
    TombstoneOutcome,
)
from retention.models import AuditEvent, Hold, RetentionNotice
from retention.reports import HoldRow, live_with_service

__all__ = ["DossierFacts", "DossierTrail", "TrailEvent", "dossier_trail"]


@dataclass(frozen=True, slots=True)
class DossierFacts:
    """The metadata of a live dossier or of its tombstone; `outcome` is "" while it lives."""

    service_type: str
    department: str
    state: str
    outcome: str
    created_at: dt.datetime
    deadline: dt.datetime
    ended_at: dt.datetime | None
    exported_at: dt.datetime | None
    removed_at: dt.datetime | None
    removed_by: str
    policy_version: str
    selectielijst: str
    archive_mode: str
    export_target: str
    export_reference: str
    destruction_batch: str


@dataclass(frozen=True, slots=True)
class TrailEvent:
    seq: int
    occurred_at: dt.datetime
    actor: str
    action: str
    object_type: str
    result: str
    detail: str  # canonical JSON; the audit log holds no personal data by design


@dataclass(frozen=True, slots=True)
class DossierTrail:
    dossier_id: uuid.UUID
    live: DossierFacts | None
    tombstone: DossierFacts | None
    holds: list[HoldRow]
    events: list[TrailEvent] = field(default_factory=list)


async def dossier_trail(session: AsyncSession, dossier_id: uuid.UUID) -> DossierTrail | None:
    """The dossier's live metadata and/or tombstone, its holds, and every audit event about it
    (or about its holds, notices and exports), oldest first. None if nothing is known of it."""
    tombstone = await session.get(Tombstone, dossier_id)
    live = await _live_facts(session, dossier_id)
    holds = list(
        (
            await session.execute(
                select(Hold)
                .where(col(Hold.dossier_id) == dossier_id)
                .order_by(col(Hold.requested_at))
            )
        ).scalars()
    )
    refs = {str(dossier_id)} | {str(h.id) for h in holds}
    for model in (RetentionNotice, ExportJob):
        ids = select(col(model.id)).where(col(model.dossier_id) == dossier_id)
        refs |= {str(i) for i in (await session.execute(ids)).scalars()}
    events = [
        TrailEvent(e.seq, e.occurred_at, e.actor, e.action, e.object_type, e.result, e.detail)
        for e in (
            await session.execute(
                select(AuditEvent)
                .where(col(AuditEvent.object_ref).in_(sorted(refs)))
                .order_by(col(AuditEvent.seq))
            )
        ).scalars()
    ]
    if tombstone is None and live is None and not events:
        return None
    return DossierTrail(
        dossier_id=dossier_id,
        live=live,
        tombstone=_tombstone_facts(tombstone) if tombstone is not None else None,
        holds=[
            HoldRow(h.dossier_id, h.service_type, h.ground, h.state, h.requested_at, h.ends_at)
            for h in holds
        ],
        events=events,
    )


async def _live_facts(session: AsyncSession, dossier_id: uuid.UUID) -> DossierFacts | None:
    query = (
        live_with_service(select(Dossier, ServiceType, col(Department.code)))
        .join(Department, col(Department.id) == col(Appointment.department_id))
        .where(col(Dossier.id) == dossier_id)
    )
    row = (await session.execute(query)).first()
    if row is None:
        return None
    dossier, service, department = row
    return DossierFacts(
        service_type=service.code,
        department=department,
        state=str(dossier.state),
        outcome="",
        created_at=dossier.created_at,
        deadline=dossier.deadline,
        ended_at=dossier.ended_at,
        exported_at=dossier.exported_at,
        removed_at=None,
        removed_by="",
        policy_version=dossier.policy_version,
        selectielijst=service.selectielijst,
        archive_mode=service.archive_mode,
        export_target="",
        export_reference=dossier.export_reference or "",
        destruction_batch="",
    )


def _tombstone_facts(tombstone: Tombstone) -> DossierFacts:
    exported = tombstone.outcome == TombstoneOutcome.EXPORTED
    return DossierFacts(
        service_type=tombstone.service_type,
        department=tombstone.department,
        state="",
        outcome=str(tombstone.outcome),
        created_at=tombstone.created_at,
        deadline=tombstone.deadline,
        ended_at=tombstone.ended_at,
        exported_at=tombstone.removed_at if exported else None,
        removed_at=tombstone.removed_at,
        removed_by=tombstone.removed_by,
        policy_version=tombstone.policy_version,
        selectielijst=tombstone.selectielijst,
        archive_mode=tombstone.archive_mode,
        export_target=tombstone.export_target or "",
        export_reference=tombstone.export_reference or "",
        destruction_batch=tombstone.destruction_batch or "",
    )
