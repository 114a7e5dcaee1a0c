"""Holds: keeping a dossier past its deadline for a complaint, objection, Woo request or court
case (DESIGN §2).

A clerk (for their own department, checked by the web layer) or an information manager
requests a hold with a ground, a short reason without personal data and an end date. It takes
effect only when another information manager approves it (four eyes); it ends by itself when its
end date passes (`expire_holds`, a scheduler job), or earlier when an information manager
releases it. Only an `active` hold whose `ends_at` lies in the future stops the sweeper, which
reads the `holds` table with exactly that condition.

Every step is an audit event on the dossier (`hold.requested`, `hold.approved`, ...) whose detail
names the hold, its ground and end date, never the reason text.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Sequence
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from dossier.errors import DossierDestroyed, DossierError, InvalidInput, InvalidState
from dossier.lookup import get_dossier, record_dossier_event
from dossier.models import Appointment, DossierState, ServiceType
from dossier.store import DossierStore
from retention.audit import Actor
from retention.models import Hold

__all__ = [
    "GROUNDS",
    "MAX_REASON",
    "MIN_REASON",
    "OPEN_STATES",
    "HoldDecisionRefused",
    "HoldNotFound",
    "HoldStateConflict",
    "InvalidHold",
    "approve_hold",
    "expire_holds",
    "get_hold",
    "list_holds",
    "reject_hold",
    "release_hold",
    "request_hold",
]

GROUNDS: Final = ("complaint", "objection", "woo", "court", "other")
OPEN_STATES: Final = ("requested", "active")
MIN_REASON, MAX_REASON = 10, 500
_DECIDER = "information_manager"
# Reasons are plain text: newlines are fine, other control characters are not.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
_NINE_DIGITS = re.compile(r"(?<!\d)\d{9}(?!\d)")
_EMAIL = re.compile(r"[^\s@]+@[^\s@]+\.[A-Za-z]{2,}")


class InvalidHold(InvalidInput):
    """A ground, reason, end date or note that is not acceptable (422); `field` names which."""

    code = "invalid_hold"

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class HoldNotFound(DossierError):
    """No hold with that id (404)."""

    code = "hold_not_found"


class HoldStateConflict(InvalidState):
    """An open hold exists already, or the hold is not in a state that allows this (409)."""

    code = "hold_conflict"


class HoldDecisionRefused(DossierError):
    """Only an information manager decides, and never on their own request (four eyes; 403)."""

    code = "hold_decision_refused"


def _looks_like_bsn(digits: str) -> bool:
    # The eleven-test of a BSN: 9*d1 + 8*d2 + ... + 2*d8 - 1*d9 is a multiple of 11.
    total = sum(int(d) * w for d, w in zip(digits, (9, 8, 7, 6, 5, 4, 3, 2, -1), strict=True))
    return total % 11 == 0 and digits != "000000000"


def _checked_reason(reason: str) -> str:
    text = reason.replace("\r\n", "\n").strip()
    if not MIN_REASON <= len(text) <= MAX_REASON:
        raise InvalidHold(
            "reason", f"reason must be {MIN_REASON} to {MAX_REASON} characters, it has {len(text)}"
        )
    if _CONTROL.search(text):
        raise InvalidHold("reason", "reason must be plain text (it contains control characters)")
    if any(_looks_like_bsn(m.group()) for m in _NINE_DIGITS.finditer(text)) or _EMAIL.search(text):
        raise InvalidHold(
            "reason",
            "reason seems to contain personal data (a BSN or an e-mail address); leave it out",
        )
    return text


def _two_years_after(moment: dt.datetime) -> dt.datetime:
    try:
        return moment.replace(year=moment.year + 2)
    except ValueError:  # 29 February
        return moment.replace(year=moment.year + 2, day=28)


def _checked_end(ends_at: dt.datetime, now: dt.datetime) -> dt.datetime:
    if ends_at.tzinfo is None:
        raise InvalidHold("ends_at", "ends_at must carry a time zone")
    ends_at = ends_at.astimezone(dt.UTC)
    if ends_at <= now:
        raise InvalidHold("ends_at", f"ends_at {ends_at:%Y-%m-%d %H:%M} UTC is not in the future")
    if ends_at > _two_years_after(now):
        raise InvalidHold(
            "ends_at",
            f"ends_at {ends_at:%Y-%m-%d} UTC is more than two years ahead; a hold is renewed, "
            "not made endless",
        )
    return ends_at


def _detail(hold: Hold) -> dict[str, str]:
    return {"hold": str(hold.id), "ground": hold.ground, "ends_at": hold.ends_at.isoformat()}


async def _record(
    session: AsyncSession, hold: Hold, *, at: dt.datetime, actor: Actor, action: str
) -> None:
    await record_dossier_event(
        session, at=at, actor=actor, action=action, dossier_id=hold.dossier_id,
        detail=_detail(hold),
    )  # fmt: skip


async def request_hold(
    store: DossierStore,
    *,
    dossier_id: uuid.UUID,
    ground: str,
    reason: str,
    ends_at: dt.datetime,
    actor: Actor,
) -> Hold:
    """Record a request to keep `dossier_id` until `ends_at`; it has no effect until approved.

    Raises InvalidHold (bad ground, reason or end date), DossierNotFound, DossierDestroyed
    (exported, destroyed, or being destroyed) and HoldStateConflict (an open hold exists).
    Whether `actor` may ask for this dossier's department is the caller's check.
    """
    if ground not in GROUNDS:
        raise InvalidHold("ground", f"ground {ground!r} is not one of {', '.join(GROUNDS)}")
    text = _checked_reason(reason)
    async with store.sessions() as session, session.begin():
        now = await store.clock.now(session)
        end = _checked_end(ends_at, now)
        dossier = await get_dossier(session, dossier_id)
        # Serialise requests for one dossier (PostgreSQL; SQLite writers are serial anyway).
        await session.refresh(dossier, with_for_update=True)
        if dossier.state in (DossierState.DESTROYING, DossierState.CANCELLED):
            raise DossierDestroyed(f"dossier {dossier_id} is being destroyed")
        if await _open_hold(session, dossier_id, now) is not None:
            raise HoldStateConflict(f"dossier {dossier_id} already has an open hold")
        appointment = await session.get_one(Appointment, dossier.appointment_id)
        service = await session.get_one(ServiceType, appointment.service_type_id)
        hold = Hold(
            dossier_id=dossier_id,
            department_id=appointment.department_id,
            service_type=service.code,
            ground=ground,
            reason=text,
            ends_at=end,
            state="requested",
            requested_by=str(actor),
            requested_at=now,
        )
        session.add(hold)
        await session.flush()
        await _record(session, hold, at=now, actor=actor, action="hold.requested")
    return hold


async def _open_hold(session: AsyncSession, dossier_id: uuid.UUID, now: dt.datetime) -> Hold | None:
    query = select(Hold).where(
        col(Hold.dossier_id) == dossier_id,
        col(Hold.state).in_(OPEN_STATES),
        col(Hold.ends_at) > now,
    )
    return (await session.execute(query.limit(1))).scalar()


async def _locked_hold(session: AsyncSession, hold_id: uuid.UUID) -> Hold:
    query = select(Hold).where(col(Hold.id) == hold_id).with_for_update()
    hold = (await session.execute(query)).scalar()
    if hold is None:
        raise HoldNotFound(f"no hold with id {hold_id}")
    return hold


def _check_decider(hold: Hold, actor: Actor) -> None:
    if actor.role != _DECIDER:
        raise HoldDecisionRefused(f"only an information manager decides, not a {actor.role}")
    if str(actor) == hold.requested_by:
        raise HoldDecisionRefused(
            f"hold {hold.id} was requested by you; another information manager must decide"
        )


async def _decide(
    store: DossierStore, *, hold_id: uuid.UUID, actor: Actor, note: str, approve: bool
) -> Hold:
    note = note.strip()
    if len(note) > MAX_REASON or _CONTROL.search(note):
        raise InvalidHold("note", f"note must be plain text of at most {MAX_REASON} characters")
    async with store.sessions() as session, session.begin():
        now = await store.clock.now(session)
        hold = await _locked_hold(session, hold_id)
        _check_decider(hold, actor)
        if hold.state != "requested":
            raise HoldStateConflict(f"hold {hold_id} is {hold.state}, not requested")
        if approve:
            if hold.ends_at <= now:
                raise HoldStateConflict(f"hold {hold_id} ended on {hold.ends_at:%Y-%m-%d}")
            dossier = await get_dossier(session, hold.dossier_id)
            if dossier.state in (DossierState.DESTROYING, DossierState.CANCELLED):
                raise DossierDestroyed(f"dossier {hold.dossier_id} is being destroyed")
        hold.state = "active" if approve else "rejected"
        hold.decided_by, hold.decided_at, hold.decision_note = str(actor), now, note or None
        action = "hold.approved" if approve else "hold.rejected"
        await _record(session, hold, at=now, actor=actor, action=action)
    return hold


async def approve_hold(
    store: DossierStore, *, hold_id: uuid.UUID, actor: Actor, note: str = ""
) -> Hold:
    """Put a requested hold into effect: the sweeper leaves the dossier alone until `ends_at`.

    Raises HoldNotFound, HoldDecisionRefused (not an information manager, or the requester),
    HoldStateConflict (not requested, or its end date passed) and DossierDestroyed.
    """
    return await _decide(store, hold_id=hold_id, actor=actor, note=note, approve=True)


async def reject_hold(
    store: DossierStore, *, hold_id: uuid.UUID, actor: Actor, note: str = ""
) -> Hold:
    """Refuse a requested hold. Raises like `approve_hold`."""
    return await _decide(store, hold_id=hold_id, actor=actor, note=note, approve=False)


async def release_hold(store: DossierStore, *, hold_id: uuid.UUID, actor: Actor) -> Hold:
    """End an active hold before its end date (the dossier's own deadline applies again).

    Raises HoldNotFound, HoldDecisionRefused (not an information manager) and
    HoldStateConflict (the hold is not active).
    """
    async with store.sessions() as session, session.begin():
        now = await store.clock.now(session)
        hold = await _locked_hold(session, hold_id)
        if actor.role != _DECIDER:
            raise HoldDecisionRefused(f"only an information manager releases, not a {actor.role}")
        if hold.state != "active":
            raise HoldStateConflict(f"hold {hold_id} is {hold.state}, not active")
        hold.state, hold.ended_by, hold.ended_at = "released", str(actor), now
        await _record(session, hold, at=now, actor=actor, action="hold.released")
    return hold


async def expire_holds(store: DossierStore, *, now: dt.datetime | None = None) -> list[Hold]:
    """End every open hold whose end date has come (`ends_at <= now`); returns them.

    Active holds stop protecting their dossier; requested ones can no longer be approved. Safe
    to run in several processes at once: each hold is changed under a row lock, once.
    """
    actor = Actor.system("expire-holds")
    expired: list[Hold] = []
    async with store.sessions() as session, session.begin():
        at = now or await store.clock.now(session)
        query = (
            select(Hold)
            .where(col(Hold.state).in_(OPEN_STATES), col(Hold.ends_at) <= at)
            .order_by(col(Hold.ends_at))
            .with_for_update(skip_locked=True)
        )
        for hold in (await session.execute(query)).scalars():
            hold.state, hold.ended_by, hold.ended_at = "expired", str(actor), at
            await _record(session, hold, at=at, actor=actor, action="hold.expired")
            expired.append(hold)
    return expired


async def get_hold(session: AsyncSession, hold_id: uuid.UUID) -> Hold:
    """The hold with that id; raises HoldNotFound."""
    hold = await session.get(Hold, hold_id)
    if hold is None:
        raise HoldNotFound(f"no hold with id {hold_id}")
    return hold


async def list_holds(
    session: AsyncSession,
    *,
    dossier_id: uuid.UUID | None = None,
    states: Sequence[str] | None = None,
) -> list[Hold]:
    """Holds, newest request first; of one dossier and/or in the given states if asked."""
    query = select(Hold).order_by(col(Hold.requested_at).desc())
    if dossier_id is not None:
        query = query.where(col(Hold.dossier_id) == dossier_id)
    if states is not None:
        query = query.where(col(Hold.state).in_(list(states)))
    return list((await session.execute(query)).scalars())
