"""The retention policy pages: proposals, and approval by an information manager and a
privacy officer; the policy in force for this process; what a resident is told about it.

    GET  /beheer/beleid                      the version in force, open proposals, a form
    POST /beheer/beleid                      propose a new version (TOML text + justification)
    POST /beheer/beleid/{id}/goedkeuren      approve in one's own role
    POST /beheer/beleid/{id}/afwijzen        reject, with a reason

The pages show versions, digests, rules and pseudonymous actor references; no dossier.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from typing import Any, Final

from aiohttp import web
from sqlalchemy import select
from sqlmodel import col

from dossier.models import Dossier, ServiceType
from dossier.queries import LOCAL_TIME
from identity.sessions import Principal
from retention.audit import Actor
from retention.errors import PolicyError
from retention.models import PolicyVersion
from retention.policy import Policy
from retention.policy_versions import (
    IN_FORCE,
    SUPERSEDED,
    PolicyNotFound,
    PolicyRefused,
    approve_policy,
    ensure_policy_in_force,
    open_proposals,
    policy_diff,
    policy_in_force,
    policy_of,
    propose_policy,
    reject_policy,
)
from server.appkeys import CLOCK, DOSSIER_STORE, POLICY, SETTINGS
from server.oversight import oversight_page, require_oversight
from server.pages import language
from server.texts import Language, texts
from server.texts_policy import MONTHS

__all__ = ["INSTALLER", "add_routes", "keep_section", "reload_policy", "start_policy"]

log = logging.getLogger(__name__)

PAGE: Final = "/beheer/beleid"
# Who adopts the configured file on a fresh database, in the audit log.
INSTALLER: Final = Actor.operator("install")
_DONE: Final = ("proposed", "approved", "in_force", "rejected")
_PERIOD = re.compile(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?")


def add_routes(router: web.UrlDispatcher) -> None:
    """Mount this module's pages."""
    router.add_get(PAGE, policy_page)
    router.add_post(PAGE, propose)
    router.add_post(PAGE + "/{proposal_id}/goedkeuren", approve)
    router.add_post(PAGE + "/{proposal_id}/afwijzen", reject)


# --- The policy in force in this process


async def start_policy(app: web.Application) -> None:
    """At start-up (schema at head): load the version in force, adopting the configured file
    on a database that has none. Raises PolicyError if that file must be adopted and cannot."""
    store = app[DOSSIER_STORE]
    at_start = await ensure_policy_in_force(
        store.sessions, store.clock, policy_file=app[SETTINGS].policy_file, actor=INSTALLER
    )
    app[POLICY].use(policy_of(at_start.row), at_start.row.id)
    if at_start.adopted:
        log.info("adopted policy version %s from the configured file", at_start.row.version)


async def reload_policy(app: web.Application) -> bool:
    """Scheduler job: pick up a version another process brought into force; True if it did."""
    current = app[POLICY]
    async with app[DOSSIER_STORE].sessions() as session:
        query = select(col(PolicyVersion.id)).where(col(PolicyVersion.state) == IN_FORCE)
        found = (await session.execute(query.limit(1))).scalar()
        if found is None or found == current.version_id:
            return False
        row = await session.get_one(PolicyVersion, found)
    current.use(current.parsed(row), row.id)
    log.info("policy version %s is in force now", row.version)
    return True


# --- The resident's "what do we keep" section


