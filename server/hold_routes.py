"""Holds: a clerk or information manager asks to keep a dossier past its deadline; an
information manager decides. And the retention notices: warnings and escalations.

    GET  /balie/bewaring/{dossier_id}             the request form (clerk: own department)
    POST /balie/bewaring/{dossier_id}
    GET  /beheer/bewaring                         every hold by state (information manager,
                                                  privacy officer); forms for the former only
    POST /beheer/bewaring/{hold_id}/goedkeuren    approve (another information manager)
    POST /beheer/bewaring/{hold_id}/afwijzen      reject
    POST /beheer/bewaring/{hold_id}/beeindigen    release an active hold early
    GET  /beheer/meldingen                        escalations and warnings
    POST /beheer/meldingen/{notice_id}/gezien     acknowledge (information manager)

The scheduler runs `notices_job` (issue notices, then e-mail them when SMTP is configured) and
`expire_holds_job`. Pages show references, dates, states and the reason a requester typed
(asked without personal data); never dossier content.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any, Final

from aiohttp import web
from sqlalchemy import select
from sqlmodel import col

from dossier.errors import DossierDestroyed, DossierError, DossierNotFound, InvalidState
from dossier.models import Appointment, Department, Dossier, ServiceType
from dossier.queries import LOCAL_TIME, dossier_owner
from identity.authz import Action, Target
from identity.sessions import Principal
from retention.holds import (
    GROUNDS,
    MAX_REASON,
    HoldDecisionRefused,
    HoldNotFound,
    InvalidHold,
    approve_hold,
    expire_holds,
    list_holds,
    reject_hold,
    release_hold,
    request_hold,
)
from retention.mail import send_pending_notices
from retention.models import Hold
from retention.notices import (
    ESCALATION,
    WARNINGS,
    NoticeNotFound,
    acknowledge_notice,
    issue_notices,
    list_notices,
)
from server.appkeys import CLOCK, DOSSIER_STORE, SETTINGS
from server.oversight import oversight_page, require_oversight
from server.pages import language, message_page, page
from server.requests import refused
from server.security import principal_of
from server.texts import texts

__all__ = ["add_routes", "expire_holds_job", "notices_job"]

log = logging.getLogger(__name__)

_DONE: Final = ("approved", "rejected", "released")
_ENDED: Final = ("rejected", "released", "expired")


def add_routes(router: web.UrlDispatcher) -> None:
    """Mount this module's pages."""
    router.add_get("/balie/bewaring/{dossier_id}", request_form)
    router.add_post("/balie/bewaring/{dossier_id}", request_submit)
    router.add_get("/beheer/bewaring", holds_page)
    router.add_post("/beheer/bewaring/{hold_id}/goedkeuren", approve_submit)
    router.add_post("/beheer/bewaring/{hold_id}/afwijzen", reject_submit)
    router.add_post("/beheer/bewaring/{hold_id}/beeindigen", release_submit)
    router.add_get("/beheer/meldingen", notices_page)
    router.add_post("/beheer/meldingen/{notice_id}/gezien", acknowledge_submit)


# --- jobs -------------------------------------------------------------------------------------


async def notices_job(app: web.Application) -> int:
    """Issue the warnings and escalations that are due, then e-mail what is not sent yet."""
    store = app[DOSSIER_STORE]
    now = await store.now()
    created = await issue_notices(store, now=now)
    if created:
        log.info("issued %d retention notices", len(created))
    await send_pending_notices(store, app[SETTINGS], now=now)
    return len(created)


async def expire_holds_job(app: web.Application) -> int:
    """End the holds whose end date has come."""
    expired = await expire_holds(app[DOSSIER_STORE])
    if expired:
        log.info("%d holds expired", len(expired))
    return len(expired)


# --- helpers ----------------------------------------------------------------------------------


def _local(moment: dt.datetime) -> str:
    return moment.astimezone(LOCAL_TIME).strftime("%d-%m-%Y %H:%M")


def _local_date(moment: dt.datetime) -> str:
    # A hold lasts until local midnight after its last day: show that last day.
    return (moment.astimezone(LOCAL_TIME) - dt.timedelta(seconds=1)).strftime("%d-%m-%Y")


