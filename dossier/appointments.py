"""Booking and cancelling appointments; each appointment has exactly one dossier."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from dossier.errors import DossierNotFound, InvalidInput, InvalidState
from dossier.keys import create_data_key
from dossier.lookup import record_dossier_event
from dossier.models import (
    Appointment,
    Department,
    Dossier,
    DossierState,
    ServiceType,
    Tombstone,
    TombstoneOutcome,
)
from dossier.shredding import destroy_dossier
from dossier.store import DossierStore
from retention.audit import Actor

__all__ = [
    "MAX_RETENTION_DAYS",
    "BookedAppointment",
    "cancel_appointment",
    "create_appointment",
    "ensure_department",
    "ensure_service_type",
]

MAX_RETENTION_DAYS = 56
_CANCELLABLE = (DossierState.SCHEDULED, DossierState.WAITING)


@dataclass(frozen=True, slots=True)
class BookedAppointment:
    appointment: Appointment
    dossier: Dossier


async def ensure_department(session: AsyncSession, *, code: str, name: str) -> Department:
    """The department with `code`, created if it does not exist yet (idempotent)."""
    found = (await session.execute(select(Department).where(col(Department.code) == code))).scalar()
    if found is not None:
        return found
    department = Department(code=code, name=name)
    session.add(department)
    await session.flush()
    return department


async def ensure_service_type(
    session: AsyncSession,
    *,
    code: str,
    label: str,
    level_of_assurance: str = "substantieel",
    retention_days: int = MAX_RETENTION_DAYS,
    archive_mode: str = "export_required",
    selectielijst: str = "",
    needs_bsn: bool = False,
) -> ServiceType:
    """The service type with `code`, created if missing. Retention above 56 days is refused."""
    if not 1 <= retention_days <= MAX_RETENTION_DAYS:
        raise InvalidInput(
            f"retention_days for {code!r} is {retention_days}; it must be 1 to {MAX_RETENTION_DAYS}"
        )
    query = select(ServiceType).where(col(ServiceType.code) == code)
    found = (await session.execute(query)).scalar()
    if found is not None:
        return found
    service = ServiceType(
        code=code,
        label=label,
        level_of_assurance=level_of_assurance,
        retention_days=retention_days,
        archive_mode=archive_mode,
        selectielijst=selectielijst,
        needs_bsn=needs_bsn,
    )
    session.add(service)
    await session.flush()
    return service


_Named = TypeVar("_Named", Department, ServiceType)


async def _by_code(session: AsyncSession, model: type[_Named], code: str) -> _Named:
    found = (await session.execute(select(model).where(col(model.code) == code))).scalar()
    if found is None:
        raise InvalidInput(f"unknown {model.__tablename__.rstrip('s').replace('_', ' ')}: {code!r}")
    return found


async def create_appointment(
    store: DossierStore,
    *,
    actor: Actor,
    department: str,
    service_type: str,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    resident_pseudonym: str | None = None,
) -> BookedAppointment:
    """Book an appointment and create its dossier in SCHEDULED with a fresh data key.

    The deadline is the later of now and the start, plus the service's retention (<= 56 days),
    so a dossier booked weeks ahead cannot expire before its call.
    """
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise InvalidInput("starts_at and ends_at must carry a time zone")
    starts_at, ends_at = starts_at.astimezone(dt.UTC), ends_at.astimezone(dt.UTC)
    if ends_at <= starts_at:
        raise InvalidInput(f"appointment ends ({ends_at.isoformat()}) before it starts")
    async with store.sessions() as session, session.begin():
        now = await store.clock.now(session)
        if ends_at <= now:
            raise InvalidInput(f"appointment ending {ends_at.isoformat()} is over already")
        dept = await _by_code(session, Department, department)
        service = await _by_code(session, ServiceType, service_type)
        appointment = Appointment(
            department_id=dept.id,
            service_type_id=service.id,
            starts_at=starts_at,
            ends_at=ends_at,
            created_at=now,
            created_by=str(actor),
            resident_pseudonym=resident_pseudonym,
        )
        days = min(service.retention_days, MAX_RETENTION_DAYS)
        dossier = Dossier(
            appointment_id=appointment.id,
            state=DossierState.SCHEDULED,
            created_at=now,
            deadline=max(now, starts_at) + dt.timedelta(days=days),
            state_changed_at=now,
            policy_version=service.policy_version,
        )
        session.add(appointment)
        await session.flush()
        session.add(dossier)
        await session.flush()
        dossier.kek_id = await create_data_key(
            session, keyring=store.keyring, dossier_id=dossier.id, now=now
        )
        await record_dossier_event(
            session,
            at=now,
            actor=actor,
            action="dossier.created",
            dossier_id=dossier.id,
            detail={
                "appointment": str(appointment.id),
                "service_type": service.code,
                "department": dept.code,
                "deadline": dossier.deadline.isoformat(),
            },
        )
    return BookedAppointment(appointment=appointment, dossier=dossier)


async def cancel_appointment(
    store: DossierStore, *, actor: Actor, appointment_id: uuid.UUID
) -> Tombstone:
    """Cancel a scheduled appointment and destroy its dossier at once.

    Raises DossierNotFound for an unknown appointment and InvalidState once the call began.
    """
    async with store.sessions() as session, session.begin():
        now = await store.clock.now(session)
        query = select(Dossier).where(col(Dossier.appointment_id) == appointment_id)
        dossier = (await session.execute(query)).scalar()
        if dossier is None:
            gone = select(Tombstone).where(col(Tombstone.appointment_id) == appointment_id)
            tombstone = (await session.execute(gone)).scalar()
            if tombstone is not None:
                return tombstone  # cancelled (or otherwise ended) before: nothing left to do
            raise DossierNotFound(f"no appointment with id {appointment_id}")
        if dossier.state not in (*_CANCELLABLE, DossierState.CANCELLED, DossierState.DESTROYING):
            raise InvalidState(
                f"appointment {appointment_id} cannot be cancelled: its dossier is {dossier.state}"
            )
        if dossier.state in _CANCELLABLE:
            dossier.state, dossier.state_changed_at = DossierState.CANCELLED, now
            await record_dossier_event(
                session,
                at=now,
                actor=actor,
                action="appointment.cancelled",
                dossier_id=dossier.id,
                detail={"appointment": str(appointment_id)},
            )
    return await destroy_dossier(
        store, actor=actor, dossier_id=dossier.id, outcome=TombstoneOutcome.DESTROYED_ON_CANCEL
    )