async def keep_section(
    app: web.Application, lang: Language, *, dossier: Dossier, service: ServiceType
) -> dict[str, Any]:
    """What the resident's page says about what is kept, why, and until when.

    The reasons come from the policy version the dossier was created under (it is the one
    that still applies to it), or the version in force if that one is not stored.
    """
    current = app[POLICY]
    policy = current.policy
    if dossier.policy_version != policy.version:
        policy = await _version(app, dossier.policy_version) or policy
    rule = policy.services.get(service.code)
    t = texts(lang)
    archive = rule.archive if rule is not None else service.archive_mode
    items = [t["keep.what.chat"], t["keep.what.documents"], t["keep.what.payments"]]
    items.append(t["keep.what.times"])
    if service.needs_bsn:
        items.append(t["keep.what.bsn"])
    period = _period_words(rule.bewaartermijn, t) if rule is not None and archive != "none" else ""
    day = dossier.deadline.astimezone(LOCAL_TIME).date()
    before, _, after = t["keep.until"].partition("{date}")
    return {
        "items": items,
        "no_bsn": not service.needs_bsn,
        "purpose": t["keep.why.purpose"].format(service=service.label),
        "law": t["keep.why.law"].format(basis=rule.avg_basis) if rule is not None else "",
        "archive": t.get(f"keep.archive.{archive}", ""),
        "archive_period": t["keep.archive.period"].format(period=period) if period else "",
        # (text before the date, the date, text after it): the date goes in a <time> element.
        "until": (before, f"{day.day} {MONTHS[lang][day.month - 1]} {day.year}", after),
        "until_iso": day.isoformat(),
        "until_archive": archive != "none",
    }


async def _version(app: web.Application, version: str) -> Policy | None:
    async with app[DOSSIER_STORE].sessions() as session:
        query = select(PolicyVersion).where(
            col(PolicyVersion.version) == version,
            col(PolicyVersion.state).in_((IN_FORCE, SUPERSEDED)),
        )
        row = (await session.execute(query.limit(1))).scalar()
    return app[POLICY].parsed(row) if row is not None else None


def _period_words(period: str, t: dict[str, str]) -> str:
    """ "P1Y6M" as "1 jaar en 6 maanden" ("for 1 year and 6 months"); "" if unreadable."""
    if period == "permanent":
        return t["keep.period.permanent"]
    match = _PERIOD.fullmatch(period)
    if match is None:
        return ""
    parts = []
    for amount, unit in zip(match.groups(), ("year", "month", "day"), strict=True):
        if amount and int(amount):
            n = int(amount)
            parts.append(
                t[f"keep.period.{unit}"] if n == 1 else t[f"keep.period.{unit}s"].format(n=n)
            )
    if not parts:
        return ""
    words = (
        parts[0]
        if len(parts) == 1
        else f"{', '.join(parts[:-1])} {t['keep.period.and']} {parts[-1]}"
    )
    return t["keep.period.for"] + words


# --- The oversight page


def _local(moment: dt.datetime | None) -> str:
    return moment.astimezone(LOCAL_TIME).strftime("%d-%m-%Y %H:%M") if moment else ""


def _approval(t: dict[str, str], who: str | None, at: dt.datetime | None) -> str:
    return t["policy.approval_at"].format(who=who, at=_local(at)) if who else t["policy.not_yet"]


async def _render(
    request: web.Request,
    principal: Principal,
    *,
    status: int = 200,
    policy_text: str = "",
    justification: str = "",
    problems: list[str] | None = None,
    error: str = "",
) -> web.Response:
    t = texts(language(request))
    async with request.app[DOSSIER_STORE].sessions() as session:
        current = await policy_in_force(session)
        proposals = await open_proposals(session)
    services = []
    if current is not None:
        services = list(request.app[POLICY].parsed(current).services.values())
    me = principal.actor.ref
    shown = []
    for row in proposals:
        mine = row.im_approved_by if principal.role == "information_manager" else row.po_approved_by
        other = (
            row.po_approved_by if principal.role == "information_manager" else row.im_approved_by
        )
        gave_other = other is not None and other.partition(":")[2] == me
        shown.append(
            {
                "id": str(row.id),
                "version": row.version,
                "digest": row.digest,
                "proposed_by": row.proposed_by,
                "proposed_at": _local(row.proposed_at),
                "justification": row.justification,
                "im": _approval(t, row.im_approved_by, row.im_approved_at),
                "po": _approval(t, row.po_approved_by, row.po_approved_at),
                "diff": policy_diff(
                    current.text,
                    row.text,
                    old_name=f"in force: {current.version}",
                    new_name=f"proposal: {row.version}",
                )
                if current is not None
                else None,
                "can_approve": mine is None and not gave_other,
                "gave_other": gave_other,
            }
        )
    done = request.query.get("klaar", "")
    return oversight_page(
        request,
        "oversight/policy.html",
        principal=principal,
        title=t["policy.title"],
        status=status,
        current=current
        and {
            "version": current.version,
            "digest": current.digest,
            "in_force_from": _local(current.in_force_from),
            "proposed_by": current.proposed_by,
            "justification": current.justification,
            "im": _approval(t, current.im_approved_by, current.im_approved_at),
            "po": _approval(t, current.po_approved_by, current.po_approved_at),
        },
        services=services,
        proposals=shown,
        approve_label=t["policy.approve"].format(role=t[f"policy.role.{principal.role}"]),
        policy_text=policy_text,
        justification=justification,
        problems=problems or [],
        error=error,
        done=t[f"policy.done.{done}"] if done in _DONE and status == 200 else "",
    )


