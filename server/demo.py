"""Sample data for `make demo`: one department, the policy's service types, appointments today."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlmodel import col

from dossier.appointments import create_appointment, ensure_department
from dossier.models import Appointment, Dossier, ServiceType
from dossier.store import DossierStore
from identity.accounts import add_local_account
from identity.invitations import create_invitation
from identity.models import StaffAccount
from retention.audit import Actor
from retention.policy import Policy
from retention.policy_versions import sync_service_types

__all__ = ["DEMO_CLERK", "DEMO_STAFF", "seed_demo"]

DEMO_CLERK = "medewerker"
# (user name, display name, employee id, role, department): a clerk at the counter, and the
# information manager and privacy officer who see the retention pages (/beheer).
DEMO_STAFF = (
    (DEMO_CLERK, "Demo Medewerker", "demo-0001", "clerk", "burgerzaken"),
    ("informatiebeheer", "Demo Informatiebeheerder", "demo-0002", "information_manager", None),
    ("privacy", "Demo Functionaris Gegevensbescherming", "demo-0003", "privacy_officer", None),
)
# One appointment each: a birth registration (DigiD substantieel, the BSN sealed in), an
# extract with a fee to pay, and a plain question (DigiD basis).
DEMO_APPOINTMENTS = ("geboorteaangifte", "uittreksel_brp", "informatie")


async def seed_demo(
    store: DossierStore,
    *,
    actor: Actor,
    public_origin: str,
    secret_key: bytes,
    policy: Policy,
) -> list[str]:
    """Create the demo's reference data and, if none exist, three appointments from now on.

    Returns printable lines: per live appointment a fresh resident invitation link, and the
    demo clerk's credentials when the account is made. Safe to run at every demo start.
    """
    async with store.sessions() as session, session.begin():
        await ensure_department(session, code="burgerzaken", name="Burgerzaken")
        # The same sync as when a policy version comes into force: one way to service types.
        await sync_service_types(session, policy)
        now = await store.clock.now(session)
        have_any = (await session.execute(select(col(Dossier.id)).limit(1))).first() is not None
    if not have_any:
        start = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=15)
        for offset, code in enumerate(c for c in DEMO_APPOINTMENTS if c in policy.services):
            starts_at = start + dt.timedelta(minutes=30 * offset)
            await create_appointment(
                store,
                actor=actor,
                department="burgerzaken",
                service_type=code,
                starts_at=starts_at,
                ends_at=starts_at + dt.timedelta(minutes=20),
            )
    lines: list[str] = []
    async with store.sessions() as session, session.begin():
        for username, name, employee_id, role, department in DEMO_STAFF:
            exists = select(col(StaffAccount.id)).where(col(StaffAccount.username) == username)
            if (await session.execute(exists)).first() is not None:
                lines.append(f"{role} login: user {username} (new password: balie user reset)")
                continue
            creds = await add_local_account(
                session,
                secret_key=secret_key,
                username=username,
                display_name=name,
                employee_id=employee_id,
                role=role,
                department=department,
                now=now,
            )
            lines += [
                f"{role} login: user {username}, password {creds.password}",
                f"{role} TOTP (add to an authenticator app): {creds.totp_uri}",
            ]
    async with store.sessions() as session, session.begin():
        query = (
            select(
                col(Appointment.starts_at),
                col(Appointment.ends_at),
                col(ServiceType.code),
                col(Dossier.id),
                col(Appointment.id),
            )
            .join(Dossier, col(Dossier.appointment_id) == col(Appointment.id))
            .join(ServiceType, col(ServiceType.id) == col(Appointment.service_type_id))
            .order_by(col(Appointment.starts_at))
        )
        for starts, ends, code, dossier_id, appointment_id in (await session.execute(query)).all():
            token = await create_invitation(
                session,
                appointment_id=appointment_id,
                kind="resident",
                appointment_ends_at=ends,
                now=now,
            )
            lines.append(
                f"{starts.isoformat(timespec='minutes')}  {code:18} dossier {dossier_id}\n"
                f"      resident link: {public_origin}/i/{token}"
            )
    return lines
