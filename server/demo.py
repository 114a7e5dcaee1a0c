"""Sample data for `make demo`: one department, three service types, appointments today."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlmodel import col

from dossier.appointments import create_appointment, ensure_department, ensure_service_type
from dossier.models import Appointment, Dossier, ServiceType
from dossier.store import DossierStore
from retention.audit import Actor

__all__ = ["seed_demo"]

SERVICES = (
    # code, label, level of assurance, archive mode, selectielijst
    ("geboorteaangifte", "Geboorteaangifte", "substantieel", "export_required", "7"),
    ("verhuizing", "Verhuizing doorgeven", "midden", "export_optional", "7"),
    ("informatie", "Vraag aan de gemeente", "basis", "none", ""),
)


async def seed_demo(store: DossierStore, *, actor: Actor) -> list[str]:
    """Create the demo's reference data and, if none exist, three appointments from now on.

    Returns one printable line per live appointment. Safe to run at every demo start.
    """
    async with store.sessions() as session, session.begin():
        await ensure_department(session, code="burgerzaken", name="Burgerzaken")
        for code, label, loa, archive, selectielijst in SERVICES:
            await ensure_service_type(
                session,
                code=code,
                label=label,
                level_of_assurance=loa,
                archive_mode=archive,
                selectielijst=selectielijst,
            )
        now = await store.clock.now(session)
        have_any = (await session.execute(select(col(Dossier.id)).limit(1))).first() is not None
    if not have_any:
        start = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=15)
        for offset, (code, *_rest) in enumerate(SERVICES):
            starts_at = start + dt.timedelta(minutes=30 * offset)
            await create_appointment(
                store,
                actor=actor,
                department="burgerzaken",
                service_type=code,
                starts_at=starts_at,
                ends_at=starts_at + dt.timedelta(minutes=20),
            )
    async with store.sessions() as session:
        query = (
            select(
                col(Appointment.starts_at),
                col(ServiceType.code),
                col(Dossier.id),
                col(Dossier.state),
            )
            .join(Dossier, col(Dossier.appointment_id) == col(Appointment.id))
            .join(ServiceType, col(ServiceType.id) == col(Appointment.service_type_id))
            .order_by(col(Appointment.starts_at))
        )
        rows = (await session.execute(query)).all()
    return [
        f"{starts.isoformat(timespec='minutes')}  {code:18} dossier {dossier_id} ({state})"
        for starts, code, dossier_id, state in rows
    ]
