"""Staff HTTP API: sign in with a local account, and appointments of one's own department.

Handlers parse, ask `identity.authz`, call one service and serialise; denials are audited.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from dossier.appointments import cancel_appointment, create_appointment
from dossier.chat import list_chat_messages
from dossier.documents import list_documents
from dossier.models import Appointment
from dossier.queries import (
    LOCAL_TIME,
    appointment_owner,
    department_code,
    dossier_owner,
    list_appointments,
    local_day,
)
from identity.accounts import authenticate_local
from identity.authz import Action, Target
from identity.errors import Forbidden, LoginFailed, NotAuthenticated
from identity.invitations import create_invitation
from identity.models import StaffAccount
from identity.pseudonym import bsn_pseudonym
from identity.sessions import Principal, create_session, end_session
from retention.audit import Actor
from server.appkeys import CLOCK, DOSSIER_STORE, LOGIN_LIMITER, SETTINGS
from server.middlewares import error_response
from server.requests import anonymous_actor, parse_json, refused
from server.security import principal_of, session_cookie

__all__ = ["LoginIn", "SignedIn", "add_routes", "sign_in_local"]


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=256)
    code: str = Field(min_length=6, max_length=8)


class BookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service_type: str = Field(min_length=1, max_length=64)
    starts_at: dt.datetime
    minutes: int = Field(ge=5, le=480)
    bsn: str | None = Field(default=None, min_length=9, max_length=9)


async def _allow(request: web.Request, action: Action, target: Target, ref: str) -> Principal:
    """The principal if `action` on `target` is allowed; otherwise audit and refuse."""
    reason = await refused(request, action, target, ref)
    principal = principal_of(request)
    if reason is None:
        assert principal is not None
        return principal
    if principal is None:
        raise NotAuthenticated("sign in first")
    raise Forbidden(f"not allowed: {reason}")


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A new staff session: the account, the cookie value and the page's CSRF token."""

    account: StaffAccount
    token: str
    csrf_token: str


async def sign_in_local(request: web.Request, body: LoginIn) -> SignedIn | web.Response:
    """Check a local account's password and TOTP code and start a staff session.

    Returns the new session, or the error response to give: 429 when this address tried too
    often, 401 for a wrong name, password or code. Either way the attempt is audited.
    """
    limited = request.app[LOGIN_LIMITER].refuse(f"login:{request.remote}")
    if limited is not None:
        return limited
    store = request.app[DOSSIER_STORE]
    secret = request.app[SETTINGS].secret_key.get_secret_value().encode()
    previous = principal_of(request)
    async with store.sessions() as session, session.begin():
        now = await request.app[CLOCK].now(session)
        try:
            account = await authenticate_local(
                session,
                secret_key=secret,
                username=body.username,
                password=body.password,
                totp_code=body.code,
                now=now,
            )
        except LoginFailed:
            failed = True
        else:
            failed = False
            token, row = await create_session(
                session,
                now=now,
                kind="staff",
                role=account.role,
                staff_id=account.id,
                department_id=account.department_id,
                replaces=previous.session_hash if previous else None,
            )
    actor = anonymous_actor(request) if failed else Actor(account.role, account.employee_id)
    await store.audit.append(
        at=now,
        actor=actor,
        action="staff.login",
        object_type="session",
        object_ref="local",
        result="refused" if failed else "ok",
    )
    if failed:
        return error_response(401, "login_failed", "wrong user name, password or code")
    return SignedIn(account, token, row.csrf_token)


async def login(request: web.Request) -> web.Response:
    """POST /api/staff/login {username, password, code} -> a new staff session."""
    body = await parse_json(request, LoginIn)
    result = await sign_in_local(request, body)
    if isinstance(result, web.Response):
        return result
    response = web.json_response(
        {
            "role": result.account.role,
            "display_name": result.account.display_name,
            "csrf_token": result.csrf_token,
        }
    )
    session_cookie(response, result.token)
    return response


async def logout(request: web.Request) -> web.Response:
    """POST /api/staff/logout: the session ends at once."""
    principal = principal_of(request)
    if principal is not None:
        store = request.app[DOSSIER_STORE]
        async with store.sessions() as session, session.begin():
            await end_session(session, session_hash=principal.session_hash)
    response = web.json_response({"status": "signed out"})
    session_cookie(response, None)
    return response


def _summary(item: Any) -> dict[str, Any]:
    return {
        "appointment_id": str(item.appointment_id),
        "dossier_id": str(item.dossier_id),
        "service_type": item.service_type,
        "starts_at": item.starts_at.isoformat(),
        "ends_at": item.ends_at.isoformat(),
        "state": item.state,
        "deadline": item.deadline.isoformat(),
    }


async def appointments_list(request: web.Request) -> web.Response:
    """GET /api/appointments?date=YYYY-MM-DD: the clerk's department's appointments that day."""
    principal = principal_of(request)
    department = principal.department_id if principal else None
    principal = await _allow(request, Action.LIST_APPOINTMENTS, Target(department), "appointments")
    assert principal.department_id is not None
    try:
        day = (
            dt.date.fromisoformat(request.query.get("date", ""))
            if "date" in request.query
            else None
        )
    except ValueError:
        raise web.HTTPUnprocessableEntity(text="date must be YYYY-MM-DD") from None
    store = request.app[DOSSIER_STORE]
    async with store.sessions() as session:
        now = await request.app[CLOCK].now(session)
        start, end = local_day(day or now.astimezone(LOCAL_TIME).date())
        items = await list_appointments(
            session, department_id=principal.department_id, start=start, end=end
        )
    return web.json_response({"appointments": [_summary(i) for i in items]})


