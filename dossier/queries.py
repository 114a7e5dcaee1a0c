"""Read-only questions about appointments and dossiers that the web layer asks."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from dossier.lookup import get_dossier
from dossier.models import Appointment, Department, Dossier, ServiceType

__all__ = [
    "LOCAL_TIME",
    "AppointmentSummary",
    "appointment_owner",
    "department_code",
    "dossier_owner",
    "list_appointments",
    "local_day",
]


@dataclass(frozen=True, slots=True)
class AppointmentSummary:
    """An appointment as a clerk's list shows it: no resident data."""

    appointment_id: uuid.UUID
    dossier_id: uuid.UUID
    service_type: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    state: str
    deadline: dt.datetime


# Appointments are made and shown in Dutch local time; "today" is the Dutch day.
LOCAL_TIME = ZoneInfo("Europe/Amsterdam")


def local_day(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of `day` in Dutch local time (23 or 25 hours on clock-change days)."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=LOCAL_TIME)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=LOCAL_TIME)
    return start, end


async def list_appointments(
    session: AsyncSession, *, department_id: uuid.UUID, start: dt.datetime, end: dt.datetime
) -> list[AppointmentSummary]:
    """The department's appointments starting in [start, end), earliest first."""
    query = (
        select(Appointment, Dossier, col(ServiceType.code))
        .join(Dossier, col(Dossier.appointment_id) == col(Appointment.id))
        .join(ServiceType, col(ServiceType.id) == col(Appointment.service_type_id))
        .where(col(Appointment.department_id) == department_id)
        .where(col(Appointment.starts_at) >= start, col(Appointment.starts_at) < end)
        .order_by(col(Appointment.starts_at))
    )
    return [
        AppointmentSummary(
            appointment_id=appointment.id,
            dossier_id=dossier.id,
            service_type=code,
            starts_at=appointment.starts_at,
            ends_at=appointment.ends_at,
            state=dossier.state,
            deadline=dossier.deadline,
        )
        for appointment, dossier, code in (await session.execute(query)).all()
    ]


async def dossier_owner(
    session: AsyncSession, dossier_id: uuid.UUID
) -> tuple[uuid.UUID, uuid.UUID]:
    """(department id, appointment id) of a dossier; DossierNotFound / DossierDestroyed."""
    dossier = await get_dossier(session, dossier_id)
    appointment = await session.get(Appointment, dossier.appointment_id)
    assert appointment is not None  # foreign key
    return appointment.department_id, appointment.id


async def appointment_owner(
    session: AsyncSession, appointment_id: uuid.UUID
) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(department id, dossier id) of an appointment, or None if there is none."""
    query = (
        select(col(Appointment.department_id), col(Dossier.id))
        .join(Dossier, col(Dossier.appointment_id) == col(Appointment.id))
        .where(col(Appointment.id) == appointment_id)
    )
    row = (await session.execute(query)).first()
    return None if row is None else (row[0], row[1])


async def department_code(session: AsyncSession, department_id: uuid.UUID) -> str:
    """The code of a department that exists (foreign keys guarantee it for staff)."""
    department = await session.get(Department, department_id)
    assert department is not None
    return department.code
