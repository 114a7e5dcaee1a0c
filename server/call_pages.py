"""The pages of the call: the resident's, the interpreter's and the clerk's.

    GET  /afspraak/{appointment_id}  resident (after DigiD): devices -> waiting room -> call
    GET  /tolk/{appointment_id}      interpreter (after the one-time link): the same, no content
    GET  /balie/inloggen             staff sign-in form (local account: password + TOTP)
    POST /balie/inloggen
    POST /balie/uitloggen
    GET  /balie                      the clerk's appointments of today, who is waiting
    GET  /balie/gesprek/{dossier_id} the clerk's call view: admit, deny, end, interpreter link

The pages are HTML with data attributes; web/static/js/*.js does the rest over the call's
WebSocket. A page only shows what its reader may see: chat history for the resident and the
clerk (an audited read), nothing of the dossier for the interpreter.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import uuid

from aiohttp import web
from pydantic import ValidationError

from dossier.chat import list_chat_messages
from dossier.documents import list_documents
from dossier.errors import DossierError
from dossier.models import Appointment, Dossier, DossierState, ServiceType
from dossier.payments import list_payments
from dossier.queries import (
    LOCAL_TIME,
    appointment_owner,
    dossier_owner,
    list_appointments,
    local_day,
)
from identity.authz import Action, Target
from identity.sessions import Principal, end_session
from retention.notices import open_department_warnings
from server.appkeys import CLOCK, DOSSIER_STORE, POLICY, SETTINGS
from server.document_routes import document_json
from server.oversight import OVERSIGHT_ROLES
from server.pages import language, message_page, page
from server.payment_routes import payment_json
from server.policy_routes import keep_section
from server.requests import refused
from server.security import principal_of, session_cookie
from server.staff_api import LoginIn, sign_in_local
from server.texts import script_texts, texts

__all__ = ["add_routes"]

_OVER = (DossierState.ENDED, DossierState.CANCELLED, DossierState.DESTROYING)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/afspraak/{appointment_id}", resident_page)
    router.add_get("/tolk/{appointment_id}", guest_page)
    router.add_get("/balie/inloggen", login_form)
    router.add_post("/balie/inloggen", login_submit)
    router.add_post("/balie/uitloggen", logout_submit)
    router.add_get("/balie", console_page)
    router.add_get("/balie/gesprek/{dossier_id}", clerk_call_page)


def euros(cents: int) -> str:
    """An amount as Dutch people write it: € 15,00."""
    return f"€ {cents // 100},{cents % 100:02d}"


def _id(request: web.Request, name: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        return None


def _local(moment: dt.datetime, pattern: str = "%d-%m-%Y om %H:%M") -> str:
    return moment.astimezone(LOCAL_TIME).strftime(pattern)


async def _call_page(
    request: web.Request,
    principal: Principal,
    *,
    role: str,
    dossier_id: uuid.UUID,
    appointment: Appointment,
    title: str,
    with_history: bool,
) -> web.Response:
    """The call page for `role`, or a message when the call is over."""
    store = request.app[DOSSIER_STORE]
    async with store.sessions() as session:
        dossier = await session.get(Dossier, dossier_id)
        service = await session.get(ServiceType, appointment.service_type_id)
    assert dossier is not None  # the caller found its owner
    assert service is not None  # foreign key
    if dossier.state in _OVER:
        return message_page(
            request, 410, "Het gesprek is afgelopen",
            "Dit gesprek is afgelopen. Heeft u nog een vraag? Neem dan contact op met de gemeente.",
            "This conversation has ended.",
        )  # fmt: skip
    history: list[dict[str, object]] = []
    documents: list[dict[str, object]] = []
    payments: list[dict[str, object]] = []
    if with_history:
        messages = await list_chat_messages(store, actor=principal.actor, dossier_id=dossier_id)
        history = [
            {"from": m.sender_role, "text": m.text, "sent_at": m.sent_at.isoformat()}
            for m in messages
        ]
        infos = await list_documents(store, actor=principal.actor, dossier_id=dossier_id)
        documents = [document_json(info) for info in infos]
        paid = await list_payments(store, actor=principal.actor, dossier_id=dossier_id)
        payments = [payment_json(info) for info in paid]
    policy = request.app[POLICY].policy
    fees = []
    if role == "clerk" and service.code in policy.services:
        fees = [
            {"code": fee.code, "description": fee.description, "amount": euros(fee.amount_cents)}
            for fee in policy.rule(service.code).fees
        ]
    settings = request.app[SETTINGS]
    config = {
        "role": role,
        "dossier": str(dossier_id),
        "appointment": str(appointment.id),
        "csrf": principal.csrf_token,
        # STUN only: TURN credentials come over the WebSocket, to admitted participants.
        "stun": list(settings.stun_urls),
        "history": history,
        "documents": documents,
        "payments": payments,
        "max_document_bytes": settings.document_max_bytes,
        "texts": script_texts(language(request)),
    }
    return page(
        request,
        "call/call.html",
        title=title,
        role=role,
        service=service.label,
        starts_iso=appointment.starts_at.isoformat(),
        starts_text=_local(appointment.starts_at),
        # In a data attribute: escaped like any attribute, so no text can leave it.
        config=json.dumps(config, ensure_ascii=False),
        dossier_id=str(dossier_id),
        fees=fees,
        # What is kept, why and until when (issue 7): the resident's own dossier only.
        keep=await keep_section(request.app, language(request), dossier=dossier, service=service)
        if role == "resident"
        else None,
    )


async def resident_page(request: web.Request) -> web.Response:
    """GET /afspraak/{id}: the resident's appointment, device check, waiting room and call."""
    principal = principal_of(request)
    appointment_id = _id(request, "appointment_id")
    if (
        principal is None
        or principal.kind != "resident"
        or principal.appointment_id != appointment_id
    ):
        return message_page(
            request, 403, "Geen toegang",
            "Open de link uit uw uitnodiging om in te loggen voor uw afspraak.",
            "Open the link from your invitation to sign in.",
        )  # fmt: skip
    return await _own_appointment_page(request, principal, role="resident")