async def appointments_book(request: web.Request) -> web.Response:
    """POST /api/appointments: book in the clerk's own department; returns the invitation link."""
    principal = principal_of(request)
    department = principal.department_id if principal else None
    principal = await _allow(request, Action.BOOK_APPOINTMENT, Target(department), "appointments")
    body = await parse_json(request, BookIn)
    settings = request.app[SETTINGS]
    store = request.app[DOSSIER_STORE]
    assert principal.department_id is not None
    async with store.sessions() as session:
        code = await department_code(session, principal.department_id)
    pseudonym = (
        bsn_pseudonym(settings.pseudonym_key.get_secret_value().encode(), body.bsn)
        if body.bsn
        else None
    )
    booked = await create_appointment(
        store,
        actor=principal.actor,
        department=code,
        service_type=body.service_type,
        starts_at=body.starts_at,
        ends_at=body.starts_at + dt.timedelta(minutes=body.minutes),
        resident_pseudonym=pseudonym,
    )
    async with store.sessions() as session, session.begin():
        token = await create_invitation(
            session,
            appointment_id=booked.appointment.id,
            kind="resident",
            appointment_ends_at=booked.appointment.ends_at,
            now=await request.app[CLOCK].now(session),
        )
    return web.json_response(
        {
            "appointment_id": str(booked.appointment.id),
            "dossier_id": str(booked.dossier.id),
            "deadline": booked.dossier.deadline.isoformat(),
            "invitation_url": f"{settings.public_origin}/i/{token}",
        },
        status=201,
    )


def _uuid(request: web.Request, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise web.HTTPNotFound(text=f"{name} is not an id") from None


async def guest_link(request: web.Request) -> web.Response:
    """POST /api/appointments/{id}/guest-link: a one-time link for an interpreter."""
    appointment_id = _uuid(request, "appointment_id")
    store = request.app[DOSSIER_STORE]
    async with store.sessions() as session:
        owner = await appointment_owner(session, appointment_id)
        appointment = await session.get(Appointment, appointment_id)
    target = Target(owner[0] if owner else None, appointment_id)
    principal = await _allow(request, Action.INVITE_GUEST, target, str(appointment_id))
    assert appointment is not None  # a clerk of its department was allowed: it exists
    async with store.sessions() as session, session.begin():
        now = await request.app[CLOCK].now(session)
        token = await create_invitation(
            session,
            appointment_id=appointment_id,
            kind="guest",
            appointment_ends_at=appointment.ends_at,
            now=now,
        )
    await store.audit.append(
        at=now, actor=principal.actor, action="call.guest_invited", object_type="appointment",
        object_ref=str(appointment_id),
    )  # fmt: skip
    origin = request.app[SETTINGS].public_origin
    return web.json_response({"guest_url": f"{origin}/g/{token}"}, status=201)


async def appointments_cancel(request: web.Request) -> web.Response:
    """DELETE /api/appointments/{id}: cancel; the dossier is destroyed at once."""
    appointment_id = _uuid(request, "appointment_id")
    store = request.app[DOSSIER_STORE]
    async with store.sessions() as session:
        owner = await appointment_owner(session, appointment_id)
    target = Target(owner[0] if owner else None, appointment_id)
    principal = await _allow(request, Action.CANCEL_APPOINTMENT, target, str(appointment_id))
    tombstone = await cancel_appointment(
        store, actor=principal.actor, appointment_id=appointment_id
    )
    return web.json_response(
        {"dossier_id": str(tombstone.dossier_id), "outcome": tombstone.outcome}
    )


async def dossier_content(request: web.Request) -> web.Response:
    """GET /api/dossiers/{id}: chat and documents, for the clerk of the department and the
    resident of the appointment only."""
    dossier_id = _uuid(request, "dossier_id")
    store = request.app[DOSSIER_STORE]
    if principal_of(request) is None:
        await _allow(request, Action.READ_CONTENT, Target(), str(dossier_id))  # audits, raises
    async with store.sessions() as session:
        # Unknown (404) and destroyed (410) dossiers answer as such to anyone signed in:
        # ids are random, so this reveals nothing that could be guessed.
        department_id, appointment_id = await dossier_owner(session, dossier_id)
    target = Target(department_id, appointment_id)
    principal = await _allow(request, Action.READ_CONTENT, target, str(dossier_id))
    chat = await list_chat_messages(store, actor=principal.actor, dossier_id=dossier_id)
    documents = await list_documents(store, actor=principal.actor, dossier_id=dossier_id)
    return web.json_response(
        {
            "chat": [
                {"sender": m.sender_role, "sent_at": m.sent_at.isoformat(), "text": m.text}
                for m in chat
            ],
            "documents": [
                {
                    "id": str(d.document_id),
                    "name": d.name,
                    "media_type": d.media_type,
                    "size": d.size,
                }
                for d in documents
            ],
        }
    )


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/api/staff/login", login)
    router.add_post("/api/staff/logout", logout)
    router.add_get("/api/appointments", appointments_list)
    router.add_post("/api/appointments", appointments_book)
    router.add_delete("/api/appointments/{appointment_id}", appointments_cancel)
    router.add_post("/api/appointments/{appointment_id}/guest-link", guest_link)
    router.add_get("/api/dossiers/{dossier_id}", dossier_content)
