"""Server-side web sessions: random tokens in `__Host-` cookies, only their hash stored.

A session ends after 15 minutes without a request (idle) and 12 hours after it began
(absolute), whichever comes first; logging in always starts a new session, so a token known
before login is worthless after it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from dossier.db import Clock, read_session
from identity.models import StaffAccount, WebSession
from retention.audit import Actor

__all__ = [
    "ABSOLUTE_TIMEOUT",
    "IDLE_TIMEOUT",
    "SESSION_COOKIE",
    "Principal",
    "create_session",
    "end_session",
    "load_principal",
    "token_hash",
]

SESSION_COOKIE = "__Host-balie"
IDLE_TIMEOUT = dt.timedelta(minutes=15)
TOUCH_EVERY = dt.timedelta(minutes=1)
ABSOLUTE_TIMEOUT = dt.timedelta(hours=12)


def token_hash(token: str) -> str:
    """What the database keeps of a session token."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is behind a request, as far as authorisation needs to know."""

    session_hash: str
    kind: str  # anonymous, staff, resident, guest
    role: str | None
    actor: Actor
    csrf_token: str
    staff_id: uuid.UUID | None = None
    department_id: uuid.UUID | None = None
    appointment_id: uuid.UUID | None = None
    resident_pseudonym: str | None = None
    level_of_assurance: str | None = None
    pending: dict[str, Any] | None = None


async def create_session(
    session: AsyncSession,
    *,
    now: dt.datetime,
    kind: str,
    role: str | None = None,
    staff_id: uuid.UUID | None = None,
    department_id: uuid.UUID | None = None,
    appointment_id: uuid.UUID | None = None,
    resident_pseudonym: str | None = None,
    level_of_assurance: str | None = None,
    pending: dict[str, Any] | None = None,
    replaces: str | None = None,
) -> tuple[str, WebSession]:
    """Start a session and return its token (for the cookie) and row.

    `replaces` names the hash of the session this one takes over (the one used before login);
    it is deleted, so its token no longer works.
    """
    if replaces is not None:
        await session.execute(delete(WebSession).where(col(WebSession.id_hash) == replaces))
    token = secrets.token_urlsafe(32)  # 256 bits
    row = WebSession(
        id_hash=token_hash(token),
        kind=kind,
        role=role,
        staff_id=staff_id,
        department_id=department_id,
        appointment_id=appointment_id,
        resident_pseudonym=resident_pseudonym,
        level_of_assurance=level_of_assurance,
        csrf_token=secrets.token_urlsafe(32),
        pending=json.dumps(pending or {}),
        created_at=now,
        last_seen_at=now,
        expires_at=now + ABSOLUTE_TIMEOUT,
    )
    session.add(row)
    await session.flush()
    return token, row


async def load_principal(
    sessions: async_sessionmaker[AsyncSession], *, clock: Clock, token: str
) -> Principal | None:
    """The principal of a live session, or None.

    Every request comes through here, so it reads without the write lock and writes only
    when it must: an expired session is deleted, and the idle clock restarts at most once
    per TOUCH_EVERY (the idle timeout is thereby up to that much longer, never shorter).
    """
    async with read_session(sessions) as session:
        now = await clock.now(session)
        row = await session.get(WebSession, token_hash(token))
        account = None
        if row is not None and row.kind == "staff" and row.staff_id is not None:
            account = await session.get(StaffAccount, row.staff_id)
    if row is None:
        return None
    expired = now - row.last_seen_at > IDLE_TIMEOUT or now >= row.expires_at
    if row.kind == "staff" and (account is None or account.disabled_at is not None):
        expired = True
    if expired or now - row.last_seen_at >= TOUCH_EVERY:
        async with sessions() as session, session.begin():
            if expired:
                await end_session(session, session_hash=row.id_hash)
            else:
                await session.execute(
                    update(WebSession)
                    .where(col(WebSession.id_hash) == row.id_hash)
                    .values(last_seen_at=now)
                )
    if expired:
        return None
    if account is not None:
        actor = Actor(account.role, account.employee_id)
    elif row.kind in ("resident", "guest") and row.resident_pseudonym is not None:
        actor = Actor(row.kind, row.resident_pseudonym)
    else:
        actor = Actor(row.kind, row.id_hash[:16])  # anonymous, or a guest (interpreter)
    return Principal(
        session_hash=row.id_hash,
        kind=row.kind,
        role=row.role,
        actor=actor,
        csrf_token=row.csrf_token,
        staff_id=row.staff_id,
        department_id=row.department_id,
        appointment_id=row.appointment_id,
        resident_pseudonym=row.resident_pseudonym,
        level_of_assurance=row.level_of_assurance,
        pending=json.loads(row.pending),
    )


async def end_session(session: AsyncSession, *, session_hash: str) -> None:
    """Log out: the session's token stops working at once (idempotent)."""
    await session.execute(delete(WebSession).where(col(WebSession.id_hash) == session_hash))