async def guest_page(request: web.Request) -> web.Response:
    """GET /tolk/{id}: the interpreter's call page (video and chat only)."""
    principal = principal_of(request)
    appointment_id = _id(request, "appointment_id")
    if principal is None or principal.kind != "guest" or principal.appointment_id != appointment_id:
        return message_page(request, 403, "Geen toegang", "Open de tolklink die u kreeg.")
    return await _own_appointment_page(request, principal, role="guest")


async def _own_appointment_page(
    request: web.Request, principal: Principal, *, role: str
) -> web.Response:
    assert principal.appointment_id is not None
    store = request.app[DOSSIER_STORE]
    async with store.sessions() as session:
        appointment = await session.get(Appointment, principal.appointment_id)
        owner = await appointment_owner(session, principal.appointment_id)
    if appointment is None or owner is None:
        return message_page(request, 410, "Afspraak vervallen", "Deze afspraak bestaat niet meer.")
    t = texts(language(request))
    return await _call_page(
        request,
        principal,
        role=role,
        dossier_id=owner[1],
        appointment=appointment,
        title=t["appointment.title"] if role == "resident" else t["guest.title"],
        with_history=role == "resident",
    )


async def login_form(request: web.Request) -> web.Response:
    """GET /balie/inloggen: the sign-in form for staff with a local account."""
    principal = principal_of(request)
    if principal is not None and principal.kind == "staff":
        raise web.HTTPSeeOther("/balie")
    return _login_page(request, status=200, error=None, username="")


def _login_page(
    request: web.Request, *, status: int, error: str | None, username: str
) -> web.Response:
    t = texts(language(request))
    return page(
        request,
        "staff/login.html",
        status=status,
        title=t["login.title"],
        error=error,
        username=username,
        csrf=principal.csrf_token if (principal := principal_of(request)) else "",
        oidc=bool(request.app[SETTINGS].oidc_issuer),
    )


async def login_submit(request: web.Request) -> web.StreamResponse:
    """POST /balie/inloggen (form): sign in, then to today's appointments."""
    form = await request.post()
    username = str(form.get("username", ""))[:128]
    t = texts(language(request))
    try:
        body = LoginIn(username=username, password=str(form.get("password", "")),
                       code=str(form.get("code", "")).strip())  # fmt: skip
    except ValidationError:
        return _login_page(request, status=422, error=t["login.failed"], username=username)
    result = await sign_in_local(request, body)
    if isinstance(result, web.Response):
        key = "login.limited" if result.status == 429 else "login.failed"
        refusal = _login_page(request, status=result.status, error=t[key], username=username)
        if "Retry-After" in result.headers:
            refusal.headers["Retry-After"] = result.headers["Retry-After"]
        return refusal
    response = web.HTTPSeeOther("/balie")
    session_cookie(response, result.token)
    raise response


