"""Invitation links: a random token per appointment, stored only as its SHA-256.

The resident's link works until the appointment's end plus a grace period, for that one
appointment only; a guest (interpreter) link works once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from identity.errors import InvitationInvalid
from identity.models import Invitation

__all__ = ["GRACE_AFTER_END", "create_invitation", "redeem_invitation"]

GRACE_AFTER_END = dt.timedelta(hours=2)
_KINDS = ("resident", "guest")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


async def create_invitation(
    session: AsyncSession,
    *,
    appointment_id: uuid.UUID,
    kind: str,
    appointment_ends_at: dt.datetime,
    now: dt.datetime,
) -> str:
    """A new token (256 bits, URL-safe) for the appointment; only its hash is stored."""
    if kind not in _KINDS:
        raise ValueError(f"unknown invitation kind {kind!r}")
    token = secrets.token_urlsafe(32)
    session.add(
        Invitation(
            token_hash=_hash(token),
            appointment_id=appointment_id,
            kind=kind,
            created_at=now,
            expires_at=appointment_ends_at + GRACE_AFTER_END,
        )
    )
    await session.flush()
    return token


async def redeem_invitation(session: AsyncSession, *, token: str, now: dt.datetime) -> Invitation:
    """The invitation behind `token`, marked used if it is a one-time guest link.

    Raises InvitationInvalid, with the same message for unknown, expired and used links, so
    that the page reveals nothing about other appointments.
    """
    invalid = InvitationInvalid("this link is not valid (any more)")
    if not token or len(token) > 100:
        raise invalid
    invitation = await session.get(Invitation, _hash(token))
    if invitation is None or now >= invitation.expires_at:
        raise invalid
    if invitation.kind == "guest":
        if invitation.used_at is not None:
            raise invalid
        invitation.used_at = now
    return invitation