def _path_id(request: web.Request, name: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        return None


def _status_and_text(exc: DossierError, t: dict[str, str]) -> tuple[int, str]:
    """The HTTP status and the Dutch (or English) sentence for a refused hold step."""
    if isinstance(exc, InvalidHold):
        return 422, t[f"hold.error.{exc.field}"]
    if isinstance(exc, HoldNotFound | NoticeNotFound | DossierNotFound):
        return 404, t["hold.error.not_found"]
    if isinstance(exc, DossierDestroyed):
        return 410, t["hold.error.gone"]
    if isinstance(exc, HoldDecisionRefused):
        return 403, t["hold.error.forbidden"]
    if isinstance(exc, InvalidState):
        return 409, t["hold.error.conflict"]
    raise exc


def _hold_row(
    hold: Hold, departments: dict[uuid.UUID, str], labels: dict[str, str]
) -> dict[str, Any]:
    return {
        "id": str(hold.id),
        "dossier_id": str(hold.dossier_id),
        "department": departments.get(hold.department_id, "?"),
        "service": labels.get(hold.service_type, hold.service_type),
        "ground": hold.ground,
        "reason": hold.reason,
        "state": hold.state,
        "ends": _local_date(hold.ends_at),
        "ends_iso": hold.ends_at.isoformat(),
        "requested_by": hold.requested_by,
        "requested_at": _local(hold.requested_at),
        "decided_by": hold.decided_by or "",
        "decision_note": hold.decision_note or "",
    }


# --- the request form (/balie/bewaring/{dossier_id}) -------------------------------------------


async def _hold_target(
    request: web.Request,
) -> tuple[Principal, uuid.UUID] | web.Response:
    """The signed-in requester and dossier, or the page that refuses them."""
    principal = principal_of(request)
    if principal is None or principal.kind != "staff":
        raise web.HTTPSeeOther("/balie/inloggen")
    t = texts(language(request))
    dossier_id = _path_id(request, "dossier_id")
    if dossier_id is None:
        return message_page(request, 404, t["hold.request.title"], t["hold.error.not_found"])
    try:
        async with request.app[DOSSIER_STORE].sessions() as session:
            owner = await dossier_owner(session, dossier_id)
    except (DossierNotFound, DossierDestroyed) as exc:
        status, text = _status_and_text(exc, t)
        return message_page(request, status, t["hold.request.title"], text)
    if await refused(request, Action.REQUEST_HOLD, Target(*owner), str(dossier_id)):
        return message_page(request, 403, t["hold.request.title"], t["hold.error.forbidden"])
    return principal, dossier_id


async def _request_page(
    request: web.Request,
    principal: Principal,
    dossier_id: uuid.UUID,
    *,
    status: int = 200,
    error: str | None = None,
    detail: str = "",
    form: dict[str, str] | None = None,
) -> web.Response:
    store = request.app[DOSSIER_STORE]
    async with store.sessions() as session:
        dossier = await session.get(Dossier, dossier_id)
        holds = await list_holds(session, dossier_id=dossier_id)
        label = holds[0].service_type if holds else ""
        if dossier is not None:
            appointment = await session.get_one(Appointment, dossier.appointment_id)
            label = (await session.get_one(ServiceType, appointment.service_type_id)).label
        now = await request.app[CLOCK].now(session)
    t = texts(language(request))
    open_hold = any(h.state in ("requested", "active") and h.ends_at > now for h in holds)
    default_end = (now.astimezone(LOCAL_TIME) + dt.timedelta(days=90)).date().isoformat()
    response = page(
        request,
        "staff/hold_request.html",
        status=status,
        title=t["hold.request.title"],
        csrf=principal.csrf_token,
        dossier_id=str(dossier_id),
        service=label,
        deadline=_local(dossier.deadline) if dossier is not None else "",
        deadline_iso=dossier.deadline.isoformat() if dossier is not None else "",
        grounds=GROUNDS,
        holds=[_hold_row(hold, {}, {}) for hold in holds],
        open_hold=open_hold,
        done=request.query.get("aangevraagd") == "1",
        error=error,
        detail=detail,
        form=form or {"ground": "", "reason": "", "ends": default_end},
        min_date=(now.astimezone(LOCAL_TIME) + dt.timedelta(days=1)).date().isoformat(),
        max_reason=MAX_REASON,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


async def request_form(request: web.Request) -> web.Response:
    """GET /balie/bewaring/{dossier_id}: the form to ask for a hold, and earlier requests."""
    target = await _hold_target(request)
    if isinstance(target, web.Response):
        return target
    return await _request_page(request, *target)


def _end_of_day(text: str, *, now: dt.datetime) -> dt.datetime:
    """A date from the form (YYYY-MM-DD, after today) as the end of that day, Dutch time."""
    try:
        day = dt.date.fromisoformat(text.strip()) if len(text.strip()) == 10 else None
    except ValueError:
        day = None
    if day is None:
        raise InvalidHold("ends_at", f"ends_at {text[:20]!r} is not a date (YYYY-MM-DD)")
    if day <= now.astimezone(LOCAL_TIME).date():
        raise InvalidHold("ends_at", f"ends_at {day.isoformat()} is not after today")
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=LOCAL_TIME)


async def request_submit(request: web.Request) -> web.Response:
    """POST /balie/bewaring/{dossier_id}: record the request, then back to the form."""
    target = await _hold_target(request)
    if isinstance(target, web.Response):
        return target
    principal, dossier_id = target
    posted = await request.post()
    form = {
        "ground": str(posted.get("ground", ""))[:32],
        "reason": str(posted.get("reason", ""))[: MAX_REASON * 2],
        "ends": str(posted.get("ends", ""))[:32],
    }
    store = request.app[DOSSIER_STORE]
    try:
        await request_hold(
            store,
            dossier_id=dossier_id,
            ground=form["ground"],
            reason=form["reason"],
            ends_at=_end_of_day(form["ends"], now=await store.now()),
            actor=principal.actor,
        )
    except DossierError as exc:
        status, text = _status_and_text(exc, texts(language(request)))
        return await _request_page(request, principal, dossier_id, status=status, error=text,
                                   detail=str(exc), form=form)  # fmt: skip
    raise web.HTTPSeeOther(f"/balie/bewaring/{dossier_id}?aangevraagd=1")


# --- the information manager's page (/beheer/bewaring) -----------------------------------------


async def _holds_page(
    request: web.Request,
    principal: Principal,
    *,
    status: int = 200,
    error: str | None = None,
    detail: str = "",
) -> web.Response:
    store = request.app[DOSSIER_STORE]
    async with store.sessions() as session:
        holds = await list_holds(session)
        departments = {d.id: d.code for d in (await session.execute(select(Department))).scalars()}
        labels = {
            code: label
            for code, label in await session.execute(
                select(col(ServiceType.code), col(ServiceType.label))
            )
        }
    rows = [_hold_row(hold, departments, labels) for hold in holds]
    t = texts(language(request))
    done = request.query.get("gedaan", "")
    return oversight_page(
        request,
        "oversight/holds.html",
        principal=principal,
        title=t["hold.list.title"],
        status=status,
        requested=[r for r in rows if r["state"] == "requested"],
        active=[r for r in rows if r["state"] == "active"],
        ended=[r for r in rows if r["state"] in _ENDED],
        may_decide=principal.role == "information_manager",
        me=str(principal.actor),
        done=t[f"hold.done.{done}"] if done in _DONE else "",
        error=error,
        detail=detail,
        max_reason=MAX_REASON,
    )


async def holds_page(request: web.Request) -> web.Response:
    """GET /beheer/bewaring: requested, active and ended holds."""
    return await _holds_page(request, require_oversight(request))


async def _decision(request: web.Request, step: str) -> web.Response:
    principal = require_oversight(request)
    t = texts(language(request))
    hold_id = _path_id(request, "hold_id")
    ref = request.match_info["hold_id"][:64]
    if await refused(request, Action.DECIDE_HOLD, Target(), ref):
        return await _holds_page(request, principal, status=403, error=t["hold.error.forbidden"])
    if hold_id is None:
        return await _holds_page(request, principal, status=404, error=t["hold.error.not_found"])
    posted = await request.post()
    note = str(posted.get("note", ""))[: MAX_REASON * 2]
    store = request.app[DOSSIER_STORE]
    try:
        if step == "approved":
            await approve_hold(store, hold_id=hold_id, actor=principal.actor, note=note)
        elif step == "rejected":
            await reject_hold(store, hold_id=hold_id, actor=principal.actor, note=note)
        else:
            await release_hold(store, hold_id=hold_id, actor=principal.actor)
    except DossierError as exc:
        status, text = _status_and_text(exc, t)
        return await _holds_page(request, principal, status=status, error=text, detail=str(exc))
    raise web.HTTPSeeOther(f"/beheer/bewaring?gedaan={step}")


async def approve_submit(request: web.Request) -> web.Response:
    """POST /beheer/bewaring/{hold_id}/goedkeuren."""
    return await _decision(request, "approved")


async def reject_submit(request: web.Request) -> web.Response:
    """POST /beheer/bewaring/{hold_id}/afwijzen."""
    return await _decision(request, "rejected")


async def release_submit(request: web.Request) -> web.Response:
    """POST /beheer/bewaring/{hold_id}/beeindigen."""
    return await _decision(request, "released")


# --- notices (/beheer/meldingen) ---------------------------------------------------------------


def _notice_row(notice: Any) -> dict[str, Any]:
    return {
        "id": str(notice.id),
        "dossier_id": str(notice.dossier_id),
        "kind": notice.kind,
        "department": notice.department,
        "service": notice.service_label,
        "deadline": _local(notice.deadline),
        "deadline_iso": notice.deadline.isoformat(),
        "created": _local(notice.created_at),
        "live": notice.live,
        "acknowledged_by": notice.acknowledged_by or "",
        "acknowledged": _local(notice.acknowledged_at) if notice.acknowledged_at else "",
        "mail": "sent" if notice.emailed_at else ("failed" if notice.email_error else "none"),
    }


async def _notices_page(
    request: web.Request, principal: Principal, *, status: int = 200, error: str | None = None
) -> web.Response:
    async with request.app[DOSSIER_STORE].sessions() as session:
        escalations = await list_notices(session, kinds=(ESCALATION,))
        warnings = await list_notices(session, kinds=tuple(kind for kind, _ in WARNINGS))
    t = texts(language(request))
    return oversight_page(
        request,
        "oversight/notices.html",
        principal=principal,
        title=t["notice.title"],
        status=status,
        escalations=[_notice_row(n) for n in escalations],
        warnings=[_notice_row(n) for n in warnings],
        may_acknowledge=principal.role == "information_manager",
        done=t["notice.acknowledged_ok"] if request.query.get("gedaan") == "gezien" else "",
        error=error,
    )


async def notices_page(request: web.Request) -> web.Response:
    """GET /beheer/meldingen: escalations first, then the departments' warnings."""
    return await _notices_page(request, require_oversight(request))


async def acknowledge_submit(request: web.Request) -> web.Response:
    """POST /beheer/meldingen/{notice_id}/gezien: an information manager has seen it."""
    principal = require_oversight(request)
    t = texts(language(request))
    ref = request.match_info["notice_id"][:64]
    # Acknowledging an escalation is part of deciding what is kept: the information manager's.
    if await refused(request, Action.DECIDE_HOLD, Target(), ref):
        return await _notices_page(request, principal, status=403, error=t["hold.error.forbidden"])
    notice_id = _path_id(request, "notice_id")
    if notice_id is None:
        return await _notices_page(request, principal, status=404, error=t["hold.error.not_found"])
    try:
        await acknowledge_notice(
            request.app[DOSSIER_STORE], notice_id=notice_id, actor=principal.actor
        )
    except NoticeNotFound:
        return await _notices_page(request, principal, status=404, error=t["hold.error.not_found"])
    raise web.HTTPSeeOther("/beheer/meldingen?gedaan=gezien")