async def logout_submit(request: web.Request) -> web.StreamResponse:
    """POST /balie/uitloggen (form with the CSRF token): end the session at once."""
    principal = principal_of(request)
    if principal is not None:
        store = request.app[DOSSIER_STORE]
        async with store.sessions() as session, session.begin():
            await end_session(session, session_hash=principal.session_hash)
    response = web.HTTPSeeOther("/balie/inloggen")
    session_cookie(response, None)
    raise response


async def _staff_or_login(request: web.Request) -> Principal:
    """The staff member behind the request; anyone else goes to the sign-in form."""
    principal = principal_of(request)
    if principal is None or principal.kind != "staff":
        raise web.HTTPSeeOther("/balie/inloggen")
    return principal


async def console_page(request: web.Request) -> web.Response:
    """GET /balie: today's appointments of the clerk's department, with their state."""
    principal = await _staff_or_login(request)
    if principal.role in OVERSIGHT_ROLES:  # they have no appointments; their pages are here
        raise web.HTTPSeeOther("/beheer")
    department = principal.department_id
    if await refused(request, Action.LIST_APPOINTMENTS, Target(department), "appointments"):
        return message_page(
            request, 403, "Geen toegang",
            "Alleen medewerkers van een afdeling zien hier afspraken.",
            "Only staff of a department see appointments here.",
        )  # fmt: skip
    assert department is not None
    store = request.app[DOSSIER_STORE]
    async with store.sessions() as session:
        now = await request.app[CLOCK].now(session)
        start, end = local_day(now.astimezone(LOCAL_TIME).date())
        items = await list_appointments(session, department_id=department, start=start, end=end)
        warnings = await open_department_warnings(session, department_id=department)
    t = texts(language(request))
    rows = [
        {
            "dossier_id": str(item.dossier_id),
            "time": _local(item.starts_at, "%H:%M"),
            "starts_iso": item.starts_at.isoformat(),
            "service": item.service_type,
            "state": item.state,
            "state_text": t[f"state.{item.state}"],
            "open": item.state not in _OVER,
            "exportable": item.state == DossierState.ENDED,
        }
        for item in items
    ]
    return page(
        request,
        "staff/console.html",
        title=t["staff.title"],
        rows=rows,
        csrf=principal.csrf_token,
        states=json.dumps({s.value: t[f"state.{s.value}"] for s in DossierState}),
        warnings=[
            {
                "dossier_id": str(w.dossier_id),
                "kind": w.kind,
                "service": w.service_label,
                "deadline": _local(w.deadline),
                "deadline_iso": w.deadline.isoformat(),
            }
            for w in warnings
        ],
    )


async def clerk_call_page(request: web.Request) -> web.Response:
    """GET /balie/gesprek/{dossier_id}: the clerk's view of one call."""
    principal = await _staff_or_login(request)
    dossier_id = _id(request, "dossier_id")
    store = request.app[DOSSIER_STORE]
    owner: tuple[uuid.UUID | None, uuid.UUID | None] = (None, None)
    if dossier_id is not None:
        async with store.sessions() as session:
            # A dossier that is gone is refused below like any that is not theirs.
            with contextlib.suppress(DossierError):
                owner = await dossier_owner(session, dossier_id)
    ref = str(dossier_id)
    if dossier_id is None or await refused(request, Action.READ_CONTENT, Target(*owner), ref):
        return message_page(
            request, 403, "Geen toegang",
            "Dit gesprek hoort niet bij uw afdeling, of bestaat niet.",
            "This conversation is not your department's, or does not exist.",
        )  # fmt: skip
    async with store.sessions() as session:
        appointment = await session.get(Appointment, owner[1])
    assert appointment is not None
    return await _call_page(
        request,
        principal,
        role="clerk",
        dossier_id=dossier_id,
        appointment=appointment,
        title=texts(language(request))["staff.call.title"],
        with_history=True,
    )