async def policy_page(request: web.Request) -> web.Response:
    """GET /beheer/beleid."""
    principal = require_oversight(request)
    return await _render(request, principal)


def _done(what: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"{PAGE}?klaar={what}")


async def propose(request: web.Request) -> web.Response:
    """POST /beheer/beleid: store a proposal, or show every problem and keep what was typed."""
    principal = require_oversight(request)
    form = await request.post()
    policy_text = str(form.get("policy_text", "")).replace("\r\n", "\n")
    justification = str(form.get("justification", ""))
    store = request.app[DOSSIER_STORE]
    try:
        async with store.sessions() as session, session.begin():
            await propose_policy(
                session,
                policy_text=policy_text,
                justification=justification,
                actor=principal.actor,
                now=await request.app[CLOCK].now(session),
            )
    except PolicyError as exc:
        problems = exc.problems
    except PolicyRefused as exc:
        problems = [str(exc)]
    else:
        raise _done("proposed")
    return await _render(
        request, principal, status=422, policy_text=policy_text,
        justification=justification, problems=problems,
    )  # fmt: skip


def _proposal_id(request: web.Request) -> uuid.UUID | None:
    try:
        return uuid.UUID(request.match_info["proposal_id"])
    except ValueError:
        return None


async def approve(request: web.Request) -> web.Response:
    """POST /beheer/beleid/{id}/goedkeuren: approve in one's own role (form field `role`)."""
    principal = require_oversight(request)
    t = texts(language(request))
    form = await request.post()
    proposal_id = _proposal_id(request)
    if proposal_id is None:
        return await _render(request, principal, status=404, error=t["policy.not_found"])
    role = str(form.get("role", ""))
    if role != principal.role:
        return await _render(request, principal, status=403, error=t["policy.wrong_role"])
    store = request.app[DOSSIER_STORE]
    try:
        async with store.sessions() as session, session.begin():
            row = await approve_policy(
                session,
                proposal_id=proposal_id,
                actor=principal.actor,
                role=role,
                now=await request.app[CLOCK].now(session),
            )
    except PolicyNotFound:
        return await _render(request, principal, status=404, error=t["policy.not_found"])
    except PolicyRefused as exc:
        return await _render(request, principal, status=409, error=str(exc))
    if row.state == IN_FORCE:
        request.app[POLICY].use(policy_of(row), row.id)
        raise _done("in_force")
    raise _done("approved")


async def reject(request: web.Request) -> web.Response:
    """POST /beheer/beleid/{id}/afwijzen: close a proposal without effect (form field `reason`)."""
    principal = require_oversight(request)
    t = texts(language(request))
    form = await request.post()
    proposal_id = _proposal_id(request)
    if proposal_id is None:
        return await _render(request, principal, status=404, error=t["policy.not_found"])
    store = request.app[DOSSIER_STORE]
    try:
        async with store.sessions() as session, session.begin():
            await reject_policy(
                session,
                proposal_id=proposal_id,
                actor=principal.actor,
                reason=str(form.get("reason", "")),
                now=await request.app[CLOCK].now(session),
            )
    except PolicyNotFound:
        return await _render(request, principal, status=404, error=t["policy.not_found"])
    except PolicyRefused as exc:
        return await _render(request, principal, status=422, error=str(exc))
    raise _done("rejected")
